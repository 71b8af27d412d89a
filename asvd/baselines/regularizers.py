"""Loss terms that baselines add to the task loss: EWC's Fisher-weighted anchor and LwF's
distillation from the previous model (docs/benchmarks.md §7).

Each is built at the start of a task from the checkpoint the task starts from, and called once
per training step as ``term(model, batch, outputs) -> scalar tensor`` (see
:func:`asvd.train.loop.train`).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Iterable, Mapping

import torch
import torch.nn.functional as F

from asvd.io import read_extra_tensors


def fisher_diagonal(model: torch.nn.Module, batches: Iterable[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Empirical diagonal Fisher of the trainable parameters: the mean squared gradient of the
    loss over ``batches`` (one sample each, so it is a per-sample estimate)."""
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    fisher = {name: torch.zeros_like(p, dtype=torch.float32) for name, p in params.items()}
    count = 0
    was_training = model.training
    model.eval()  # no dropout: the Fisher of the weights the task ends with
    try:
        for batch in batches:
            model.zero_grad(set_to_none=True)
            model(**batch).loss.backward()
            for name, p in params.items():
                if p.grad is not None:
                    fisher[name] += p.grad.detach().float() ** 2
            count += 1
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    if count == 0:
        raise ValueError("ewc: no samples to estimate the Fisher information from")
    return {name: value / count for name, value in fisher.items()}


FISHER_FILE = "ewc_fisher.safetensors"


def read_fisher(checkpoint: str | Path) -> dict[str, torch.Tensor]:
    """The accumulated Fisher an EWC checkpoint carries (empty before the second task)."""
    return read_extra_tensors(checkpoint, FISHER_FILE)


def online_fisher(accumulated: Mapping[str, torch.Tensor], latest: Mapping[str, torch.Tensor],
                  decay: float) -> dict[str, torch.Tensor]:
    """Online EWC's Fisher (Schwarz et al. 2018): ``decay * F_accumulated + F_latest``, so every
    earlier task keeps a (decayed) share of the penalty; ``decay`` 0 keeps the previous task's
    alone."""
    return {name: latest[name] + decay * accumulated[name].to(latest[name].device)
            if name in accumulated else latest[name] for name in latest}


class EWCPenalty:
    """``lambda / 2 * sum_i F_i (theta_i - theta*_i)^2`` with theta* the previous task's weights and
    F a diagonal Fisher (Kirkpatrick et al. 2017): online EWC's accumulated one, which covers
    every earlier task (:func:`online_fisher`)."""

    def __init__(self, model: torch.nn.Module, fisher: Mapping[str, torch.Tensor], strength: float):
        params = dict(model.named_parameters())
        self.strength = strength
        self.terms = [(params[name], params[name].detach().clone(), weight)
                      for name, weight in fisher.items()]

    def __call__(self, model, batch, outputs) -> torch.Tensor:
        total = sum(((p - anchor) ** 2 * weight).sum() for p, anchor, weight in self.terms)
        return 0.5 * self.strength * total


class DistillationLoss:
    """LwF (Li & Hoiem 2017): ``lambda * T^2 * KL(teacher_T || student_T)`` over the answer tokens
    of the new task's batches, the teacher being a frozen copy of the model the task starts from."""

    def __init__(self, model: torch.nn.Module, strength: float, temperature: float):
        self.teacher = copy.deepcopy(model).eval().requires_grad_(False)
        self.strength = strength
        self.temperature = temperature
        self.causal = not model.config.is_encoder_decoder  # prompt and answer in one sequence

    def teacher_logits(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            return self.teacher(**batch).logits

    def __call__(self, model, batch, outputs) -> torch.Tensor:
        student, teacher = outputs.logits, self.teacher_logits(batch)
        mask = batch["labels"] != -100
        if self.causal:  # logits at position i predict token i + 1
            student, teacher, mask = student[:, :-1], teacher[:, :-1], mask[:, 1:]
        t = self.temperature
        kl = F.kl_div(F.log_softmax(student[mask] / t, dim=-1), F.log_softmax(teacher[mask] / t, dim=-1),
                      log_target=True, reduction="batchmean")
        return self.strength * t * t * kl
