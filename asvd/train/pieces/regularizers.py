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
from asvd.method_config import Method
from asvd.train.loop import sample_batches
from asvd.train.pieces.piece import Piece, TaskContext


class EWC(Piece):
    """Online EWC: the Fisher accumulated over every earlier task, continuing the one the task's
    starting checkpoint carries, measured on the previous task's samples."""

    @classmethod
    def applies(cls, method: Method) -> bool:
        return bool(method.ewc)

    def prepare(self, context: TaskContext, model: torch.nn.Module) -> torch.nn.Module:
        self.penalty, self.fisher = None, None
        if context.position.index > 1:
            spec = context.method.ewc
            batches = sample_batches(model, context.tokenizer, context.previous_records,
                                     context.settings, spec["fisher_samples"], context.seed)
            self.fisher = online_fisher(read_fisher(context.inputs.checkpoint),
                                        fisher_diagonal(model, batches), spec.get("decay", 1.0))
            self.penalty = EWCPenalty(model, self.fisher, spec["strength"])
        return model

    def loss_terms(self) -> list[Callable]:
        return [self.penalty] if self.penalty else []

    def tensors(self) -> dict[str, Mapping[str, torch.Tensor]]:
        return {FISHER_FILE: self.fisher} if self.fisher is not None else {}


class LwF(Piece):
    """Learning without forgetting: distillation from a frozen copy of the starting model."""

    @classmethod
    def applies(cls, method: Method) -> bool:
        return bool(method.lwf)

    def prepare(self, context: TaskContext, model: torch.nn.Module) -> torch.nn.Module:
        spec = context.method.lwf
        self.penalty = (DistillationLoss(model, spec["strength"], spec["temperature"])
                        if context.position.index > 1 else None)
        return model

    def loss_terms(self) -> list[Callable]:
        return [self.penalty] if self.penalty else []
