"""The protocol every part of a method follows, and what one task gives it.

A method is assembled from pieces (:data:`asvd.train.pieces.PIECES`): the subspace constraint,
freezing everything but its targets, replay, joint training, EWC, LwF and LoRA. Each overrides the
few hooks it needs; :func:`asvd.train.finetune.finetune_task` calls every piece's hook at the
same point of a task, in the registry's order, and knows none of them by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch

from asvd.method_config import Method
from asvd.train.loop import TrainSettings


@dataclass(frozen=True)
class TaskInputs:
    """The files one task's training reads.

    ``previous_train_file`` holds the previous task's training samples, which importance (if the
    rank rule needs it) and EWC's Fisher use; the first task uses its own samples for importance
    (docs/method.md §3), as does None. ``svd_path`` is the cached SVD of ``checkpoint`` the
    constraint starts from. ``earlier_train_files`` (task -> train file, in training order) feed
    a method's replay memory or, for a ``joint`` method (MTL), join this task's data.
    ``base_checkpoint`` is where a shared LoRA adapter (SeqLoRA) is attached again.
    """

    checkpoint: str | Path
    train_file: str | Path
    previous_train_file: str | Path | None = None
    svd_path: str | Path | None = None
    earlier_train_files: Mapping[str, str | Path] = field(default_factory=dict)
    base_checkpoint: str | Path | None = None

    def files(self) -> list[str | Path]:
        """Every file given, in the order the resume fingerprint hashes them (another order would
        make the saved states of killed jobs unusable)."""
        files = [self.checkpoint, self.train_file, self.previous_train_file, self.base_checkpoint,
                 *self.earlier_train_files.values(), self.svd_path]
        return [path for path in files if path]


@dataclass(frozen=True)
class TaskPosition:
    """Where a task stands in its order: ``index`` (1-based) decides what a method does on it
    (constraint, penalties from the second task on, adapter seed) and, with ``count``, the rank
    rule's schedule."""

    task: str
    index: int
    count: int


@dataclass(frozen=True)
class TaskContext:
    """What a piece may read about the task being trained: the parsed method, the task's place
    and files, the training settings and seed, the tokenizer, the method's target modules, the
    previous task's samples (importance, Fisher) and every earlier task's (replay, joint)."""

    method: Method
    position: TaskPosition
    inputs: TaskInputs
    settings: TrainSettings
    seed: int
    tokenizer: object
    targets: Mapping[str, torch.nn.Module]
    previous_records: Sequence[Mapping]
    earlier: Mapping[str, Sequence[Mapping]]


class Piece:
    """One part of a method. Every hook is optional; the defaults change nothing.

    Per task, every piece's hook in turn, in this order: :meth:`start_from` (which checkpoint to
    load; the first piece that names one decides), :meth:`records` (the training set),
    :meth:`prepare` (the model before training; may wrap it), then training with the
    :attr:`constraint` (of one piece at most) and every piece's :meth:`loss_terms`, then
    :meth:`finish` (the model to save), :meth:`log` (keys of the task's training log) and
    :meth:`tensors` (files the checkpoint carries).
    """

    #: the key of ``asvd/train/pieces/keys.yaml`` whose block selects this piece (None: the
    #: piece reads the method's core keys and says itself which methods have it)
    key: str | None = None
    #: the projection the training loop applies after each backward pass (one piece at most)
    constraint = None

    def __init__(self, method: Method):
        self.method = method
        self.spec = method.piece(self.key) if self.key else None  # its config block

    @classmethod
    def applies(cls, method: Method) -> bool:
        """Whether ``method`` has this piece: by default, whether it sets the piece's key."""
        if cls.key is None:
            raise TypeError(f"{cls.__name__} has no key: it must say which methods have it")
        return method.piece(cls.key) is not None

    def start_from(self, inputs: TaskInputs) -> str | Path | None:
        """A checkpoint to load instead of ``inputs.checkpoint`` (None: that one)."""
        return None

    def records(self, context: TaskContext, records: list[Mapping]) -> list[Mapping]:
        return records

    def prepare(self, context: TaskContext, model: torch.nn.Module) -> torch.nn.Module:
        return model

    def loss_terms(self) -> list[Callable]:
        """Terms ``term(model, batch, outputs)`` added to the task loss."""
        return []

    def finish(self, context: TaskContext, model: torch.nn.Module) -> torch.nn.Module:
        return model

    def tensors(self) -> dict[str, Mapping[str, torch.Tensor]]:
        """File name -> tensors the new checkpoint carries for the next task."""
        return {}

    def log(self, context: TaskContext) -> dict:
        return {}
