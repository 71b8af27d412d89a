"""Loss terms from the second task on: online EWC (its Fisher carried from checkpoint to
checkpoint) and LwF (distillation from the model the task starts from)."""

from __future__ import annotations

from typing import Callable, Mapping

import torch

from asvd.baselines.regularizers import (
    FISHER_FILE,
    DistillationLoss,
    EWCPenalty,
    fisher_diagonal,
    online_fisher,
    read_fisher,
)
from asvd.train.loop import sample_batches
from asvd.train.pieces.piece import Piece, TaskContext


class EWC(Piece):
    """Online EWC: the Fisher accumulated over every earlier task, continuing the one the task's
    starting checkpoint carries, measured on the previous task's samples."""

    key = "ewc"

    def prepare(self, context: TaskContext, model: torch.nn.Module) -> torch.nn.Module:
        self.penalty, self.fisher = None, None
        if context.position.index > 1:
            batches = sample_batches(model, context.tokenizer, context.previous_records,
                                     context.settings, self.spec["fisher_samples"], context.seed)
            self.fisher = online_fisher(read_fisher(context.inputs.checkpoint),
                                        fisher_diagonal(model, batches), self.spec.get("decay", 1.0))
            self.penalty = EWCPenalty(model, self.fisher, self.spec["strength"])
        return model

    def loss_terms(self) -> list[Callable]:
        return [self.penalty] if self.penalty else []

    def tensors(self) -> dict[str, Mapping[str, torch.Tensor]]:
        return {FISHER_FILE: self.fisher} if self.fisher is not None else {}


class LwF(Piece):
    """Learning without forgetting: distillation from a frozen copy of the starting model."""

    key = "lwf"

    def prepare(self, context: TaskContext, model: torch.nn.Module) -> torch.nn.Module:
        self.penalty = (DistillationLoss(model, self.spec["strength"], self.spec["temperature"])
                        if context.position.index > 1 else None)
        return model

    def loss_terms(self) -> list[Callable]:
        return [self.penalty] if self.penalty else []
