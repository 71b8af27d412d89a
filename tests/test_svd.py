"""asvd.method.svd: the SVD cache of a checkpoint, stamped by its weights, used only where it
matches them."""

import json

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from asvd.method import ranks, svd
from asvd.method.constraint import OrthogonalSubspace
from asvd.method.targets import find_targets
from asvd.train.models import load_checkpoint


def test_svd_cache_stamp_detects_tampering(tmp_path, prepared):
    root, _ = prepared
    cache = tmp_path / "svd.safetensors"
    summary = svd.build_cache(root / "base" / "model", cache)
    model, _ = load_checkpoint(root / "base" / "model")
    modules = find_targets(model)
    assert summary["weights_sha256"] == svd.weights_hash(svd.module_weights(modules)) == svd.read_stamp(cache)
    name = next(iter(modules))
    stored = {key: value.clone() for key, value in load_file(cache).items()}  # the file is truncated below
    U, S, Vh = stored[f"{name}.U"], stored[f"{name}.S"], stored[f"{name}.Vh"]
    assert torch.allclose((U * S) @ Vh, modules[name].weight, atol=1e-5)
    # a valid cache is used as stored
    assert torch.equal(svd.cached_svd(cache, model, modules)[name][1], S)
    # weights that differ from the stamp: recomputed from the weights, never the stale cache
    with torch.no_grad():
        modules[name].weight.mul_(2.0)
    assert torch.allclose(svd.cached_svd(cache, model, modules)[name][1], 2 * S, atol=1e-5)
    # a truncated file is recomputed too
    cache.write_bytes(cache.read_bytes()[:100])
    assert torch.allclose(svd.cached_svd(cache, model, modules)[name][1], 2 * S, atol=1e-5)


def test_svd_cache_is_what_the_constraint_accepts(tmp_path, prepared):
    root, _ = prepared
    cache = tmp_path / "svd.safetensors"
    svd.build_cache(root / "base" / "model", cache)
    with safe_open(str(cache), framework="pt") as handle:
        assert set(json.loads(handle.metadata()["asvd"])["versions"]) == {"asvd", "torch", "safetensors"}
    model, _ = load_checkpoint(root / "base" / "model")
    from_file = OrthogonalSubspace(model, rank_rule=ranks.Uniform(0.5), svd=cache)
    computed = OrthogonalSubspace(model, rank_rule=ranks.Uniform(0.5))
    for name, sub in computed.subspaces.items():
        assert torch.allclose(from_file.subspaces[name].anchor(), sub.anchor(), atol=1e-6)
    assert from_file.max_violation() < 5e-6
