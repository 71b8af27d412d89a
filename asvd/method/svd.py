"""The per-checkpoint SVD cache: fp32 U, S, Vh of every target, stamped with a weight hash.

The SVD of a checkpoint depends only on its weights, so it is computed once and read by the next
task's training, rank analysis and figures. A cache whose stamp does not match the weights it is
used with is recomputed, never silently used.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Mapping

import safetensors
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from asvd.io import atomic_path, read_json, sha256_bytes, verify_checksums
from asvd.method.targets import family, select_weights

FORMAT = "asvd-svd-v2"
log = logging.getLogger(__name__)

SVD = dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def thin_svd(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """fp32 thin SVD ``(U, S, Vh)`` of a weight."""
    return torch.linalg.svd(weight.detach().float(), full_matrices=False)


def library_versions() -> dict[str, str]:
    """Versions that produced a cache, recorded for provenance (not part of validity)."""
    from asvd import __version__

    return {"asvd": __version__, "torch": torch.__version__, "safetensors": safetensors.__version__}


def weights_hash(weights: Mapping[str, torch.Tensor]) -> str:
    """Content hash of target weights (name -> weight: name, shape and fp32 bytes, in name order)."""
    def chunks():
        for name in sorted(weights):
            weight = weights[name].detach().float().cpu().contiguous()
            yield f"{name}:{tuple(weight.shape)}".encode()
            yield weight.numpy().tobytes()
    return sha256_bytes(chunks())


def module_weights(modules: Mapping[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    return {name: module.weight for name, module in modules.items()}


def compute_svd(weights: Mapping[str, torch.Tensor], progress: bool = True) -> SVD:
    """Thin SVD of each weight (name -> weight)."""
    return {
        name: tuple(t.contiguous() for t in thin_svd(weight))
        for name, weight in tqdm(weights.items(), desc="SVD", disable=not progress)
    }


def save_svd(path: str | Path, svd: SVD, stamp: str) -> None:
    tensors = {}
    for name, (U, S, Vh) in svd.items():
        tensors.update({f"{name}.U": U.cpu(), f"{name}.S": S.cpu(), f"{name}.Vh": Vh.cpu()})
    with atomic_path(path) as tmp:
        # one metadata key: safetensors writes several in a random order, so a rebuilt cache
        # would not be byte-identical
        save_file(tensors, str(tmp), metadata={"asvd": json.dumps(
            {"format": FORMAT, "weights_sha256": stamp, "versions": library_versions()}, sort_keys=True)})


def read_stamp(path: str | Path) -> str | None:
    with safe_open(str(path), framework="pt") as handle:
        written = (handle.metadata() or {}).get("asvd", "{}")
    try:
        meta = json.loads(written)
    except json.JSONDecodeError:
        return None  # not this format's metadata: the cache is rebuilt
    return meta.get("weights_sha256") if isinstance(meta, dict) and meta.get("format") == FORMAT else None


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
                if read_stamp(path) == weights_hash({n: named[n].weight for n in names}):
                    return load_svd(path, modules)
            log.warning("%s: SVD cache does not match the checkpoint's weights; recomputing", path)
        except Exception as err:  # a truncated or foreign file is recomputed, not trusted
            log.warning("%s: unreadable SVD cache (%s); recomputing", path, err)
    return compute_svd(module_weights(modules))


def checkpoint_weights(checkpoint: str | Path, targets="auto") -> dict[str, torch.Tensor]:
    """The target weights of a checkpoint directory as module name -> tensor, read from its
    safetensors files without building the model (checksums verified first). Targets are chosen
    by name and shape; only their tensors are read."""
    checkpoint = Path(checkpoint)
    verify_checksums(checkpoint)
    index = checkpoint / "model.safetensors.index.json"
    files = (sorted(set(read_json(index)["weight_map"].values())) if index.is_file()
             else ["model.safetensors"])
    with contextlib.ExitStack() as stack:
        handles = [stack.enter_context(safe_open(str(checkpoint / name), framework="pt"))
                   for name in files]
        where = {key.removesuffix(".weight"): handle for handle in handles for key in handle.keys()
                 if key.endswith(".weight")}
        shapes = {name: handle.get_slice(f"{name}.weight").get_shape()
                  for name, handle in where.items()}
        names = select_weights(shapes, family(read_json(checkpoint / "config.json")), targets)
        return {name: where[name].get_tensor(f"{name}.weight") for name in names}


def build_cache(checkpoint: str | Path, out: str | Path, targets="auto", device=None) -> dict:
    """Compute and write the SVD cache of a checkpoint's targets on ``device`` (default: the
    first GPU torch sees, else the CPU); return a short summary."""
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    weights = {name: weight.to(device) for name, weight in checkpoint_weights(checkpoint, targets).items()}
    stamp = weights_hash(weights)
    save_svd(out, compute_svd(weights), stamp)
    return {"targets": len(weights), "weights_sha256": stamp}
