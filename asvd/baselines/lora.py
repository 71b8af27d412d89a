"""LoRA baselines through peft (docs/benchmarks.md §7): SeqLoRA, IncLoRA and O-LoRA.

A LoRA method's checkpoint is a full model with its adapters merged (evaluation and the SVD
cache read it like any other) plus ``lora_state.safetensors``:

- one shared adapter (SeqLoRA, ``per_task: false``): that adapter's A and B per target. The next
  task attaches them again to the base model's weights, so one adapter trains through all tasks.
- one adapter per task (IncLoRA, O-LoRA, ``per_task: true``): the A matrices of every adapter so
  far, stacked per target. A task attaches a fresh adapter to the previous merged model (the
  earlier adapters stay active and frozen, merged into the frozen weights); O-LoRA's loss pushes
  the new A orthogonal to the stored ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from asvd.io import read_extra_tensors

STATE_FILE = "lora_state.safetensors"
ADAPTER = "default"


def adapter_seed(seed: int, task_index: int) -> int:
    """The seed of task ``task_index``'s fresh adapter: distinct per task, fixed by the run seed
    (one seed for every task would start each new A equal to task 1's, where O-LoRA's
    orthogonality loss is largest)."""
    return int(np.random.SeedSequence([seed, task_index]).generate_state(1)[0])


def attach_lora(model, spec: Mapping, targets: list[str], seed: int,
                state: Mapping[str, torch.Tensor] | None = None):
    """Wrap ``model`` with a fresh LoRA adapter on ``targets`` (A from ``seed``, zero B), or with
    the adapter in ``state`` (``<target>.A`` / ``<target>.B``); only the adapter trains."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    config = LoraConfig(r=spec["r"], lora_alpha=spec["alpha"], lora_dropout=spec["dropout"],
                        target_modules=targets, bias="none")
    wrapped = get_peft_model(model, config)
    if state is not None:
        layers = lora_layers(wrapped, targets)
        with torch.no_grad():
            for name, layer in layers.items():
                layer.lora_A[ADAPTER].weight.copy_(state[f"{name}.A"])
                layer.lora_B[ADAPTER].weight.copy_(state[f"{name}.B"])
    return wrapped


def lora_layers(wrapped, targets: list[str]) -> dict[str, torch.nn.Module]:
    """The LoRA layer of each target, by the target's name in the unwrapped model."""
    base = wrapped.get_base_model()
    modules = dict(base.named_modules())
    missing = [name for name in targets if not hasattr(modules.get(name), "lora_A")]
    if missing:
        raise ValueError(f"lora: targets without an adapter: {missing[:3]}")
    return {name: modules[name] for name in targets}


class OrthogonalLoRA:
    """O-LoRA's extra loss (Wang et al. 2023): ``lambda1 * sum_targets |A_new A_old^T|_1`` over the
    stored A of every earlier task, plus ``lambda2`` times the sum of the new adapter's
    parameter norms (their code's L2 term). The stored A matrices (read from the checkpoint on
    the CPU) follow the new adapter to its device, wherever training has put it."""

    def __init__(self, layers: Mapping[str, torch.nn.Module], old_a: Mapping[str, torch.Tensor],
                 lambda1: float, lambda2: float):
        self.layers, self.old_a = dict(layers), dict(old_a)
        self.lambda1, self.lambda2 = lambda1, lambda2

    def stored_a(self, name: str, beside: torch.Tensor) -> torch.Tensor:
        """Task ``name``'s stored A matrices on the device (and dtype) of ``beside``."""
        old = self.old_a[name]
        if old.device != beside.device or old.dtype != beside.dtype:
            old = self.old_a[name] = old.to(device=beside.device, dtype=beside.dtype)
        return old

    def __call__(self, model, batch, outputs) -> torch.Tensor:
        terms = []
        for name, layer in self.layers.items():
            new_a = layer.lora_A[ADAPTER].weight
            if self.lambda1 and name in self.old_a:
                terms.append(self.lambda1 * torch.abs(new_a @ self.stored_a(name, new_a).T).sum())
            if self.lambda2:
                terms.append(self.lambda2 * (new_a.norm() + layer.lora_B[ADAPTER].weight.norm()))
        return torch.stack(terms).sum() if terms else torch.zeros(())


def read_state(checkpoint: str | Path) -> dict[str, torch.Tensor]:
    """The LoRA state a checkpoint carries (empty for the base model or a non-LoRA one)."""
    return read_extra_tensors(checkpoint, STATE_FILE)


def next_state(layers: Mapping[str, torch.nn.Module], previous: Mapping[str, torch.Tensor],
               per_task: bool) -> dict[str, torch.Tensor]:
    """What the checkpoint keeps: the shared adapter, or every task's A stacked so far."""
    state = {}
    for name, layer in layers.items():
        new_a = layer.lora_A[ADAPTER].weight.detach().clone()
        if per_task:
            old = previous.get(f"{name}.A")
            state[f"{name}.A"] = new_a if old is None else torch.cat([old, new_a])
        else:
            state[f"{name}.A"] = new_a
            state[f"{name}.B"] = layer.lora_B[ADAPTER].weight.detach().clone()
    return state
