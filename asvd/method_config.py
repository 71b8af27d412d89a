"""What a method is: one declared object per config block ``methods.<name>``.

Everything that depends on a method asks this object: the workflow (which files a step reads:
the previous checkpoint or the base, an SVD cache, earlier tasks' data), training (which pieces
it puts together: the subspace constraint, EWC and LwF terms, replay, LoRA) and the figures
(which methods a figure shows). The schema checks the block's keys and types; this module gives
them their defaults and meaning. A key that selects a piece of its own (EWC, LwF, replay, LoRA)
is declared once, beside the piece, in ``asvd/train/pieces/keys.yaml``. No torch: the Snakefile
reads this module while parsed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import yaml

SCHEDULES = ("sequential", "per_task", "joint")
FIRST_TASK = ("constrained", "full")
PIECE_KEYS_FILE = Path(__file__).parent / "train" / "pieces" / "keys.yaml"
# key -> {schema, reads_earlier_tasks, whole_model_copy}: the keys pieces declare
PIECE_KEYS: dict[str, dict] = yaml.safe_load(PIECE_KEYS_FILE.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Method:
    """A method's pieces (``None``: the piece is absent).

    ``rank_rule`` (with ``projection``, ``acts_on``, ``target_modules``): the subspace constraint,
    from task 1 on or, with ``first_task: full``, from task 2 on;
    ``train_other_params: false`` freezes everything but the targets; ``schedule``: where each
    task starts (the previous task, the base model, or one joint training); ``train``: this
    method's own training settings; ``lr_scale``: its learning rate (the tuned one, where tuned)
    times this factor. ``pieces``: the blocks of the keys in :data:`PIECE_KEYS` the method sets
    (``ewc``, ``lwf``: loss terms from the second task on; ``replay``: earlier tasks' samples
    mixed in; ``lora``: LoRA adapters instead of full fine-tuning), read with :meth:`piece`.
    """

    rank_rule: Mapping | None = None
    projection: str = "two_sided"
    acts_on: str = "gradient"
    first_task: str = "constrained"
    target_modules: Any = "auto"
    train_other_params: bool = True
    train: Mapping = field(default_factory=dict)
    schedule: str = "sequential"
    lr_scale: float = 1.0
    pieces: Mapping[str, Mapping] = field(default_factory=dict)

    @classmethod
    def from_config(cls, block: Mapping, name: str = "method") -> "Method":
        """The method of config block ``block`` (named ``name`` in errors)."""
        core = {f.name for f in fields(cls)} - {"pieces"}
        unknown = sorted(set(block) - core - set(PIECE_KEYS))
        if unknown:
            known = sorted(core | set(PIECE_KEYS))
            raise ValueError(f"methods.{name}: unknown keys {unknown} (known: {known})")
        method = cls(**{key: value for key, value in block.items() if key in core},
                     pieces={key: value for key, value in block.items()
                             if key in PIECE_KEYS and value is not None})
        if method.schedule not in SCHEDULES:
            raise ValueError(f"methods.{name}.schedule: {method.schedule!r} not in {SCHEDULES}")
        if method.first_task not in FIRST_TASK:
            raise ValueError(f"methods.{name}.first_task: {method.first_task!r} not in {FIRST_TASK}")
        return method

    def piece(self, key: str) -> Mapping | None:
        """The block of piece key ``key`` (one of :data:`PIECE_KEYS`), None where not set."""
        if key not in PIECE_KEYS:
            raise KeyError(f"{key!r} is no piece's key (declared: {sorted(PIECE_KEYS)})")
        return self.pieces.get(key)

    @property
    def constrained(self) -> bool:
        """Whether the subspace constraint acts (on some task; see :meth:`constrained_on`)."""
        return self.rank_rule is not None

    @property
    def uses_importance(self) -> bool:
        """Whether its rank rule measures importance on samples."""
        return self.constrained and self.rank_rule["name"] == "importance"

    def constrained_on(self, task_index: int) -> bool:
        """Whether task ``task_index`` (1-based) trains under the constraint; ``first_task:
        full`` trains the first task without it."""
        return self.constrained and not (task_index == 1 and self.first_task == "full")

    @property
    def starts_from_base(self) -> bool:
        """Whether every task starts from the base model (PerTaskFT, MTL)."""
        return self.schedule in ("per_task", "joint")

    @property
    def reads_earlier_tasks(self) -> bool:
        """Whether a step reads earlier tasks' training data (replay's memory, MTL's joint set)."""
        return self.schedule == "joint" or any(
            PIECE_KEYS[key].get("reads_earlier_tasks") for key in self.pieces)

    @property
    def shares_lora(self) -> bool:
        """One LoRA adapter through all tasks (SeqLoRA), attached again to the base each task."""
        lora = self.piece("lora")
        return bool(lora) and not lora["per_task"]

    @property
    def whole_model_copies(self) -> list[str]:
        """Pieces that hold a whole copy of the weights (cannot be sharded by FSDP)."""
        return [key for key in PIECE_KEYS if key in self.pieces and PIECE_KEYS[key].get("whole_model_copy")]


def declared_methods(blocks: Mapping[str, Mapping]) -> dict[str, Method]:
    """Every method of a config's ``methods`` block, by name."""
    return {name: Method.from_config(block, name) for name, block in blocks.items()}
