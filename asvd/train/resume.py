"""Intra-task training state, kept outside a job's declared outputs so that a killed job resumes.

Every ``checkpoint_every`` optimizer steps :func:`asvd.train.loop.train` writes (atomically) the
model's and optimizer's state, the scheduler, both random generators (dropout and data order),
the not yet used part of the data permutation and the loss curve so far. A rerun of the same
job finds the file and continues from that step, giving the same weights as an uninterrupted
run. The file is tagged with a fingerprint of what the run started from (settings, seed, the
starting checkpoint's and data files' sizes and modification times); a state whose fingerprint
differs, or that cannot be read, is ignored and training starts over. It is deleted once the
job's outputs are written.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

from asvd.io import atomic_path

log = logging.getLogger(__name__)


def fingerprint(settings: Mapping, seed: int, files: Iterable[str | Path], **extra: Any) -> str:
    """What a saved state must match to be resumed: settings, seed and the identity (size,
    modification time) of every file the run reads."""
    stamps = []
    for path in files:
        for item in sorted(Path(path).rglob("*")) if Path(path).is_dir() else [Path(path)]:
            if item.is_file():
                stat = item.stat()
                stamps.append([str(item), stat.st_size, stat.st_mtime_ns])
    payload = json.dumps({"settings": dict(settings), "seed": seed, "files": stamps, **extra},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def save_state(path: str | Path, state: Mapping[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(dict(state), tmp)


def load_state(path: str | Path, expected: str) -> dict | None:
    """The saved state if it exists, reads and matches ``expected``; None otherwise (logged)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, weights_only=False)
    except Exception as err:  # a truncated or foreign file: start over, never trust it
        log.warning("resume: ignoring unreadable %s (%s)", path, err)
        return None
    if not isinstance(state, dict) or state.get("fingerprint") != expected:
        log.warning("resume: ignoring %s, saved for other inputs or settings", path)
        return None
    log.info("resume: continuing from step %d of %s", state["step"], path)
    return state
