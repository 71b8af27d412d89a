"""Pieces that change what a task trains on: one joint set of every task (MTL) and replay of
earlier tasks' samples."""

from __future__ import annotations

from typing import Mapping

from asvd.baselines.replay import replay_mix
from asvd.method_config import Method
from asvd.train.pieces.piece import Piece, TaskContext


class JointTraining(Piece):
    """MTL: every task of the order up to this one in one training set (the schedule ``joint``
    trains only the last step)."""

    @classmethod
    def applies(cls, method: Method) -> bool:
        return method.schedule == "joint"

    def records(self, context: TaskContext, records: list[Mapping]) -> list[Mapping]:
        return [record for rows in context.earlier.values() for record in rows] + records


class Replay(Piece):
    """A seeded memory of each earlier task, a share of it mixed into the new task's set
    (:mod:`asvd.baselines.replay`)."""

    key = "replay"

    @classmethod
    def applies(cls, method: Method) -> bool:
        return super().applies(method) and method.schedule != "joint"

    def records(self, context: TaskContext, records: list[Mapping]) -> list[Mapping]:
        return replay_mix(records, context.earlier, self.spec["ratio"], self.spec.get("buffer_per_task"),
                          context.seed, context.position.index)
