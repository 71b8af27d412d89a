"""Every part a method can be built from, in the order a task applies them.

A method config block (:class:`asvd.method_config.Method`) selects pieces by its keys; each piece
implements the hooks of :class:`~asvd.train.pieces.piece.Piece`. Adding a baseline touches this
folder alone: a piece module (its torch core may live in :mod:`asvd.baselines`), its entry in
``PIECES`` and its config key's schema in ``keys.yaml`` (docs/architecture.md §3, worked example).
"""

from __future__ import annotations

from asvd.method_config import Method
from asvd.train.pieces.constraint import Freezing, SubspaceConstraint
from asvd.train.pieces.data import JointTraining, Replay
from asvd.train.pieces.lora import LoRA
from asvd.train.pieces.piece import Piece, TaskContext, TaskInputs, TaskPosition
from asvd.train.pieces.regularizers import EWC, LwF

# The order matters where pieces meet: the training set is complete before anything samples
# it, the constraint measures importance before freezing, the penalties read the model before
# LoRA wraps it, and the loss terms add up in this order.
PIECES: list[type[Piece]] = [JointTraining, Replay, SubspaceConstraint, Freezing, EWC, LwF, LoRA]


def assemble(method: Method) -> list[Piece]:
    """The pieces of ``method``, one fresh object each per task."""
    return [piece(method) for piece in PIECES if piece.applies(method)]


__all__ = ["PIECES", "Piece", "TaskContext", "TaskInputs", "TaskPosition", "assemble"]
