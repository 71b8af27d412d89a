"""asvd.pipeline.study: the runs, input functions and outputs a config declares (with the
method variants of asvd.pipeline.ablations), read without Snakemake (the workflow's rules call
exactly these methods)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from asvd.pipeline.layout import Layout, svd_cache_name
from asvd.pipeline.study import Study
from conftest import DEFAULT_CONFIG, REPO, load_yaml


def study_of(**overrides) -> Study:
    config = load_yaml(DEFAULT_CONFIG)
    config.update(overrides)
    return Study(config, REPO)


def step(method: str, step: int, order: int = 1, seed: int = 0):
    """A training step's wildcards as Snakemake passes them (text)."""
    return SimpleNamespace(method=method, order=str(order), seed=str(seed), step=str(step))


@pytest.fixture(scope="module")
def study() -> Study:
    return study_of()


def test_layout_is_the_one_path_scheme(study):
    layout = Layout("results/x")
    assert layout.step.format(method="asvd", order=1, seed=0, step=2) == \
        "results/x/asvd/order1/seed0/step2"
    assert layout.table("baselines", "summary", "md") == "results/x/baselines/tables/summary.md"
    assert layout.figure("", "aa_bwt", "png") == "results/x/figures/aa_bwt.png"
    assert study.layout.root == "results/default"


def test_each_task_starts_where_its_method_says(study):
    base = "results/default/base/model"
    assert study.previous_checkpoint(step("asvd", 1)) == base
    assert study.previous_checkpoint(step("asvd", 3)) == "results/default/asvd/order1/seed0/step2/model"
    assert study.previous_checkpoint(step("pertask", 3)) == base  # schedule per_task
    asvd_cache = svd_cache_name(study.blocks["asvd"]["target_modules"])
    assert study.previous_svd(step("asvd", 3)) == f"results/default/asvd/order1/seed0/step2/{asvd_cache}"
    assert study.previous_svd(step("seqft", 3)) == []  # unconstrained: no cache read
    # importance samples of the previous task; the first task uses its own
    assert study.previous_train_data(step("asvd", 1)) == "results/default/data/alpha/train.jsonl"
    assert study.previous_train_data(step("asvd", 3, order=2)) == "results/default/data/gamma/train.jsonl"


def test_earlier_tasks_are_read_by_replay_and_joint_only(study):
    assert study.earlier_tasks(step("replay", 3)) == ["alpha", "beta"]
    assert study.earlier_train_data(step("asvd", 3)) == []
    assert study.run_steps({"method": "mtl", "order": 1, "seed": 0}) == [4]  # one joint model
    assert study.run_steps({"method": "asvd", "order": 1, "seed": 0}) == [1, 2, 3, 4]
    assert study.shared_adapter_base(step("seqlora", 2)) == ["results/default/base/model"]
    assert study.shared_adapter_base(step("inclora", 2)) == []


def test_method_train_settings_override_the_study_and_task_epochs_resolve():
    config = load_yaml(DEFAULT_CONFIG)
    config["methods"]["asvd"]["train"] = {"lr": 5e-4, "task_epochs": {"beta": 7}}
    study = Study(config, REPO)
    assert study.train_settings("asvd", "beta")["epochs"] == 7
    assert study.train_settings("asvd", "alpha")["epochs"] == config["train"]["epochs"]
    assert study.train_settings("asvd", "alpha")["lr"] == 5e-4
    assert "task_epochs" not in study.train_settings("asvd", "alpha")


def test_variants_join_the_methods_and_are_tuned_as_theirs(study):
    assert "asvd_lrx2" in study.blocks and study.blocks["asvd_lrx2"]["lr_scale"] == 2
    assert study.tuned_as["asvd_lrx2"] == "asvd"
    assert study.tuning_of_run(step("asvd_lrx2", 1)) == ["results/default/tuning/asvd/order1.json"]
    assert "asvd_trr050_block" in study.ablation_methods
    assert study.tuned_keys(step("asvd_trr050_block", 1)) == ["lr"]  # keeps its own trr
    assert study.tuned_keys(step("asvd", 1)) == ["lr", "trr"]
    assert study.tuning_of_run(step("ewc", 1)) == []  # not in tuning.methods
    # the trade-off's and ablation's methods are none of run.methods' and are not in its target
    assert set(study.scopes["tradeoff"].methods) >= {"seqft", "seqft_lrx2", "asvd_lrx4"}


