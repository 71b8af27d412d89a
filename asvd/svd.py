"""The per-checkpoint SVD cache: fp32 U, S, Vh of every target, stamped with a weight hash.

The SVD of a checkpoint depends only on its weights, so it is computed once and read by the next
task's training, rank analysis and figures. A cache whose stamp does not match the weights it is
used with is recomputed, never silently used.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Mapping

import safetensors
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from asvd.io import atomic_path, sha256_bytes
from asvd.models import compute_device, find_targets, load_checkpoint

FORMAT = "asvd-svd-v1"
log = logging.getLogger(__name__)

SVD = dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def thin_svd(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """fp32 thin SVD ``(U, S, Vh)`` of a weight."""
    return torch.linalg.svd(weight.detach().float(), full_matrices=False)


def library_versions() -> dict[str, str]:
    """Versions that produced a cache, recorded for provenance (not part of validity)."""
    from asvd import __version__

    return {"asvd": __version__, "torch": torch.__version__, "safetensors": safetensors.__version__}


def weights_hash(modules: Mapping[str, torch.nn.Module]) -> str:
    """Content hash of the target weights (name, shape and fp32 bytes, in name order)."""
    def chunks():
        for name in sorted(modules):
            weight = modules[name].weight.detach().float().cpu().contiguous()
            yield f"{name}:{tuple(weight.shape)}".encode()
            yield weight.numpy().tobytes()
    return sha256_bytes(chunks())


def compute_svd(modules: Mapping[str, torch.nn.Module], progress: bool = True) -> SVD:
    return {
        name: tuple(t.contiguous() for t in thin_svd(module.weight))
        for name, module in tqdm(modules.items(), desc="SVD", disable=not progress)
    }


def save_svd(path: str | Path, svd: SVD, stamp: str) -> None:
    tensors = {}
    for name, (U, S, Vh) in svd.items():
        tensors.update({f"{name}.U": U.cpu(), f"{name}.S": S.cpu(), f"{name}.Vh": Vh.cpu()})
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT, "weights_sha256": stamp,
                                               "versions": json.dumps(library_versions())})


def read_stamp(path: str | Path) -> str | None:
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata() or {}
    return meta.get("weights_sha256") if meta.get("format") == FORMAT else None


def load_svd(path: str | Path, names) -> SVD:
    """Read the cached factors into memory (no file mapping outlives the call)."""
    with safe_open(str(path), framework="pt") as handle:
        return {n: tuple(handle.get_tensor(f"{n}.{part}").clone() for part in ("U", "S", "Vh"))
                for n in names}


def cached_names(path: str | Path) -> list[str]:
    with safe_open(str(path), framework="pt") as handle:
        return sorted({key.rsplit(".", 1)[0] for key in handle.keys()})


def cached_svd(path: str | Path | None, model: torch.nn.Module,
               modules: Mapping[str, torch.nn.Module]) -> SVD:
    """The SVD of ``modules`` from the cache at ``path`` if it is valid for ``model``, else computed.

    Valid means: it covers every module and its stamp equals the hash of the model's weights of
    exactly the targets it was computed from (one cache may serve several target sets).
    """
    if path is not None and Path(path).exists():
        try:
            names = cached_names(path)
            named = dict(model.named_modules())
            if set(modules) <= set(names) and all(n in named for n in names):
                if read_stamp(path) == weights_hash({n: named[n] for n in names}):
                    return load_svd(path, modules)
            log.warning("%s: SVD cache does not match the checkpoint's weights; recomputing", path)
        except Exception as err:  # a truncated or foreign file is recomputed, not trusted
            log.warning("%s: unreadable SVD cache (%s); recomputing", path, err)
    return compute_svd(modules)


def build_cache(checkpoint: str | Path, out: str | Path, targets="auto") -> dict:
    """Compute and write the SVD cache of a checkpoint; return a short summary."""
    model, _ = load_checkpoint(checkpoint)
    model.to(compute_device())
    modules = find_targets(model, targets)
    stamp = weights_hash(modules)
    save_svd(out, compute_svd(modules), stamp)
    return {"targets": len(modules), "weights_sha256": stamp}
