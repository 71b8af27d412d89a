"""How much of each task's frozen subspace the next task keeps frozen.

Task t freezes the top k_t left singular directions U_t of every target of checkpoint t-1; task
t+1 freezes the top k_{t+1} of checkpoint t. The overlap ||U_t^T U_{t+1}||_F^2 / k_t is the
fraction of task t's protected output directions that stay protected while task t+1 trains: 1
when the next task keeps all of them, below 1 when it releases some (a smaller k, or new
directions that outgrew old ones). It reads only SVD caches (numpy) and train logs.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import pandas as pd
from safetensors import safe_open

from asvd.pipeline.damage import check_readable
from asvd.train_log import TaskLog


def frozen_overlap(previous: np.ndarray, current: np.ndarray) -> float:
    """Share of the column space of orthonormal ``previous`` (m x k) inside that of ``current``."""
    if previous.shape[1] == 0:
        return float("nan")
    return float(np.square(previous.T @ current).sum() / previous.shape[1])


def _left_bases(path: str | os.PathLike, ranks: dict[str, int]) -> dict[str, np.ndarray]:
    """The top-k left singular vectors of each target with k > 0, read from one SVD cache."""
    check_readable(path)
    with safe_open(str(path), framework="numpy") as cache:
        keys = set(cache.keys())
        missing = [name for name, k in ranks.items() if k > 0 and f"{name}.U" not in keys]
        if missing:
            raise ValueError(f"{path}: SVD cache has no basis for {missing[:3]}")
        return {name: cache.get_slice(f"{name}.U")[:, :k] for name, k in ranks.items() if k > 0}


def overlap_table(svd_caches: Sequence[str | os.PathLike],
                  train_logs: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """Overlap per target (rows) and pair of successive tasks (columns ``"t->t+1"``).

    ``svd_caches[i]`` is the cache of checkpoint i (0: the base model) and ``train_logs[i]`` the
    log of task i+1, which froze ``frozen_ranks`` directions of checkpoint i. A target free in
    task t (k_t = 0) has nothing to keep: NaN.
    """
    if len(svd_caches) < len(train_logs):
        raise ValueError(f"{len(train_logs)} tasks need the SVD caches of checkpoints 0.."
                         f"{len(train_logs) - 1}, got {len(svd_caches)}")
    logs = [TaskLog.read(path) for path in train_logs]
    bases = [_left_bases(svd_caches[i], logs[i].frozen_ranks) for i in range(len(logs))]
    columns = {}
    for t in range(len(logs) - 1):
        before, after = bases[t], bases[t + 1]
        columns[f"{t + 1}->{t + 2}"] = {
            name: frozen_overlap(before[name], after[name]) if name in after else 0.0
            for name in before
        }
    return pd.DataFrame(columns, index=list(logs[0].frozen_ranks), dtype=float)
