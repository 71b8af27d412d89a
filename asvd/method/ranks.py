"""Rank rules: how many top singular directions of each target are frozen (docs/method.md §3).

Every rule maps ``{target name: (d_out, d_in)}`` (plus, for ``Importance``, per-target importance
scores) to ``{target name: k}`` with k clamped to [0, r - 1], r = min(d_out, d_in) (the released
script's ``linear`` rule: to [0, r]); k = 0 means the target is not constrained.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from typing import Mapping

Shapes = Mapping[str, tuple[int, int]]


def clamp_rank(k: int, shape: tuple[int, int], whole: bool = False) -> int:
    """Clamp a frozen count to [0, r - 1] so at least one direction always stays trainable
    (``whole``: to [0, r], a matrix may freeze completely)."""
    return max(0, min(int(k), min(shape) - (0 if whole else 1)))


@dataclass(frozen=True)
class Uniform:
    """Same unfrozen fraction everywhere: k = floor(r * (1 - unfreeze)); unfreeze=1 is plain FT."""

    unfreeze: float = 0.25
    needs_importance = False

    def __post_init__(self):
        if not 0.0 <= self.unfreeze <= 1.0:
            raise ValueError(f"rank rule uniform: unfreeze must be in [0, 1], got {self.unfreeze}")

    def frozen_ranks(self, shapes: Shapes, importance=None) -> dict[str, int]:
        # round() guards against 1 - 0.8 = 0.19999... flooring one direction away.
        return {
            name: clamp_rank(math.floor(round(min(s) * (1.0 - self.unfreeze), 9)), s)
            for name, s in shapes.items()
        }


GRANULARITIES = ("block", "matrix")
_NUMBERED = re.compile(r"^(.*?\.\d+)(?:\.|$)")


def block_of(target: str) -> str:
    """The transformer block holding a target: its outermost numbered ancestor module
    (``model.encoder.layers.0`` for ``model.encoder.layers.0.fc1``; ``encoder.block.3`` for
    T5's ``encoder.block.3.layer.1.DenseReluDense.wi``, not the inner sub-layer)."""
    found = _NUMBERED.match(target)
    if found is None:
        raise ValueError(f"importance: target {target!r} lies in no numbered block "
                         f"(use rank_rule granularity: matrix)")
    return found.group(1)


@dataclass(frozen=True)
class Importance:
    """The paper's adaptive rule: r_u = mrr + I_u / mean(I) * (trr - mrr), k = floor(r_u * r).

    ``u`` is the target's unit: its block (``granularity: block``, the default) or the target
    itself (``matrix``); the mean runs over units. Importance scores come keyed by unit
    (:func:`asvd.method.importance.importance_scores`).
    """

    mrr: float = 0.1
    trr: float = 0.8
    samples: int = 128
    granularity: str = "block"
    needs_importance = True

    def __post_init__(self):
        if not 0.0 <= self.mrr <= self.trr <= 1.0:
            raise ValueError(
                f"rank rule importance: need 0 <= mrr <= trr <= 1, got mrr={self.mrr}, trr={self.trr}"
            )
        if self.samples < 1:
            raise ValueError(f"rank rule importance: samples must be >= 1, got {self.samples}")
        if self.granularity not in GRANULARITIES:
            raise ValueError(f"rank rule importance: granularity {self.granularity!r} not in "
                             f"{GRANULARITIES}")

    def unit(self, target: str) -> str:
        """The unit whose importance a target takes."""
        return block_of(target) if self.granularity == "block" else target

    def retention_ratios(self, importance: Mapping[str, float]) -> dict[str, float]:
        """Retention ratio per unit, from importance per unit.

        A unit whose importance is zero or negative (its block turns the residual stream
        around, as a freshly built base's first decoder block can) counts as unimportant: its
        importance is taken as 0 and it gets r = mrr (:meth:`unimportant_units` names them).
        The mean runs over these clipped values, so a legitimate base is never refused; with
        no positive unit at all every unit gets mrr. Non-finite importance is damage: refused.
        """
        broken = sorted(name for name, value in importance.items() if not math.isfinite(value))
        if broken:
            raise ValueError(f"rank rule importance: importance of {broken[:3]} is not finite")
        clipped = {name: max(float(value), 0.0) for name, value in importance.items()}
        mean = sum(clipped.values()) / len(clipped)
        return {
            name: self.mrr + (value / mean if mean > 0 else 0.0) * (self.trr - self.mrr)
            for name, value in clipped.items()
        }

    @staticmethod
    def unimportant_units(importance: Mapping[str, float]) -> list[str]:
        """Units whose importance is zero or negative: they retain only mrr."""
        return sorted(name for name, value in importance.items() if value <= 0)

    def _target_ratios(self, shapes: Shapes, importance) -> dict[str, float]:
        """Each target's retention ratio: its unit's."""
        if importance is None:
            raise ValueError("rank rule importance needs importance scores for every target")
        units = {name: self.unit(name) for name in shapes}
        missing = sorted(name for name, unit in units.items() if unit not in importance)
        if missing:
            raise ValueError(f"rank rule importance: no importance score for {missing[:3]}")
        ratios = self.retention_ratios({unit: importance[unit] for unit in set(units.values())})
        return {name: ratios[unit] for name, unit in units.items()}

    def frozen_ranks(self, shapes: Shapes, importance=None) -> dict[str, int]:
        ratios = self._target_ratios(shapes, importance)
        return {name: clamp_rank(math.floor(ratios[name] * min(s)), s) for name, s in shapes.items()}

    def clamped_targets(self, shapes: Shapes, importance: Mapping[str, float]) -> list[str]:
        """Targets whose ratio asks to freeze every direction (floor(r_u * r) >= r), kept at
        r - 1: the normalisation I / mean(I) lets r_u exceed 1 in the most important units."""
        ratios = self._target_ratios(shapes, importance)
        return [name for name, s in shapes.items() if math.floor(ratios[name] * min(s)) > min(s) - 1]


@dataclass(frozen=True)
class Linear:
    """The released T5 script: k = floor(max(d_out, d_in) * step * (task - 1)), clamped to r.

    It uses max(), so wide FFN matrices freeze completely (k = r: nothing of them trains) after a
    few tasks, as in that script; ``freeze_whole: false`` keeps one direction free (r - 1) like
    every other rule.
    """

    task: int
    step: float = 0.07
    freeze_whole: bool = True
    needs_importance = False

    def frozen_ranks(self, shapes: Shapes, importance=None) -> dict[str, int]:
        ratio = self.step * (self.task - 1)
        return {name: clamp_rank(math.floor(max(s) * ratio), s, whole=self.freeze_whole)
                for name, s in shapes.items()}


@dataclass(frozen=True)
class Progressive:
    """peft's schedule: k = floor(r * (task - 1) / tasks)."""

    task: int
    tasks: int
    needs_importance = False

    def frozen_ranks(self, shapes: Shapes, importance=None) -> dict[str, int]:
        return {
            name: clamp_rank(math.floor(min(s) * (self.task - 1) / self.tasks), s)
            for name, s in shapes.items()
        }


@dataclass(frozen=True)
class Fixed:
    """Explicit frozen counts per target (targets it does not name are left unconstrained).

    A name that is no target is an error: a typo would otherwise leave every target at k = 0,
    and the "constrained" method would train unconstrained."""

    ranks: Mapping[str, int] = field(default_factory=dict)
    needs_importance = False

    def frozen_ranks(self, shapes: Shapes, importance=None) -> dict[str, int]:
        unknown = sorted(set(self.ranks) - set(shapes))
        if unknown:
            raise ValueError(f"rank_rule 'fixed': {unknown} are not targets of this model "
                             f"(its targets: {sorted(shapes)[:8]}{' ...' if len(shapes) > 8 else ''})")
        return {name: clamp_rank(self.ranks.get(name, 0), s) for name, s in shapes.items()}


RULES = {"uniform": Uniform, "importance": Importance, "linear": Linear, "progressive": Progressive,
         "fixed": Fixed}


# rule fields filled from the task's place in its order, not from the config
POSITION = ("task", "tasks")


def from_config(spec: Mapping, task: int, tasks: int):
    """Build a rank rule from its config block ``{name: ..., <parameters>}`` for 1-based ``task``.

    A parameter the rule does not take is an error, not ignored: a study that sets ``mrr`` on a
    uniform rule would otherwise run something other than it says.
    """
    name = spec.get("name")
    if name not in RULES:
        raise ValueError(f"rank_rule.name: unknown rule {name!r} (expected {', '.join(RULES)})")
    rule = RULES[name]
    position = dict(zip(POSITION, (task, tasks)))
    takes = {f.name for f in fields(rule)} - set(position)
    params = {key: value for key, value in spec.items() if key != "name"}
    unknown = sorted(set(params) - takes)
    if unknown:
        raise ValueError(f"rank_rule {name!r} does not take {unknown} (it takes {sorted(takes)})")
    own = {f.name for f in fields(rule)}
    return rule(**params, **{key: value for key, value in position.items() if key in own})