def test_the_base_is_scored_on_every_studied_task_a_run_on_its_order(study):
    base = SimpleNamespace(checkpoint="base")  # the checkpoint's folder under results/default
    run = SimpleNamespace(checkpoint="seqft/order2/seed1/step3")
    assert study.checkpoint_eval_names(base) == ["alpha", "beta", "gamma", "delta", "general"]
    assert study.checkpoint_eval_names(run) == ["delta", "gamma", "beta", "alpha", "general"]
    assert study.checkpoint_eval_inputs(run)["model"] == "results/default/seqft/order2/seed1/step3/model"


def test_premise_inputs_start_at_the_base_and_read_every_task(study):
    inputs = study.premise_inputs(step("asvd", 1))
    assert inputs["checkpoints"][0] == "results/default/base/model"
    assert len(inputs["checkpoints"]) == len(inputs["tests"]) == 4
    assert inputs["reference_tuned"] == []  # a constrained method is its own reference
    assert study.premise_inputs(step("seqft", 1))["reference_tuned"] == \
        ["results/default/tuning/asvd/order1.json"]
    assert study.premise_of_run(step("pertask", 1)) == []  # not sequential: not measured


def test_public_targets_list_tables_figures_and_every_result(study):
    outputs = study.outputs("study")
    assert {"results/default/tables/summary.md", "results/default/tables/summary.html"} <= set(outputs)
    assert "results/default/figures/accuracy_matrix_asvd.pdf" in outputs
    assert not any("/baselines/" in path for path in outputs)
    assert "results/default/baselines/figures/aa_bwt.png" in study.outputs("comparison")
    everything = study.study_outputs()
    assert {"results/default/base/svd-auto.safetensors", "results/default/data/general/stats.json",
            "results/default/ablations/tables/environment.csv",
            "results/default/mtl/order2/seed2/step4/eval.json"} <= everything
    assert "results/default/mtl/order2/seed2/step1/eval.json" not in everything  # joint: step T


def test_an_svd_cache_is_named_by_its_target_set_and_read_by_the_methods_with_it(study):
    """Methods with the same targets share a cache; each cache holds its own set alone, so
    no other method's targets enter it (issue 30, class 4)."""
    asvd = svd_cache_name(study.blocks["asvd"]["target_modules"])
    assert asvd == svd_cache_name(list(reversed(study.blocks["asvd"]["target_modules"])) * 2)
    assert asvd == svd_cache_name(study.blocks["osft"]["target_modules"]) != "svd-auto.safetensors"
    assert study.svd_targets("auto") == ["auto"]
    assert study.svd_targets(asvd[4:12]) == sorted(study.blocks["asvd"]["target_modules"])
    with pytest.raises(ValueError, match="no method of this study has SVD targets 'ffffffff'"):
        study.svd_targets("ffffffff")
    # seqft's premise is measured in asvd's subspace: its steps' caches of asvd's targets
    seqft_step1 = "results/default/seqft/order1/seed0/step1"
    assert study.premise_inputs(step("seqft", 1))["svd"][1] == f"{seqft_step1}/{asvd}"
    assert study.first_task_svd(step("asvd", 1)) == [f"results/default/base/{asvd}"]
    everything = study.study_outputs()
    assert f"{seqft_step1}/{asvd}" in everything
    assert "results/default/asvd/order1/seed0/step1/svd-auto.safetensors" not in everything


def test_without_variants_their_targets_are_empty():
    study = study_of(ablations=None, tradeoff=None)
    assert study.ablation_methods == [] and study.tradeoff_methods == []
    assert not any("/ablations/figures/" in path for path in study.study_outputs())
