"""The real-data and paper configurations build their full DAGs offline (dry runs), and a real
benchmark's missing pieces are named before any job starts."""

import json

import pytest
from test_trace import write_trace_dir

from conftest import REPO, effective_config, run_snakemake, shared_dir
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
    """small_real's tasks and its general mixture's in O-LoRA's layout, made by the test (a few
    records each)."""
    from asvd.data.tasks import task

    small_real = effective_config(SMALL_REAL)["benchmark"]
    names = [t["name"] for t in small_real["tasks"]] + small_real["general"]["tasks"]
    for name in names:
        info = task(name)
        folder = root / info.olora_path
        folder.mkdir(parents=True)
        (folder / "labels.json").write_text(json.dumps(list(info.labels)))
        records = [{"sentence": f"text {i}", "label": label}
                   for label in info.labels for i in range(3)]
        for split in ("train", "test"):
            (folder / f"{split}.json").write_text(json.dumps(records))
    return root


@pytest.mark.parametrize("source", ["made by the test", "shared", "hub"])
def test_small_real_dry_runs_on_an_olora_directory_or_the_hub(tmp_path, source):
    """The hub (for users with network) builds the same DAG; its prompts are checked against
    O-LoRA's in tests/test_sources.py."""
    if source == "shared" and shared_dir() is None:
        pytest.skip("../shared (the real O-LoRA subset) is not present")
    olora = {"shared": lambda: shared_dir() / "data" / "olora_cl_benchmark", "hub": lambda: None,
             "made by the test": lambda: write_olora_dir(tmp_path / "CL_Benchmark")}[source]()
    benchmark = "benchmark={name: hub}" if olora is None else f"benchmark={{olora_dir: {olora}}}"
    result = run_snakemake(tmp_path, "all_figures", "-n", "--config", benchmark,
                           configfiles=[SMALL_REAL])
    log = result.stdout + result.stderr
    stats = job_stats(log)
    config = effective_config(SMALL_REAL)
    runs = len(config["run"]["methods"]) * len(config["run"]["seeds"])
    assert stats["finetune_task"] == runs * 4
    assert stats["prepare_dataset"] == 4 + 1  # the tasks and the general mixture
    assert "figures/general_retention.png" in log and stats["base_model"] == 1


def test_small_real_instruction_tunes_its_base_on_the_general_mixture(tmp_path):
    olora = write_olora_dir(tmp_path / "CL_Benchmark")
    result = run_snakemake(tmp_path, "results/small_real/base/model", "-n", "-p", "--config",
                           f"benchmark={{olora_dir: {olora}}}", configfiles=[SMALL_REAL])
    log = result.stdout + result.stderr
    assert "results/small_real/data/general/train.jsonl" in log
    assert job_stats(log) == {"prepare_dataset": 1, "base_model": 1}


def assert_refused(tmp_path, names, *args, configfiles):
    """The dry run fails before any job, and its log names every one of ``names``."""
    result = run_snakemake(tmp_path, "all_figures", "-n", *args, configfiles=configfiles,
                           check=False)
    log = result.stdout + result.stderr
    assert result.returncode != 0
    for name in names:
        assert name in log, f"{name!r} not in:\n{log[-3000:]}"
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("override, names", [
    ({"general": {"tasks": ["agnews"], "train_per_class": 2, "test_per_class": 1}},
     ["benchmark.general.tasks", "agnews", "held out"]),
    ({"general": {"tasks": ["newsgroups"], "train_per_class": 2, "test_per_class": 1}},
     ["benchmark.general.tasks", "newsgroups", "known"]),
    ({"general": None}, ["base_model.instruction_tune", "benchmark.general"]),
    ({"from_test_file": ["yelp"]}, ["benchmark.from_test_file", "'yelp' is not in benchmark.tasks"]),
    ({"from_test_file": ["agnews"], "test_per_class": None},
     ["benchmark.from_test_file", "'agnews' needs"]),
])
def test_a_bad_general_mixture_or_test_file_split_is_named_before_any_job(tmp_path, override,
                                                                         names):
    bad = tmp_path / "bad.yaml"
    olora = write_olora_dir(tmp_path / "CL_Benchmark")
    bad.write_text(json.dumps({"benchmark": {**override, "olora_dir": str(olora)}}))
    assert_refused(tmp_path, names, configfiles=[SMALL_REAL, bad])


def test_only_olora_and_hub_draw_a_general_mixture(tmp_path):
    trace = write_trace_dir(tmp_path / "trace")
    bad = tmp_path / "bad.yaml"
    bad.write_text(json.dumps({"benchmark": {"trace_dir": str(trace), "general": {
        "tasks": ["sst-2"], "train_per_class": 2, "test_per_class": 1}}}))
    paper = REPO / "config" / "paper" / "llama2_7b_chat_trace.yaml"
    assert_refused(tmp_path, ["benchmark.general: only the olora and hub"],
                   configfiles=[paper, bad])


@pytest.mark.parametrize("override, names", [
    ({}, ["benchmark.olora_dir", "None", "--config"]),
    ({"olora_dir": "/no/such/dir"}, ["benchmark.olora_dir", "/no/such/dir"]),
    ({"olora_dir": "/tmp", "tasks": [{"name": "agnews"}, {"name": "newsgroups"}]},
     ["benchmark.tasks", "newsgroups", "known"]),
])
def test_a_real_benchmark_names_what_is_missing_before_any_job(tmp_path, override, names):
    args = ["--config", "benchmark=" + json.dumps(override)] if override else []
    assert_refused(tmp_path, names, *args, configfiles=[SMALL_REAL])


def test_a_real_benchmark_without_a_pretrained_model_is_rejected(tmp_path):
    olora = write_olora_dir(tmp_path / "CL_Benchmark")
    no_model = tmp_path / "no_model.yaml"
    no_model.write_text(f"benchmark: {{olora_dir: {olora}}}\nbase_model: {{pretrained: null}}\n")
    result = run_snakemake(tmp_path, "all_figures", "-n", configfiles=[SMALL_REAL, no_model],
                           check=False)
    assert result.returncode != 0
    assert "base_model.pretrained" in result.stdout + result.stderr
