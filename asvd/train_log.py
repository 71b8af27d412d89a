"""The training log of one task step (``train_log.json``), as a typed record: one writer
(:func:`asvd.train.finetune.finetune_task`) and one reader (:meth:`TaskLog.read`) for every
stage that reads it (the frozen-rank, importance and overlap figures, the premise, the run's
environment). Standard library only: light stages read it without torch.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

from asvd.io import read_json, write_json

# what an importance-driven rank rule saw (asvd.method.constraint.OrthogonalSubspace.importance_report)
IMPORTANCE_KEYS = ("granularity", "mrr", "trr", "importance", "retention_ratio",
                   "unimportant_units", "clamped_targets")


@dataclass(frozen=True)
class TaskLog:
    """One task step's training: the loop's record (loss per step, the penalty terms' sum per
    step where a method has any, timing, the environment), the task, what the constraint froze
    (``frozen_ranks`` of each target's full ``ranks``; zero for unconstrained methods) and how
    far the frozen directions moved (``max_violation``, ``violation``), ``importance`` (the keys
    of :data:`IMPORTANCE_KEYS`; empty where the rule measured none) and ``extra``, keys a
    method's own pieces log."""

    steps: int
    resumed_from_step: int
    examples: int
    seconds: float
    loss: list[float]
    final_loss: float
    environment: dict
    task: str
    step: int
    replayed: int
    ranks: dict[str, int]
    frozen_ranks: dict[str, int]
    max_violation: float
    violation: dict
    trained_parameters: int
    processes: int
    penalty: list[float] | None = None
    importance: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_record(cls, record: Mapping[str, Any], source: str = "train log") -> "TaskLog":
        """The log of a flat record as the training loop and the pieces produce it."""
        names = {f.name for f in fields(cls)} - {"importance", "extra"}
        missing = sorted(names - set(record) - {"penalty"})
        if missing:
            raise ValueError(f"{source}: a task's train log lacks {missing}; rerun its training "
                             f"step (the workflow rebuilds it when the file is removed)")
        return cls(**{name: record[name] for name in names if name in record},
                   importance={key: record[key] for key in IMPORTANCE_KEYS if key in record},
                   extra={key: value for key, value in record.items()
                          if key not in names and key not in IMPORTANCE_KEYS})

    @classmethod
    def read(cls, path: str | os.PathLike) -> "TaskLog":
        return cls.from_record(read_json(path), str(path))

    def record(self) -> dict:
        """The flat JSON object, keys in the order the file has always had."""
        values = asdict(self)
        head = ("steps", "resumed_from_step", "examples", "seconds", "loss", "final_loss")
        record = {key: values[key] for key in head}
        if self.penalty is not None:
            record["penalty"] = self.penalty
        record.update({key: values[key] for key in ("environment", "task", "step", "replayed",
                                                    "ranks", "frozen_ranks")})
        record.update(self.importance)
        record.update({key: values[key] for key in ("max_violation", "violation")})
        record.update(self.extra)
        record.update({key: values[key] for key in ("trained_parameters", "processes")})
        return record

    def write(self, path: str | os.PathLike) -> None:
        write_json(path, self.record())

    @property
    def measured_importance(self) -> bool:
        return "importance" in self.importance
