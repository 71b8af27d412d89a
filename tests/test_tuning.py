"""Tuning on the first task (asvd/train/tuning.py), called directly on data the tests make."""

import pytest

from asvd.io import read_json
from asvd.train import choice, tuning
from conftest import STAGE_ASVD as ASVD
from conftest import STAGE_TRAIN as TRAIN

EVALUATION = {"batch_size": 32, "max_new_tokens": 4, "max_source_length": 64}


def test_every_method_tries_every_lr_and_an_importance_rule_every_trr():
    grid = {"lr": [1e-4, 1e-3], "trr": [0.5, 0.8]}
    assert choice.candidates({"rank_rule": None}, grid) == [
        {"lr": 1e-4, "trr": None}, {"lr": 1e-3, "trr": None}]
    assert choice.candidates({"rank_rule": {"name": "uniform", "unfreeze": 0.25}}, grid) == [
        {"lr": 1e-4, "trr": None}, {"lr": 1e-3, "trr": None}]
    full_first = {**ASVD, "first_task": "full"}
    assert choice.candidates(full_first, grid) == [  # task 1 trains without the constraint
        {"lr": 1e-4, "trr": None}, {"lr": 1e-3, "trr": None}]
    assert choice.candidates(ASVD, grid) == [
        {"lr": 1e-4, "trr": 0.5}, {"lr": 1e-4, "trr": 0.8},
        {"lr": 1e-3, "trr": 0.5}, {"lr": 1e-3, "trr": 0.8}]


def test_the_best_score_wins_and_ties_go_to_the_gentlest_candidate():
    results = [{"lr": 1e-3, "trr": 0.5, "score": 90.0}, {"lr": 1e-4, "trr": 0.5, "score": 90.0},
               {"lr": 1e-4, "trr": 0.8, "score": 90.0}, {"lr": 1e-2, "trr": 0.8, "score": 80.0}]
    assert choice.choose(results) == {"lr": 1e-4, "trr": 0.8}
    assert choice.choose(results[3:] + [{"lr": 1e-5, "trr": None, "score": 95.0}]) == {
        "lr": 1e-5, "trr": None}


def test_a_choice_sets_the_lr_and_the_rules_trr_and_nothing_else():
    method, settings = choice.apply_choice(ASVD, TRAIN, {"lr": 7e-4, "trr": 0.5})
    assert settings == {**TRAIN, "lr": 7e-4}
    assert method == {**ASVD, "rank_rule": {**ASVD["rank_rule"], "trr": 0.5}}
    assert ASVD["rank_rule"]["trr"] == 0.8  # the declared block is not changed
    plain, _ = choice.apply_choice({"rank_rule": None}, TRAIN, {"lr": 1e-3, "trr": None})
    assert plain == {"rank_rule": None}


def test_the_validation_share_is_seeded_disjoint_and_never_empty():
    records = [{"id": str(i)} for i in range(10)]
    train, held = tuning.validation_split(records, 0.2, seed=3)
    assert len(held) == 2 and len(train) == 8
    assert {r["id"] for r in train} | {r["id"] for r in held} == {str(i) for i in range(10)}
    assert tuning.validation_split(records, 0.2, seed=3) == (train, held)
    assert tuning.validation_split(records, 0.2, seed=4) != (train, held)
    assert [len(part) for part in tuning.validation_split(records[:2], 0.01, 0)] == [1, 1]
    with pytest.raises(ValueError, match="1 training record"):
        tuning.validation_split(records[:1], 0.5, 0)


def test_tuning_trains_every_candidate_scores_it_and_records_the_choice(prepared, tmp_path):
    root, files = prepared
    out = tmp_path / "tuning" / "asvd" / "order1.json"
    stale = out.parent / f".{out.name}.killed.work"
    stale.mkdir(parents=True)  # what a killed job left
    result = tuning.tune_first_task(
        root / "base" / "model", files["alpha"]["train"], "alpha", 2, ASVD, TRAIN,
        {"lr": [1e-4, 3e-3], "trr": [0.5, 0.8]}, 0.25, 0, EVALUATION, out)
    assert read_json(out) == result
    assert result["trials"] == 4 and result["records"] == {"train": 48, "validation": 16}
    assert [(c["lr"], c["trr"]) for c in result["candidates"]] == [
        (1e-4, 0.5), (1e-4, 0.8), (3e-3, 0.5), (3e-3, 0.8)]
    assert all(0 <= c["score"] <= 100 and c["final_loss"] > 0 for c in result["candidates"])
    assert result["choice"] == choice.choose(result["candidates"])
    assert choice.read_choice(out) == result["choice"]
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # work folders removed


def test_a_file_without_a_choice_is_refused_naming_it(tmp_path):
    path = tmp_path / "order1.json"
    path.write_text("{}")
    with pytest.raises(ValueError, match=f"{path}: no tuning choice"):
        choice.read_choice(path)


def test_lr_scale_multiplies_the_learning_rate_exactly(prepared, tmp_path):
    """A trade-off variant (lr_scale 2) trains as its method with twice the lr, bit for bit."""
    from safetensors.torch import load_file

    from asvd.train.finetune import TaskInputs, TaskPosition, finetune_task

    root, files = prepared
    inputs = TaskInputs(checkpoint=root / "base" / "model", train_file=files["alpha"]["train"])
    position = TaskPosition(task="alpha", index=1, count=2)
    plain = {"rank_rule": None}
    for name, method, lr in (("scaled", {**plain, "lr_scale": 2.0}, 1e-3), ("doubled", plain, 2e-3)):
        finetune_task(inputs, position, method, {**TRAIN, "lr": lr}, 0, tmp_path / name / "model",
                      tmp_path / name / "log.json")
    scaled, doubled = (load_file(tmp_path / name / "model" / "model.safetensors")
                       for name in ("scaled", "doubled"))
    assert scaled.keys() == doubled.keys()
    assert all(scaled[key].equal(doubled[key]) for key in scaled)


def test_a_retention_variant_takes_the_tuned_lr_and_keeps_its_own_trr():
    variant = {**ASVD, "rank_rule": {**ASVD["rank_rule"], "trr": 0.95}}
    method, settings = choice.apply_choice(variant, TRAIN, {"lr": 7e-4, "trr": 0.5}, keys=["lr"])
    assert settings["lr"] == 7e-4 and method == variant
