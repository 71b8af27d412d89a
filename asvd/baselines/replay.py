"""Experience replay (docs/benchmarks.md §7): a fixed, seeded memory of each earlier task's training
samples, a share of which is mixed into the new task's training set.

Each earlier task keeps ``buffer_per_task`` samples, chosen once from its own training set with a
seed that depends only on the run seed and the task (so the memory a task left behind is the
same at every later step). A task of ``n`` examples replays ``ratio * n`` of them (rounded half
up), split as evenly as possible over the earlier tasks (the earliest take the remainder) and
drawn without replacement from each memory (cycling through it when more are asked for than it
holds).
"""

from __future__ import annotations

import math
import random
from typing import Mapping, Sequence


def task_memory(records: Sequence[Mapping], size: int | None, seed: int, task: str) -> list[Mapping]:
    """The samples an earlier task leaves in memory (all of them if ``size`` is None)."""
    if size is None or size >= len(records):
        return list(records)
    rng = random.Random(f"replay-memory-{seed}-{task}")
    return [records[i] for i in sorted(rng.sample(range(len(records)), size))]


def replay_mix(new_records: Sequence[Mapping], earlier: Mapping[str, Sequence[Mapping]], ratio: float,
               buffer_per_task: int | None, seed: int, step: int) -> list[dict]:
    """The new task's records followed by the replayed ones (each tagged ``replayed_from``).

    ``earlier`` maps the tasks trained before this one, in order, to their training records.
    """
    if not earlier or ratio == 0:
        return [dict(r) for r in new_records]
    wanted = math.floor(ratio * len(new_records) + 0.5)
    tasks = list(earlier)
    share, remainder = divmod(wanted, len(tasks))
    rng = random.Random(f"replay-draw-{seed}-{step}")
    replayed = []
    for position, task in enumerate(tasks):
        memory = task_memory(earlier[task], buffer_per_task, seed, task)
        if not memory:
            raise ValueError(f"replay: task {task!r} left no samples in memory")
        count = share + (position < remainder)
        order: list[int] = []
        while len(order) < count:
            order += rng.sample(range(len(memory)), len(memory))
        replayed += [{**memory[i], "replayed_from": task} for i in order[:count]]
    return [dict(r) for r in new_records] + replayed
