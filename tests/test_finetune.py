"""asvd.train.finetune: one continual task of a constrained method, called directly on a prepared
base: the frozen triplets stay exact, the method's options do what they say."""

import torch
from safetensors.torch import load_file

from asvd.io import read_json
from asvd.method.targets import find_targets
from asvd.train.finetune import TaskInputs, TaskPosition, finetune_task
from asvd.train.models import load_checkpoint
from conftest import STAGE_ASVD, STAGE_TRAIN


def run_task(root, files, out, method, step=1, checkpoint=None, svd_path=None):
    return finetune_task(
        TaskInputs(checkpoint=checkpoint or root / "base" / "model", train_file=files["alpha"]["train"],
                   previous_train_file=files["beta"]["train"], svd_path=svd_path),
        TaskPosition("alpha", index=step, count=2),
        method=method, settings=STAGE_TRAIN, seed=0, out_dir=out / "model", log_json=out / "train_log.json",
    )


def test_finetune_task_keeps_frozen_triplets_and_logs(tmp_path, prepared):
    root, files = prepared
    result = run_task(root, files, tmp_path, STAGE_ASVD)
    assert result["max_violation"] <= 1e-5
    assert 0 < sum(result["frozen_ranks"].values()) < sum(result["ranks"].values())
    logged = read_json(tmp_path / "train_log.json")
    assert logged["steps"] == len(logged["loss"]) == 8
    before, _ = load_checkpoint(root / "base" / "model")
    after, _ = load_checkpoint(tmp_path / "model")
    moved = [name for name, m in find_targets(after).items()
             if not torch.equal(m.weight, find_targets(before)[name].weight)]
    assert moved, "a constrained task must still change the target weights"


def test_finetune_task_with_update_projection_keeps_frozen_triplets(tmp_path, prepared):
    root, files = prepared
    result = run_task(root, files, tmp_path, {**STAGE_ASVD, "acts_on": "update"})
    assert result["max_violation"] <= 1e-5
    assert sum(result["frozen_ranks"].values()) > 0


def test_seqft_equals_uniform_unfreeze_one_bit_for_bit(tmp_path, prepared):
    root, files = prepared
    run_task(root, files, tmp_path / "seqft", {"rank_rule": None})
    run_task(root, files, tmp_path / "uniform1",
             {"rank_rule": {"name": "uniform", "unfreeze": 1.0}, "projection": "two_sided"})
    a = load_file(tmp_path / "seqft" / "model" / "model.safetensors")
    b = load_file(tmp_path / "uniform1" / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_first_task_full_trains_unconstrained(tmp_path, prepared):
    root, files = prepared
    method = {**STAGE_ASVD, "first_task": "full"}
    result = run_task(root, files, tmp_path, method)
    assert sum(result["frozen_ranks"].values()) == 0


def test_train_other_params_false_freezes_non_targets(tmp_path, prepared):
    root, files = prepared
    run_task(root, files, tmp_path, {**STAGE_ASVD, "train_other_params": False})
    a = load_file(root / "base" / "model" / "model.safetensors")
    b = load_file(tmp_path / "model" / "model.safetensors")
    model, _ = load_checkpoint(tmp_path / "model")
    targets = {f"{name}.weight" for name in find_targets(model)}
    for key in a:
        if key not in targets:
            assert torch.equal(a[key], b[key]), key
