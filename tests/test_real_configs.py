"""The real-data and paper configurations build their full DAGs offline (dry runs), and a real
benchmark's missing pieces are named before any job starts."""

import json

import pytest

from conftest import REPO, effective_config, run_snakemake, shared_dir
from test_trace import write_trace_dir
from test_workflow import job_stats

PAPER = sorted((REPO / "config" / "paper").glob("*.yaml"))
SMALL_REAL = REPO / "config" / "small_real.yaml"


@pytest.mark.parametrize("configfile", PAPER, ids=[p.stem for p in PAPER])
def test_paper_configuration_dry_runs_to_its_full_dag(tmp_path, configfile):
    config = effective_config(configfile)
    data = []  # TRACE is read from a directory (here one the test makes)
    if config["benchmark"]["name"] == "trace":
        trace = write_trace_dir(tmp_path / "trace")
        data = ["--config", f"benchmark={{trace_dir: {trace}}}"]
    result = run_snakemake(tmp_path, "all_figures", "-n", *data, configfiles=[configfile])
    stats = job_stats(result.stdout + result.stderr)
    steps = sum(len(config["orders"][o]) for o in config["run"]["orders"])
    assert stats["finetune_task"] == steps * len(config["run"]["methods"]) * len(config["run"]["seeds"])
    assert stats["prepare_dataset"] == len(config["benchmark"]["tasks"])
    assert stats["paper_tables"] == 1 and stats["base_model"] == 1
    assert "general_retention" not in result.stdout + result.stderr  # no general-ability set
    assert config["resources"]["finetune_task"]["gpu"] >= 1


def write_olora_dir(root):
    """Four real tasks in O-LoRA's layout, made by the test (a few records each)."""
    from asvd.tasks import task

    for name in ("agnews", "amazon", "mnli", "sst-2"):
        info = task(name)
        folder = root / info.olora_path
        folder.mkdir(parents=True)
        (folder / "labels.json").write_text(json.dumps(list(info.labels)))
        records = [{"sentence": f"text {i}", "label": label}
                   for label in info.labels for i in range(3)]
        for split in ("train", "test"):
            (folder / f"{split}.json").write_text(json.dumps(records))
    return root


@pytest.mark.parametrize("source", ["made by the test", "shared"])
def test_small_real_dry_runs_on_an_olora_directory(tmp_path, source):
    if source == "shared":
        if shared_dir() is None:
            pytest.skip("../shared (the real O-LoRA subset) is not present")
        olora = shared_dir() / "data" / "olora_cl_benchmark"
    else:
        olora = write_olora_dir(tmp_path / "CL_Benchmark")
    result = run_snakemake(tmp_path, "all_figures", "-n", "--config",
                           f"benchmark={{olora_dir: {olora}}}", configfiles=[SMALL_REAL])
    stats = job_stats(result.stdout + result.stderr)
    assert stats["finetune_task"] == 2 * 4 and stats["prepare_dataset"] == 4


@pytest.mark.parametrize("override, names", [
    ({}, ["benchmark.olora_dir", "None", "--config"]),
    ({"olora_dir": "/no/such/dir"}, ["benchmark.olora_dir", "/no/such/dir"]),
    ({"olora_dir": "/tmp", "tasks": [{"name": "agnews"}, {"name": "newsgroups"}]},
     ["benchmark.tasks", "newsgroups", "known"]),
])
def test_a_real_benchmark_names_what_is_missing_before_any_job(tmp_path, override, names):
    args = ["--config", "benchmark=" + json.dumps(override)] if override else []
    result = run_snakemake(tmp_path, "all_figures", "-n", *args, configfiles=[SMALL_REAL],
                           check=False)
    log = result.stdout + result.stderr
    assert result.returncode != 0
    for name in names:
        assert name in log, f"{name!r} not in:\n{log[-3000:]}"
    assert not (tmp_path / "results").exists()


def test_a_real_benchmark_without_a_pretrained_model_is_rejected(tmp_path):
    olora = write_olora_dir(tmp_path / "CL_Benchmark")
    no_model = tmp_path / "no_model.yaml"
    no_model.write_text(f"benchmark: {{olora_dir: {olora}}}\nbase_model: {{pretrained: null}}\n")
    result = run_snakemake(tmp_path, "all_figures", "-n", configfiles=[SMALL_REAL, no_model],
                           check=False)
    assert result.returncode != 0
    assert "base_model.pretrained" in result.stdout + result.stderr
