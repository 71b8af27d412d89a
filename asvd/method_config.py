"""What a method is: one declared object per config block ``methods.<name>``.

Everything that depends on a method asks this object: the workflow (which files a step reads:
the previous checkpoint or the base, an SVD cache, earlier tasks' data), training (which pieces
it puts together: the subspace constraint, EWC and LwF terms, replay, LoRA) and the figures
(which methods a figure shows). The schema checks the block's keys and types; this module gives
them their defaults and meaning. Standard library only: the Snakefile reads it while parsed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping

SCHEDULES = ("sequential", "per_task", "joint")
FIRST_TASK = ("constrained", "full")


@dataclass(frozen=True)
class Method:
    """A method's pieces (``None``: the piece is absent).

    ``rank_rule`` (with ``projection``, ``acts_on``, ``target_modules``): the subspace constraint,
    from task 1 on or, with ``first_task: full``, from task 2 on;
    ``train_other_params: false`` freezes everything but the targets; ``ewc``, ``lwf``: loss terms
    from the second task on; ``replay``: earlier tasks' samples mixed in; ``lora``: LoRA adapters
    instead of full fine-tuning; ``schedule``: where each task starts (the previous task, the base
    model, or one joint training); ``train``: this method's own training settings;
    ``lr_scale``: its learning rate (the tuned one, where tuned) times this factor.
    """

    rank_rule: Mapping | None = None
    projection: str = "two_sided"
    acts_on: str = "gradient"
    first_task: str = "constrained"
    target_modules: Any = "auto"
    train_other_params: bool = True
    train: Mapping = field(default_factory=dict)
    schedule: str = "sequential"
    ewc: Mapping | None = None
    lwf: Mapping | None = None
    lora: Mapping | None = None
    replay: Mapping | None = None
    lr_scale: float = 1.0

    @classmethod
    def from_config(cls, block: Mapping, name: str = "method") -> "Method":
        """The method of config block ``block`` (named ``name`` in errors)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(block) - known)
        if unknown:
            raise ValueError(f"methods.{name}: unknown keys {unknown} (known: {sorted(known)})")
        method = cls(**block)
        if method.schedule not in SCHEDULES:
            raise ValueError(f"methods.{name}.schedule: {method.schedule!r} not in {SCHEDULES}")
        if method.first_task not in FIRST_TASK:
            raise ValueError(f"methods.{name}.first_task: {method.first_task!r} not in {FIRST_TASK}")
        return method

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
        return bool(self.replay) or self.schedule == "joint"

    @property
    def shares_lora(self) -> bool:
        """One LoRA adapter through all tasks (SeqLoRA), attached again to the base each task."""
        return bool(self.lora) and not self.lora["per_task"]

    @property
    def whole_model_copies(self) -> list[str]:
        """Pieces that hold a whole copy of the weights (cannot be sharded by FSDP)."""
        return [name for name in ("lora", "ewc", "lwf") if getattr(self, name)]


def declared_methods(blocks: Mapping[str, Mapping]) -> dict[str, Method]:
    """Every method of a config's ``methods`` block, by name."""
    return {name: Method.from_config(block, name) for name, block in blocks.items()}
