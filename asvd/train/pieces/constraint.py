"""The method itself as pieces: the subspace constraint (asvd / OSFT) and, with
``train_other_params: false``, freezing every parameter but its targets."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Sequence

import torch

from asvd.method import ranks
from asvd.method.constraint import OrthogonalSubspace
from asvd.method.importance import importance_scores
from asvd.method.svd import cached_svd
from asvd.method_config import Method
from asvd.train.loop import TrainSettings, sample_batches
from asvd.train.pieces.piece import Piece, TaskContext

log = logging.getLogger(__name__)


def build_constraint(model, tokenizer, method: Method, modules: Mapping[str, torch.nn.Module],
                     task_index: int, task_count: int, svd_path: str | Path | None,
                     importance_records: Sequence[Mapping] | None, settings: TrainSettings,
                     seed: int) -> OrthogonalSubspace | None:
    """The constraint a method asks for on this task, or None for plain fine-tuning."""
    if not method.constrained_on(task_index):
        return None
    rule = ranks.from_config(method.rank_rule, task=task_index, tasks=task_count)
    importance = None
    if rule.needs_importance:
        batches = sample_batches(model, tokenizer, importance_records, settings, rule.samples, seed)
        importance = importance_scores(model, modules, batches, rule.granularity)
        unimportant = rule.unimportant_units(importance)
        if unimportant:
            log.warning("importance <= 0 in %s: they keep only mrr = %s of their directions",
                        unimportant, rule.mrr)
    svd = cached_svd(svd_path, model, modules)
    return OrthogonalSubspace(model, targets=method.target_modules, rank_rule=rule,
                              projection=method.projection, svd=svd, importance=importance,
                              acts_on=method.acts_on)


class SubspaceConstraint(Piece):
    """Freezes each target's top singular directions for the task (where the method constrains
    it) and logs what it froze: every method logs its frozen ranks, zero where nothing was."""

    @classmethod
    def applies(cls, method: Method) -> bool:
        return True

    def prepare(self, context: TaskContext, model: torch.nn.Module) -> torch.nn.Module:
        self.constraint = build_constraint(
            model, context.tokenizer, context.method, context.targets, context.position.index,
            context.position.count, context.inputs.svd_path, context.previous_records,
            context.settings, context.seed)
        return model

    def log(self, context: TaskContext) -> dict:
        constraint = self.constraint
        if constraint is None:
            return {"frozen_ranks": {name: 0 for name in context.targets},
                    "max_violation": 0.0, "violation": {}}
        return {"frozen_ranks": constraint.frozen_ranks(), **constraint.importance_report(),
                "max_violation": constraint.max_violation(), "violation": constraint.violations()}


class Freezing(Piece):
    """``train_other_params: false``: only the target matrices train."""

    @classmethod
    def applies(cls, method: Method) -> bool:
        return not method.train_other_params

    def prepare(self, context: TaskContext, model: torch.nn.Module) -> torch.nn.Module:
        target_weights = {id(module.weight) for module in context.targets.values()}
        for param in model.parameters():
            param.requires_grad_(id(param) in target_weights)
        return model
