"""LoRA adapters instead of full fine-tuning (SeqLoRA, IncLoRA, O-LoRA with its orthogonality
loss), through peft (:mod:`asvd.baselines.lora`): the checkpoint is the merged model plus the
adapter state the next task continues from."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

import torch

from asvd.baselines.lora import (
    STATE_FILE,
    OrthogonalLoRA,
    adapter_seed,
    attach_lora,
    lora_layers,
    next_state,
    read_state,
)
from asvd.io import verify_checksums
from asvd.method.targets import find_targets
from asvd.train.pieces.piece import Piece, TaskContext, TaskInputs


class LoRA(Piece):
    """A fresh adapter per task (IncLoRA, O-LoRA) or one shared through all tasks (SeqLoRA);
    only the adapter trains."""

    key = "lora"

    def start_from(self, inputs: TaskInputs) -> str | Path | None:
        """A shared adapter (SeqLoRA) with a state so far is attached again to the base model's
        weights: the state is used, the checkpoint's weights are not loaded (so not checked)."""
        self.state = read_state(inputs.checkpoint)
        self.continues = self.method.shares_lora and bool(self.state)
        if self.continues:
            verify_checksums(inputs.checkpoint)
            return inputs.base_checkpoint
        return None

    def prepare(self, context: TaskContext, model: torch.nn.Module) -> torch.nn.Module:
        self.targets = list(find_targets(model, self.spec.get("target_modules", "auto")))
        model = attach_lora(model, self.spec, self.targets,
                            adapter_seed(context.seed, context.position.index),
                            self.state if self.continues else None)
        self.layers = lora_layers(model, self.targets)
        self.penalty = None
        if self.spec.get("orthogonal"):
            old_a = {name: self.state[f"{name}.A"] for name in self.targets
                     if f"{name}.A" in self.state}
            self.penalty = OrthogonalLoRA(self.layers, old_a, **self.spec["orthogonal"])
        return model

    def loss_terms(self) -> list[Callable]:
        return [self.penalty] if self.penalty else []

    def finish(self, context: TaskContext, model: torch.nn.Module) -> torch.nn.Module:
        self.next_state = next_state(self.layers, self.state, self.spec["per_task"])
        return model.merge_and_unload()

    def tensors(self) -> dict[str, Mapping[str, torch.Tensor]]:
        return {STATE_FILE: self.next_state}
