"""The Snakemake workflow: dry runs, DAG shape, config errors, one tiny end-to-end run, lint.

Every Snakemake call runs ``python -m snakemake`` in a subprocess with ``--directory`` set to a
temporary folder, so nothing lands in the repository and tests can run in parallel (xdist).
The end-to-end run is built once per session: the first worker that needs it builds it under a
file lock, the others reuse it read-only.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from asvd.pipeline.layout import svd_cache_name, targets_key
from conftest import (
    OFFLINE_ENV,
    REPO,
    SNAKEFILE,
    TEST_CONFIGS,
    built_once,
    effective_config,
    html_table_rows,
    learned_files,
    run_snakemake,
    write_olora_run,
)

pytestmark = pytest.mark.workflow

TARGETS = ["all_figures", "all_tables", "all_train", "all_eval", "all_baselines", "all_ablations",
           "all_tradeoff"]
CONFIGS = {"default": [], "tiny": [TEST_CONFIGS / "tiny.yaml"]}
PUBLISHED_TASKS = ["dbpedia", "amazon", "yahoo"]
PUBLISHED_ROWS = [[98.0], [90.0, 80.0], [60.0, 70.0, 90.0]]
# The design: asvd and osft train under the orthogonal-subspace constraint, seqft does not.
CONSTRAINED = {"seqft": False, "asvd": True, "asvd_update": True, "osft": True}


# --------------------------------------------------------------------------- parsing helpers


def job_stats(log: str) -> Counter:
    """The ``Job stats`` table of a (dry) run: rule -> number of jobs."""
    match = re.search(r"^Job stats:\n(.*?)^total\s+\d+", log, re.M | re.S)
    assert match, f"no job stats in:\n{log[-3000:]}"
    stats = Counter()
    for line in match.group(1).splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1].isdigit():
            stats[fields[0]] = int(fields[1])
    return stats


def summary_outputs(stdout: str) -> dict[str, str]:
    """``snakemake --summary``: every declared output of the DAG's jobs -> the rule writing it."""
    lines = stdout.strip().splitlines()
    assert lines and lines[0].startswith("output_file\t"), stdout[:2000]
    return {fields[0]: fields[2] for fields in (line.split("\t") for line in lines[1:])}


@dataclass
class DryJob:
    outputs: set[str]
    inputs: set[str]


def dry_run_jobs(log: str) -> list[DryJob]:
    """Jobs of a dry run from scratch, with files from their ``Reason`` lines.

    In an empty working directory every job reports ``Missing output files: <its outputs>`` and
    ``Input files updated by another job: <its inputs>`` (every input is made by some job).
    Every job prints an indented ``reason:`` line.
    """
    jobs = []
    for match in re.finditer(r"^\s+reason: (.*)$", log, re.M):
        fields = {}
        for part in match.group(1).split("; "):
            key, _, value = part.partition(": ")
            fields[key.strip()] = {item for item in value.split(", ") if item}
        jobs.append(
            DryJob(
                outputs=fields.get("Missing output files", set()),
                inputs=fields.get("Input files updated by another job", set()),
            )
        )
    return jobs


@dataclass(frozen=True)
class DagNode:
    rule: str
    wildcards: tuple  # sorted (name, value) pairs
    needrun: bool

    def get(self, name):
        return dict(self.wildcards).get(name)


# The wildcards of the run-level rules, which a node may inherit from any dependency (training
# takes method and order from its tuning job's label).
RUN_WILDCARDS = {"finetune_task": ("method", "order", "seed", "step"),
                 "collect_metrics": ("method", "order", "seed"),
                 "measure_premise": ("method", "order", "seed")}


def parse_dot_dag(dot: str) -> tuple[dict[int, DagNode], set[tuple[int, int]]]:
    """Nodes and ``dependency -> job`` edges of ``snakemake --dag dot``.

    A node's label shows only the wildcards its dependencies lack, so a job inherits the
    missing ones from dependencies of the same rule (task t's training from task t-1's), and
    a run-level rule its own wildcards (RUN_WILDCARDS) from any dependency.
    Dashed nodes are jobs that need not run.
    """
    raw, edges = {}, set()
    for match in re.finditer(r'^\s*(\d+)\[label = "(.*?)", color = "[^"]*", style="([^"]*)"\];', dot, re.M):
        rule, *pairs = match.group(2).split("\\n")
        wildcards = dict(pair.split(": ", 1) for pair in pairs)
        raw[int(match.group(1))] = (rule, wildcards, "dashed" not in match.group(3))
    for match in re.finditer(r"^\s*(\d+) -> (\d+)\s*$", dot, re.M):
        edges.add((int(match.group(1)), int(match.group(2))))
    assert raw and edges, f"no DAG in:\n{dot[:2000]}"

    def full_wildcards(node, seen=()):
        rule, wildcards, _ = raw[node]
        merged = {}
        for dep, job in edges:
            if job == node and raw[dep][0] == rule and dep not in seen:
                merged.update(full_wildcards(dep, (*seen, node)))
            elif job == node and dep not in seen:
                inherited = full_wildcards(dep, (*seen, node))
                merged.update({key: value for key, value in inherited.items()
                               if key in RUN_WILDCARDS.get(rule, ()) and key not in merged})
        merged.update(wildcards)
        return merged

    nodes = {
        node: DagNode(rule, tuple(sorted(full_wildcards(node).items())), needrun)
        for node, (rule, _, needrun) in raw.items()
    }
    return nodes, edges


def descendants(start: int, edges: set[tuple[int, int]]) -> set[int]:
    found, frontier = set(), {start}
    while frontier:
        frontier = {job for dep, job in edges if dep in frontier} - found
        found |= frontier
    return found


def run_keys(config: dict):
    for method in config["run"]["methods"]:
        for order in config["run"]["orders"]:
            for seed in config["run"]["seeds"]:
                yield method, order, seed


def is_constrained(config: dict, method: str) -> bool:
    return config["methods"][method]["rank_rule"] is not None


def is_svd_cache(path: str) -> bool:
    """``.../svd-<targets>.safetensors``: a checkpoint's SVD cache of one target set."""
    return re.search(r"/svd-[^/]+\.safetensors$", str(path)) is not None


# --------------------------------------------------------------------------- dry runs


def test_a_dry_run_touches_nothing_the_study_does_not_own(tmp_path):
    """A user's folder linked inside results/<experiment>/ and a file of theirs beside the
    study's results keep their names and bytes through a dry run, even where they look damaged;
    the study's own damaged output is moved aside."""
    results = tmp_path / "results" / "tiny"
    theirs = tmp_path / "elsewhere"
    (theirs / "model").mkdir(parents=True)
    (theirs / "summary.json").write_text("{cut")
    results.mkdir(parents=True)
    (results / "mine").symlink_to(theirs, target_is_directory=True)
    (results / "notes.json").write_text("")
    ours = results / "data" / "alpha" / "stats.json"
    ours.parent.mkdir(parents=True)
    ours.write_text("{cut")
    result = run_snakemake(tmp_path, "-n", configfiles=[TEST_CONFIGS / "tiny.yaml"])
    assert sorted(p.name for p in theirs.iterdir()) == ["model", "summary.json"]
    assert (results / "notes.json").read_text() == "" and (results / "mine").is_symlink()
    assert not ours.exists() and (ours.parent / "stats.json.corrupt-1").exists()
    assert f"damaged result: {ours.relative_to(tmp_path)}" in result.stderr


@pytest.mark.parametrize("config_name", sorted(CONFIGS))
@pytest.mark.parametrize("target", [*TARGETS, None])
def test_dry_run_of_every_public_target(tmp_path, config_name, target):
    config = effective_config(*CONFIGS[config_name])
    result = run_snakemake(tmp_path, *([target] if target else []), "-n",
                           configfiles=CONFIGS[config_name])
    stats = job_stats(result.stdout + result.stderr)
    runs = list(run_keys(config))
    steps = sum(len(config["orders"][order]) for _, order, _ in runs)
    assert stats[target or "all_figures"] == 1  # all_figures is the default target
    assert stats["base_model"] == 1
    if target == "all_train":
        assert stats["finetune_task"] == steps
        assert not stats["evaluate_checkpoint"] and not stats["plot_figure"]
    if target in ("all_eval", "all_tables", "all_figures", None):
        assert stats["evaluate_checkpoint"] == steps + 1  # every step and the base model
    if target in ("all_tables", "all_figures", None):
        assert stats["collect_metrics"] == len(runs)
        assert stats["summary_tables"] == 1
    if target in ("all_figures", None):
        assert stats["plot_figure"] >= 4 + len(config["run"]["methods"])
    assert not (tmp_path / "results").exists()  # a dry run writes no results
    # every job but the targets says where it logs; nothing prints "Shell command: None"
    output = result.stdout + result.stderr
    jobs = re.findall(r"^(?:local)?rule (\w+):\n((?:    .*\n)+)", output, re.M)
    assert len(jobs) == sum(stats.values())
    logs = f"results/{config['experiment']}/logs/"
    for rule, lines in jobs:
        if not rule.startswith("all_"):
            assert re.search(rf"^    log: {re.escape(logs)}{rule}(/\S+)?\.log$", lines, re.M), (rule, lines)
    assert "Shell command" not in output


def test_the_quick_look_is_one_seed_of_the_default_with_osft_beside(tmp_path):
    result = run_snakemake(tmp_path, "-n", configfiles=[REPO / "config" / "quick.yaml"])
    stats = job_stats(result.stdout + result.stderr)
    assert stats["finetune_task"] == 3 * 2 * 4  # seqft, asvd, osft x two orders x four tasks
    assert stats["collect_metrics"] == 6 and stats["summary_tables"] == 1
    assert "results/quick/osft/order2/seed0/step4/model" in result.stdout


def test_the_retention_ablation_trains_every_variant_once_beside_its_references(tmp_path):
    """trr x granularity variants of asvd (trr 0.8 with blocks is asvd itself) plus seqft, every
    order and seed of the study; one table and the learnability/retention figure over them."""
    config = effective_config(TEST_CONFIGS / "tiny.yaml")
    result = run_snakemake(tmp_path, "all_ablations", "-n", configfiles=[TEST_CONFIGS / "tiny.yaml"])
    log = result.stdout + result.stderr
    stats = job_stats(log)
    spec = config["ablations"]
    methods = len(spec["trr"]) * len(spec["granularity"]) + len(spec["references"])
    runs = len(config["run"]["orders"]) * len(config["run"]["seeds"])
    assert stats["finetune_task"] == methods * runs * 2  # two tasks per tiny order
    # aa_bwt, learnability_retention and premise
    assert stats["ablation_tables"] == 1 and stats["ablation_figure"] == 3
    for variant in ("asvd_trr050_block", "asvd_trr095_matrix", "asvd"):
        assert f"results/tiny/{variant}/order1" in log
    assert "asvd_trr080_block" not in log
    assert "tuning/asvd_trr" not in log  # a variant takes asvd's tuned lr, keeps its own trr


def test_the_tradeoff_trains_each_method_at_every_factor_of_its_tuned_lr(tmp_path):
    """Every trade-off method at lr x1 (itself) and each factor, every order and seed; a variant
    reads its method's tuning instead of tuning again; one table, three figures."""
    config = effective_config(TEST_CONFIGS / "tiny.yaml")
    result = run_snakemake(tmp_path, "all_tradeoff", "-n", configfiles=[TEST_CONFIGS / "tiny.yaml"])
    log = result.stdout + result.stderr
    stats = job_stats(log)
    spec = config["tradeoff"]
    runs = len(config["run"]["orders"]) * len(config["run"]["seeds"])
    methods = len(spec["methods"]) * (1 + len(spec["lr_scales"]))
    assert stats["finetune_task"] == methods * runs * 2  # two tasks per tiny order
    assert stats["tune_first_task"] == len(spec["methods"]) * len(config["run"]["orders"])
    assert stats["tradeoff_tables"] == 1 and stats["tradeoff_figure"] == 3
    assert "results/tiny/asvd_lrx4/order1/seed0/step2/model" in log
    assert "results/tiny/tuning/asvd/order1.json" in log and "tuning/asvd_lrx" not in log


@pytest.mark.parametrize("case, message", [
    ({"tradeoff": {"methods": ["nothing"]}}, "tradeoff.methods: 'nothing' has no entry under methods"),
    ({"tradeoff": {"lr_scales": [1]}}, "tradeoff.lr_scales: 1 (a factor other than 1"),
    ({"ablations": {"method": "seqft"}}, "ablations.method: 'seqft' does not use the importance rank rule"),
    ({"ablations": {"method": "nothing"}}, "ablations.method: 'nothing' has no entry under methods"),
    ({"ablations": {"references": ["nothing"]}}, "ablations.references: 'nothing' has no entry under methods"),
    ({"ablations": {"trr": [0.05]}}, "ablations.trr: 0.05 with methods.asvd.rank_rule: rank rule importance: need 0 <= mrr <= trr"),
])
def test_a_bad_ablation_is_refused_naming_the_key(tmp_path, case, message):
    configfile = tmp_path / "bad.yaml"
    configfile.write_text(yaml.safe_dump(case))
    result = run_snakemake(tmp_path, "-n", configfiles=[TEST_CONFIGS / "tiny.yaml", configfile],
                           check=False)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr


def test_dry_run_of_the_benchmark_target_touches_no_study_rule(tmp_path):
    result = run_snakemake(tmp_path, "all_costs", "-n")
    stats = job_stats(result.stdout + result.stderr)
    assert stats == Counter(all_costs=1, constraint_cost=1, constraint_cost_report=1)
    assert "results/cost/constraint.json" in result.stdout + result.stderr


@pytest.mark.parametrize("config_name", sorted(CONFIGS))
def test_task_chain_dag_shape(tmp_path, config_name):
    """Task t trains from task t-1's checkpoint (and its SVD cache if constrained); a per_task
    method trains every task from the base model."""
    config = effective_config(*CONFIGS[config_name])
    results = f"results/{config['experiment']}"
    result = run_snakemake(tmp_path, "all_figures", "-n", configfiles=CONFIGS[config_name])
    step_re = re.compile(
        rf"^{re.escape(results)}/(?P<method>[^/]+)/order(?P<order>\d+)/seed(?P<seed>\d+)/step(?P<step>\d+)/model$"
    )
    trainings = {}
    for job in dry_run_jobs(result.stdout + result.stderr):
        for output in job.outputs:
            match = step_re.match(output)
            if match:
                key = (match["method"], int(match["order"]), int(match["seed"]), int(match["step"]))
                assert key not in trainings, f"two jobs write {output}"
                trainings[key] = job
    def steps(method, order):  # a joint (MTL) method trains once, as the last step
        count = len(config["orders"][order])
        joint = config["methods"][method].get("schedule") == "joint"
        return [count] if joint else range(1, count + 1)

    expected = {
        (method, order, seed, step)
        for method, order, seed in run_keys(config)
        for step in steps(method, order)
    }
    assert set(trainings) == expected

    for method in config["run"]["methods"]:
        if method in CONSTRAINED:
            assert is_constrained(config, method) == CONSTRAINED[method], method
    for (method, order, seed, step), job in sorted(trainings.items()):
        run = f"{results}/{method}/order{order}/seed{seed}"
        per_task = config["methods"][method].get("schedule") in ("per_task", "joint")
        previous = f"{results}/base" if step == 1 or per_task else f"{run}/step{step - 1}"
        task = config["orders"][order][step - 1]
        where = f"{method} order {order} seed {seed} step {step}: inputs {sorted(job.inputs)}"
        assert f"{previous}/model" in job.inputs, where
        assert [i for i in job.inputs if i.endswith("/model")] == [f"{previous}/model"], where
        assert f"{results}/data/{task}/train.jsonl" in job.inputs, where
        svd_inputs = [i for i in job.inputs if is_svd_cache(i)]
        if is_constrained(config, method):
            cache = svd_cache_name(config["methods"][method].get("target_modules", "auto"))
            assert svd_inputs == [f"{previous}/{cache}"], where
        else:
            assert svd_inputs == [], where


BAD_CONFIGS = {
    "unknown top-level key": ({"bogus_setting": 1}, ["bogus_setting"]),
    "unknown nested key": ({"train": {"learning_rate": 0.1}}, ["learning_rate"]),
    "task not in benchmark": (
        {"orders": {1: ["alpha", "omega"]}},
        ["omega", "orders.1", "benchmark.tasks"],
    ),
    "method without definition": (
        {"run": {"methods": ["seqft", "mystery"]}},
        ["mystery", "run.methods"],
    ),
    "undefined order": ({"run": {"orders": [7]}}, ["run.orders", "7"]),
    "wrong type": ({"train": {"lr": "fast"}}, ["train.lr", "'fast' is not of type 'number'"]),
    "rank ratio above 1": (
        {"methods": {"asvd": {"rank_rule": {"mrr": 1.5}}}},
        ["methods.asvd.rank_rule.mrr", "1.5 is greater than the maximum of 1"],
    ),
    "rank ratio below 0": (
        {"methods": {"osft": {"rank_rule": {"unfreeze": -0.1}}}},
        ["methods.osft.rank_rule.unfreeze", "-0.1"],
    ),
    "mrr above trr": (
        {"methods": {"asvd": {"rank_rule": {"mrr": 0.9, "trr": 0.2}}}},
        ["methods.asvd.rank_rule", "mrr <= trr", "mrr=0.9"],
    ),
    "another rule's parameter": (
        {"methods": {"osft": {"rank_rule": {"mrr": 0.1}}}},
        ["methods.osft.rank_rule", "does not take ['mrr']"],
    ),
    "empty task order": ({"orders": {1: []}}, ["orders.1", "should be non-empty"]),
    "duplicate task in an order": (
        {"orders": {1: ["alpha", "alpha"]}}, ["orders.1", "non-unique"],
    ),
    "seed not an integer": ({"run": {"seeds": [0.5]}}, ["run.seeds.0", "not of type 'integer'"]),
    "unknown processes": ({"train": {"num_processes": 0}}, ["train.num_processes"]),
    "experiment outside results/": ({"experiment": ".."}, ["experiment: '..' does not match"]),
    "experiment where the cost measurement writes": (
        {"experiment": "cost"}, ["experiment: 'cost'", "taken by the constraint's cost measurement"]),
    "order key with a leading zero": ({"orders": {"01": ["alpha"]}}, ["orders: '01' does not match"]),
    "order key not a number": ({"orders": {"x": ["alpha"]}}, ["orders: 'x' does not match"]),
    "seed beyond 2**32 - 1": ({"run": {"seeds": [2**32]}}, ["run.seeds.0", "4294967296 is greater than"]),
    "reference run named like a method, at no path": (
        {"reference_runs": {"seqft": {"path": "nowhere", "order": 1}}},
        ["reference_runs.seqft: the name is a method's", "reference_runs.seqft.path: 'nowhere'"],
    ),
    "premise measured against an unconstrained method": (
        {"premise": {"reference": "seqft"}},
        ["premise.reference: 'seqft' is not a constrained method"],
    ),
    "premise without samples": ({"premise": {"samples": 0}}, ["premise", "samples"]),
    "tuning a method that is not declared": (
        {"tuning": {"methods": ["seqft", "mystery"]}},
        ["tuning.methods: 'mystery' has no entry under methods"],
    ),
    "tuning a trr below the rule's mrr": (
        {"tuning": {"grid": {"lr": [1e-3], "trr": [0.05]}}},
        ["tuning.grid.trr: 0.05", "mrr <= trr"],
    ),
    "reference run without its order": (
        {"reference_runs": {"published": {"path": "config"}}},
        ["reference_runs.published", "'order' is a required property"],
    ),
    "benchmark without its reference": (
        {"constraint_cost": {"methods": ["asvd", "peft_osf"]}},
        ["constraint_cost", "methods"],
    ),
    "benchmark size unknown": (
        {"constraint_cost": {"sizes": {"t5-xxl": {"batch": 1, "source_length": 8,
                                                       "target_length": 8, "steps": 1,
                                                       "warmup": 0}}}},
        ["constraint_cost", "sizes", "t5-xxl"],
    ),
}


def test_nested_command_line_values_are_read_as_the_schemas_types(tmp_path):
    """--config 'train={batch_size: 8}' reaches Snakemake as text ('8'); it must plan as 8, and
    an order given on the command line replaces the config file's order of that number."""
    result = run_snakemake(tmp_path, "all_train", "-n", "--config", "train={batch_size: 8, lr: 1e-3}",
                           "orders={1: [beta, alpha]}", "run={methods: [seqft], orders: [1], seeds: [0]}",
                           configfiles=[TEST_CONFIGS / "tiny.yaml"])
    log = result.stdout + result.stderr
    assert job_stats(log)["finetune_task"] == 2  # before, the schema refused batch_size '8'
    [step1] = [job for job in dry_run_jobs(log)
               if "results/tiny/seqft/order1/seed0/step1/model" in job.outputs]
    assert "results/tiny/data/beta/train.jsonl" in step1.inputs
    assert "results/tiny/data/alpha/train.jsonl" not in step1.inputs


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_is_rejected_naming_the_key(tmp_path, case):
    override, names = BAD_CONFIGS[case]
    configfile = tmp_path / "bad.yaml"
    configfile.write_text(yaml.safe_dump(override))
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = run_snakemake(workdir, "all_figures", "-n", configfiles=[configfile], check=False)
    log = result.stdout + result.stderr
    assert result.returncode != 0, log[-3000:]
    for name in names:
        assert name in log, f"{name!r} not named in:\n{log[-3000:]}"
    first = next(line for line in log.splitlines() if line.startswith("invalid config:"))
    assert re.match(r"invalid config: [\w.()\- ]+: \S", first), first  # a key on the first line
    assert not (workdir / "results").exists()


def test_a_config_file_that_repeats_a_key_is_refused_before_any_job(tmp_path):
    configfile = tmp_path / "twice.yaml"
    configfile.write_text("experiment: twice\nrun:\n  seeds: [0]\n  seeds: [0, 1]\n")
    result = run_snakemake(tmp_path, "all_figures", "-n", configfiles=[configfile], check=False)
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"invalid config: {configfile}:4: key 'seeds' repeats the one on line 3" in log, log[-2000:]
    assert not (tmp_path / "results").exists()


# --------------------------------------------------------------------------- lint and format


def test_snakemake_lint_is_clean(tmp_path):
    result = run_snakemake(tmp_path, "--lint", check=False)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log
    assert "Lints for" not in log, log
    assert "Congratulations" in log, log


def test_snakefmt_check():
    files = [str(SNAKEFILE), *sorted(str(p) for p in (REPO / "workflow" / "rules").glob("*.smk"))]
    result = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--check", *files],
        capture_output=True, text=True, cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------- end to end


@dataclass
class EndToEnd:
    workdir: Path
    configfile: Path
    config: dict
    outputs: list[str]

    @property
    def results(self) -> Path:
        return self.workdir / "results" / self.config["experiment"]

    def run_dir(self, method: str) -> Path:
        order, seed = self.config["run"]["orders"][0], self.config["run"]["seeds"][0]
        return self.results / method / f"order{order}" / f"seed{seed}"


def _build_end_to_end(workdir: Path) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    configfile = workdir / "e2e.yaml"
    tiny = yaml.safe_load((TEST_CONFIGS / "tiny.yaml").read_text())
    tiny["experiment"] = "e2e"
    tiny["run"] = {"methods": ["seqft", "asvd"], "orders": [1], "seeds": [0]}
    # a published run beside the methods, O-LoRA's layout (its log scores seen tasks only)
    published = write_olora_run(workdir / "published", PUBLISHED_ROWS, PUBLISHED_TASKS)
    tiny["reference_runs"] = {"published": {"path": str(published), "order": 1}}
    configfile.write_text(yaml.safe_dump(tiny, sort_keys=False))
    # The study as this run sees it, frozen now (config/config.yaml may change later).
    config = effective_config(configfile)
    (workdir / "effective_config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    plan = run_snakemake(workdir, "all_figures", "--summary", configfiles=[configfile])
    outputs = sorted(summary_outputs(plan.stdout))
    assert outputs, "the DAG declares no outputs"
    result = run_snakemake(workdir, "all_figures", "--cores", "2", configfiles=[configfile],
                           check=False)
    if result.returncode != 0:
        logs = sorted((workdir / "results").rglob("*.log"))
        tails = "\n".join(
            f"--- {log}\n{log.read_text(errors='replace')[-1500:]}" for log in logs
            if "Error" in log.read_text(errors="replace")
        )
        raise RuntimeError(
            f"end-to-end run failed ({result.returncode}):\n{result.stderr[-5000:]}\n{tails}"
        )
    return {"workdir": str(workdir), "configfile": str(configfile), "outputs": outputs}


@pytest.fixture(scope="module")
def e2e(tmp_path_factory) -> EndToEnd:
    """The tiny study (seqft + asvd, order 1, seed 0) run once per session for all workers."""
    data = built_once(tmp_path_factory, "e2e", _build_end_to_end)
    workdir = Path(data["workdir"])
    config = yaml.safe_load((workdir / "effective_config.yaml").read_text())
    return EndToEnd(workdir, Path(data["configfile"]), config, data["outputs"])


def test_e2e_the_tiny_study_learns_and_forgets(e2e):
    """Guard: every comparison of the tiny study's matrices compares something learned. seqft
    learns each task it trains (its own step beats the base by 25 points or more) and its
    matrix is not flat."""
    matrix = pd.read_csv(e2e.run_dir("seqft") / "accuracy_matrix.csv", index_col=0)
    for task in matrix.columns:
        assert matrix.loc[task, task] >= matrix.loc["base", task] + 25, matrix
    assert matrix.to_numpy().std() > 0, matrix


def test_e2e_every_declared_output_exists(e2e):
    expected_figures = {f"results/e2e/figures/{name}.{ext}"
                        for name in ["task_curves", "aa_bwt", "accuracy_matrix_asvd"]
                        for ext in ["png", "pdf"]}
    assert expected_figures <= set(e2e.outputs)
    assert {f"results/e2e/tables/summary.{ext}" for ext in ["csv", "md", "tex", "html"]} <= set(e2e.outputs)
    for output in e2e.outputs:
        path = e2e.workdir / output
        assert path.exists(), output
        if path.is_dir():
            assert any(path.iterdir()), f"{output} is empty"
        else:
            assert path.stat().st_size > 0, f"{output} is empty"


def test_e2e_a_published_run_sits_beside_the_methods_in_the_table_and_figures(e2e):
    """AA = (60 + 70 + 90) / 3 and BWT = ((60 - 98) + (70 - 80)) / 2 by hand; FWT has no base row."""
    reference = e2e.results / "reference_runs" / "published"
    summary = json.loads((reference / "summary.json").read_text())
    assert summary["aa"] == pytest.approx(220 / 3) and summary["bwt"] == pytest.approx(-24.0)
    assert summary["fwt"] is None and summary["notes"]
    table = pd.read_csv(e2e.results / "tables" / "summary.csv", dtype={"order": str})
    assert table["method"].unique().tolist() == ["seqft", "asvd", "published"]
    row = table[(table["method"] == "published") & (table["order"] == "1")].iloc[0]
    assert row["aa_mean"] == pytest.approx(220 / 3) and np.isnan(row["fwt_mean"])
    for figure in ("task_curves", "accuracy_matrices", "aa_bwt", "aa_per_order", "learnability_retention"):
        assert f"results/e2e/figures/{figure}.png" in e2e.outputs
    plan = run_snakemake(e2e.workdir, "all_figures", "--summary", configfiles=[e2e.configfile]).stdout
    assert "results/e2e/reference_runs/published/summary.json" in plan


def test_e2e_each_run_records_the_environment_it_was_trained_in(e2e):
    summary = json.loads((e2e.run_dir("asvd") / "summary.json").read_text())
    env = summary["environment"]
    assert env["torch_threads"] == e2e.config["threads"]["finetune_task"]  # fixed by the config
    assert env["packages"]["torch"] and env["cpu"] and "gpu" in env
    table = pd.read_csv(e2e.results / "tables" / "environment.csv")
    assert table["runs"].sum() == len(e2e.config["run"]["methods"])  # the published run has none


def test_e2e_asvd_freezes_at_least_mrr_of_every_target_and_logs_what_set_it(e2e):
    """From task 2 on every target keeps k >= floor(mrr * rank); each log holds the importance
    and retention ratio per block that set k; the diagnostics figures exist."""
    rule = e2e.config["methods"]["asvd"]["rank_rule"]
    for step in (1, 2):
        log = json.loads((e2e.run_dir("asvd") / f"step{step}" / "train_log.json").read_text())
        assert log["granularity"] == "block" and log["mrr"] == rule["mrr"]
        assert set(log["importance"]) == {f"model.{side}.layers.{i}" for side in ("encoder", "decoder")
                                          for i in (0, 1)}
        assert all(0 < value <= 1 for value in log["importance"].values())
        for target, k in log["frozen_ranks"].items():
            assert k >= int(rule["mrr"] * log["ranks"][target]), (step, target, k)
    for name in ("importance_ratios", "subspace_overlap", "frozen_ranks"):
        assert f"results/e2e/figures/{name}.png" in e2e.outputs


def test_e2e_every_run_measures_the_premise_and_seqft_against_asvds_rule(e2e):
    """asvd's shares come from the subspace it trained under; seqft's from the one asvd's rule
    would have frozen. Both start step 1 from the same base with the same rule and samples, so
    their step-1 measurements agree exactly: the stand-in rebuilds what training built."""
    asvd, seqft = (json.loads((e2e.run_dir(m) / "summary.json").read_text())["premise"]
                   for m in ("asvd", "seqft"))
    assert asvd["subspace_of"] == "own" and seqft["subspace_of"] == "asvd"
    assert [step["subspace"] for step in asvd["steps"]] == ["frozen", "frozen"]
    assert [step["subspace"] for step in seqft["steps"]] == ["would_freeze", "would_freeze"]
    assert seqft["steps"][0]["shares"] == asvd["steps"][0]["shares"]
    tasks = e2e.config["orders"][1]
    for premise in (asvd, seqft):
        last = premise["steps"][-1]["shares"]
        assert list(last) == tasks  # the earlier task and the new one
        for share in last.values():
            assert 0 <= share["input"] <= 1 and 0 <= share["output"] <= 1
            assert set(share["blocks"]) == {f"model.{side}.layers.{i}"
                                            for side in ("encoder", "decoder") for i in (0, 1)}
        assert premise["earlier_input_share"] == last[tasks[0]]["input"]
        assert premise["new_input_share"] == last[tasks[1]]["input"]
    table = pd.read_csv(e2e.results / "tables" / "summary.csv", dtype={"order": str})
    row = table[(table["method"] == "asvd") & (table["order"] == "1")].iloc[0]
    assert row["premise_earlier_input_share_mean"] == pytest.approx(asvd["earlier_input_share"])
    assert "results/e2e/figures/premise.png" in e2e.outputs


def test_e2e_every_tuned_run_trains_with_the_choice_its_orders_first_task_made(e2e):
    for method in e2e.config["run"]["methods"]:
        tuned = json.loads((e2e.results / "tuning" / method / "order1.json").read_text())
        assert tuned["task"] == e2e.config["orders"][1][0]
        assert tuned["trials"] == len(tuned["candidates"]) == len(e2e.config["tuning"]["grid"]["lr"])
        summary = json.loads((e2e.run_dir(method) / "summary.json").read_text())
        assert summary["tuning"] == {**tuned["choice"], "lr_scale": 1.0, "task": tuned["task"],
                                     "trials": tuned["trials"]}
        if e2e.config["methods"][method]["rank_rule"]:
            for step in (1, 2):
                log = json.loads((e2e.run_dir(method) / f"step{step}" / "train_log.json").read_text())
                assert log["trr"] == tuned["choice"]["trr"]
    plan = run_snakemake(e2e.workdir, "all_figures", "--summary", configfiles=[e2e.configfile]).stdout
    assert "results/e2e/tuning/asvd/order1.json" in plan


def test_e2e_second_dry_run_has_nothing_to_do(e2e):
    result = run_snakemake(e2e.workdir, "all_figures", "-n", configfiles=[e2e.configfile])
    assert "Nothing to be done" in result.stdout + result.stderr, result.stderr


def test_e2e_a_method_that_is_not_run_changes_nothing_of_those_that_are(e2e, tmp_path):
    """A declared method with targets, a rule and settings of its own, not in run.methods:
    no job of the methods that are run changes (an SVD cache's targets were every declared
    method's, so every cache and every step after it would rerun)."""
    extra = tmp_path / "extra_method.yaml"
    extra.write_text(yaml.safe_dump({"methods": {"fc_only": {
        "rank_rule": {"name": "uniform", "unfreeze": 0.5}, "target_modules": [r"fc1$", "auto"],
        "train": {"lr": 0.5}}}}))
    result = run_snakemake(e2e.workdir, "all_figures", "-n", configfiles=[e2e.configfile, extra])
    assert "Nothing to be done" in result.stdout + result.stderr, result.stdout[-3000:]


def _workflow_copy(destination: Path) -> Path:
    """The workflow and package copied to ``destination``; returns its Snakefile."""
    import shutil

    for name in ("Snakefile", "workflow", "asvd", "config"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, destination / name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, destination / name)
    return destination / "Snakefile"


def test_e2e_editing_a_module_reruns_exactly_the_rules_that_import_it(e2e, tmp_path):
    """Fingerprints follow imports: the constraint is imported by continual training only, the
    shared loop also by the base-model stage, the metrics by the metrics, reference-run and
    figure stages."""
    snakefile = _workflow_copy(tmp_path)
    unchanged = run_snakemake(e2e.workdir, "all_figures", "-n", configfiles=[e2e.configfile],
                              snakefile=snakefile)
    assert "Nothing to be done" in unchanged.stdout + unchanged.stderr, unchanged.stdout[-3000:]

    def changed(module: str) -> tuple[set[str], set[str]]:
        """(outputs whose rule's params changed, rules planned) after editing ``module``."""
        path = tmp_path / "asvd" / module
        original = path.read_text()
        path.write_text(original + "\n# an edit\n")
        try:
            summary = run_snakemake(e2e.workdir, "all_figures", "--summary",
                                    configfiles=[e2e.configfile], snakefile=snakefile).stdout
        finally:
            path.write_text(original)
        rows = [line.split("\t") for line in summary.splitlines() if line.startswith("results/")]
        files = {row[0] for row in rows if row[4] == "params changed"}
        assert files, summary[-3000:]
        return files, {row[2] for row in rows if row[5] == "update pending"}

    def outputs(folders) -> set[str]:
        return {f"{folder.relative_to(e2e.workdir)}/{name}" for folder in folders
                for name in ("model", "train_log.json")}

    steps = list(e2e.results.glob("*/order*/seed*/step*"))
    # the premise is measured, and the first task tuned, with the training stage's own
    # constraint and loop
    derived = {str(path.relative_to(e2e.workdir)) for path in [
        *e2e.results.glob("*/order*/seed*/premise.json"), *e2e.results.glob("tuning/*/order*.json")]}
    assert len(derived) == 2 * len(e2e.config["run"]["methods"])
    files, planned = changed("method/constraint.py")
    assert files == outputs(steps) | derived
    assert {"finetune_task", "svd_cache", "evaluate_checkpoint", "measure_premise"} <= planned
    assert "base_model" not in planned and "prepare_dataset" not in planned

    files, _ = changed("train/loop.py")
    # evaluation ranks the listed options tokenised as training tokenises targets (loop.encode)
    evals = {str(path.relative_to(e2e.workdir)) for path in [e2e.results / "base" / "eval.json",
                                                             *(step / "eval.json" for step in steps)]}
    assert files == outputs([e2e.results / "base", *steps]) | derived | evals

    files, planned = changed("analysis/metrics.py")
    assert "finetune_task" not in planned and "evaluate_checkpoint" not in planned
    assert any(path.endswith("accuracy_matrix.csv") for path in files)
    assert not any("/step" in path or "/base/" in path for path in files), files


def test_e2e_forcing_one_task_reruns_exactly_it_and_its_dependents(e2e):
    step2 = e2e.run_dir("asvd") / "step2"
    forced = str((step2 / "model").relative_to(e2e.workdir))
    dot = run_snakemake(e2e.workdir, "all_figures", "--dag", "dot", "--forcerun", forced,
                        configfiles=[e2e.configfile]).stdout
    nodes, edges = parse_dot_dag(dot)
    [start] = [n for n, node in nodes.items()
               if node.rule == "finetune_task" and node.get("method") == "asvd"
               and node.get("step") == "2"]
    needrun = {n for n, node in nodes.items() if node.needrun}
    assert needrun == {start} | descendants(start, edges)

    rerun = {(node.rule, node.wildcards) for n, node in nodes.items() if n in needrun}
    checkpoint = str(step2.relative_to(e2e.results))  # the wildcard: its folder under the results
    figures = {dict(w)["figure"] for rule, w in rerun if rule == "plot_figure"}
    rules = Counter(rule for rule, _ in rerun)
    assert rules["finetune_task"] == 1
    targets = targets_key(e2e.config["methods"]["asvd"]["target_modules"])
    assert ("svd_cache", {"checkpoint": checkpoint, "targets": targets}) in [
        (rule, dict(wildcards)) for rule, wildcards in rerun]
    assert ("evaluate_checkpoint", (("checkpoint", checkpoint),)) in rerun
    assert rules["evaluate_checkpoint"] == rules["svd_cache"] == 1
    # collect_metrics' label omits the wildcards its training logs' jobs show: take them there
    collected = [n for n in needrun if nodes[n].rule == "collect_metrics"]
    assert [{nodes[dep].get("method") for dep, job in edges if job == n and nodes[dep].rule == "finetune_task"}
            for n in collected] == [{"asvd"}]
    assert rules["summary_tables"] == 1 and rules["all_figures"] == 1
    assert {"accuracy_matrix_asvd", "task_curves", "aa_bwt", "frozen_ranks"} <= figures
    assert "accuracy_matrix_seqft" not in figures
    for rule in ("base_model", "prepare_dataset"):
        assert rules[rule] == 0, rule
    assert not any(rule == "finetune_task" and dict(w)["method"] == "seqft" for rule, w in rerun)

    # The dry run itself schedules the same jobs.
    plan = run_snakemake(e2e.workdir, "all_figures", "-n", "--forcerun", forced,
                         configfiles=[e2e.configfile])
    stats = job_stats(plan.stdout + plan.stderr)
    assert +stats == +rules


def test_e2e_report_has_every_figure_and_table_with_its_caption_and_runtimes(e2e, tmp_path):
    html = tmp_path / "report.html"
    run_snakemake(e2e.workdir, "all_figures", "--report", str(html), configfiles=[e2e.configfile])
    text = html.read_text()
    # each file marked for the report is an entry "path": {..., "caption": "<p>...</p>", ...}
    captions = dict(re.findall(r'"(results/e2e/[^"]+)": \{"name": [^{}]*?"caption": "(.*?)", "mime_type"', text))
    marked = {out for out in e2e.outputs if re.search(r"/(figures/.*\.png|tables/.*\.(csv|html))$", out)}
    assert marked and set(captions) == marked
    for path, caption in captions.items():
        assert len(re.sub("<[^>]+>", "", caption).strip()) > 40, (path, caption)
    assert len(set(captions.values())) == len(captions), "every figure has its own caption"
    assert "method <strong>asvd</strong>" in captions["results/e2e/figures/accuracy_matrix_asvd.png"]
    # the summary table is a page the report shows inline (a frame), not only a CSV to download
    results = json.loads(re.search(r"var results = (\{.*?\});\n", text).group(1))
    summary = results["results/e2e/tables/summary.html"]
    assert summary["mime_type"] == "text/html"
    page = base64.b64decode(summary["data_uri"].split(";base64,")[1]).decode("utf-8")
    assert ["asvd", "1", "1"] in [row[:3] for row in html_table_rows(page)]  # method, order, n
    assert "experiment <strong>e2e</strong>" in text  # the workflow description
    runtimes = re.search(r"var runtimes_spec = (\{.*?\});\n", text)
    rules = {row["rule"] for row in json.loads(runtimes.group(1))["data"]["values"]}
    assert {"base_model", "finetune_task", "evaluate_checkpoint", "plot_figure"} <= rules


def test_e2e_checkpoint_loads_with_from_pretrained(e2e):
    from transformers import AutoModelForSeq2SeqLM

    for model_dir in [e2e.results / "base" / "model", e2e.run_dir("asvd") / "step2" / "model"]:
        assert (model_dir / "model.safetensors").is_file()
        model = AutoModelForSeq2SeqLM.from_pretrained(model_dir)
        assert sum(p.numel() for p in model.parameters()) > 0


def test_e2e_svd_cache_stamp_matches_weights(e2e):
    from safetensors import safe_open
    from transformers import AutoModelForSeq2SeqLM

    from asvd.method.svd import read_stamp, weights_hash

    caches = [e2e.workdir / o for o in e2e.outputs if is_svd_cache(o)]
    assert caches
    for cache in caches:
        stamp = read_stamp(cache)
        with safe_open(str(cache), framework="pt") as handle:
            names = sorted({key.rsplit(".", 1)[0] for key in handle.keys()})
        assert stamp and names, cache
        modules = dict(AutoModelForSeq2SeqLM.from_pretrained(cache.parent / "model").named_modules())
        assert weights_hash({name: modules[name].weight for name in names}) == stamp, cache


def test_e2e_metrics_cli(e2e):
    matrix = e2e.run_dir("asvd") / "accuracy_matrix.csv"
    result = subprocess.run([sys.executable, "-m", "asvd", "metrics", str(matrix)],
                            capture_output=True, text=True, env={**os.environ, **OFFLINE_ENV})
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    for key in ("aa", "bwt", "fwt", "forgetting"):
        assert isinstance(metrics[key], (int, float)), (key, metrics)


def test_e2e_finetune_task_is_bit_identical_when_repeated(e2e, tmp_path):
    """One asvd step (SVD cache, importance, constrained training) twice from the same files.

    Both repeats also equal the workflow's own checkpoint of that step: the rule passes the
    library exactly the inputs and settings used here.
    """
    import torch
    from safetensors.torch import load_file

    from asvd.train.finetune import TaskInputs, TaskPosition, finetune_task

    config, run = e2e.config, e2e.run_dir("asvd")
    order = config["orders"][config["run"]["orders"][0]]
    cache = svd_cache_name(config["methods"]["asvd"]["target_modules"])
    data = e2e.results / "data"
    kwargs = dict(
        inputs=TaskInputs(checkpoint=run / "step1" / "model", train_file=data / order[1] / "train.jsonl",
                          previous_train_file=data / order[0] / "train.jsonl",
                          svd_path=run / "step1" / cache),
        position=TaskPosition(order[1], index=2, count=len(order)),
        method=config["methods"]["asvd"],
        settings=config["train"],
        seed=config["run"]["seeds"][0],
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workflow runs it (threads.finetune_task)
    try:
        for name in ("first", "second"):
            finetune_task(**kwargs, out_dir=tmp_path / name / "model",
                          log_json=tmp_path / name / "train_log.json")
    finally:
        torch.set_num_threads(threads)
    first = load_file(tmp_path / "first" / "model" / "model.safetensors")
    for other in (tmp_path / "second" / "model", run / "step2" / "model"):
        tensors = load_file(other / "model.safetensors")
        assert tensors.keys() == first.keys(), other
        different = [name for name in first if not torch.equal(first[name], tensors[name])]
        assert not different, (other, different)


@pytest.mark.long(7)
def test_e2e_training_jobs_on_two_processes_give_the_same_checkpoints(e2e, tmp_path):
    """The workflow's training jobs started with train.num_processes: 2 (the adapter's spawned
    processes must not run the stage again) end with the 1-process run's weights."""
    import torch
    from safetensors.torch import load_file

    config = yaml.safe_load(e2e.configfile.read_text())
    config["run"]["methods"] = ["asvd"]
    config["train"]["num_processes"] = 2
    configfile = tmp_path / "two_processes.yaml"
    configfile.write_text(yaml.safe_dump(config))
    step2 = e2e.run_dir("asvd").relative_to(e2e.workdir) / "step2"
    run_snakemake(tmp_path, str(step2 / "model"), "--cores", "2", configfiles=[configfile])
    log = json.loads((tmp_path / step2 / "train_log.json").read_text())
    assert log["processes"] == 2 and log["max_violation"] <= 1e-5
    for step in ("step1", "step2"):
        ours = load_file(tmp_path / step2.parent / step / "model" / "model.safetensors")
        reference = load_file(e2e.run_dir("asvd") / step / "model" / "model.safetensors")
        assert ours.keys() == reference.keys()
        for name in ours:
            # 120 Adam steps: summation order moves weights of size ~1 by ~1e-4 (measured 8e-5)
            assert torch.allclose(ours[name], reference[name], atol=1e-3, rtol=0), (step, name)


@pytest.mark.long(8)
def test_e2e_damaged_results_are_moved_aside_and_rebuilt(e2e, tmp_path):
    """A truncated SVD cache that only a figure reads, a checkpoint without its checksum file and
    a file where a checkpoint directory belongs: the next run moves each aside, rebuilds it and
    what depends on it, ends green with every output whole and the same matrices, and writes
    nothing outside results/."""
    import shutil

    from asvd.pipeline.damage import damage

    work = tmp_path / "work"
    shutil.copytree(e2e.workdir, work, symlinks=True, ignore=shutil.ignore_patterns("locks"))
    asvd_step2 = work / e2e.run_dir("asvd").relative_to(e2e.workdir) / "step2"
    seqft_step2 = work / e2e.run_dir("seqft").relative_to(e2e.workdir) / "step2"
    cache = asvd_step2 / svd_cache_name(e2e.config["methods"]["asvd"]["target_modules"])
    cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 2])
    (seqft_step2 / "model" / "sha256sums.txt").unlink()
    shutil.rmtree(asvd_step2 / "model")
    (asvd_step2 / "model").write_text("not a checkpoint")
    before = {p.name for p in work.iterdir()}
    result = run_snakemake(work, "all_figures", "--cores", "2", configfiles=[e2e.configfile])
    log = result.stdout + result.stderr
    for moved in (f"{cache.name}.corrupt-1", "model.corrupt-1"):
        assert (asvd_step2 / moved).exists() and f"moved to {moved}" in log
    assert (seqft_step2 / "model.corrupt-1" / "model.safetensors").is_file()
    assert "without its sha256sums.txt" in log and "a file where a checkpoint directory belongs" in log
    for output in e2e.outputs:
        assert damage(work / output) is None, output
    assert learned_of(work, e2e.config) == learned_of(e2e.workdir, e2e.config)
    assert {p.name for p in work.iterdir()} == before


def learned_of(workdir: Path, config: dict) -> dict[str, str]:
    """What a study learned (every checkpoint's weights, every accuracy matrix), every run there."""
    learned = learned_files(workdir / "results" / config["experiment"])
    runs = len(config["run"]["methods"]) * len(config["run"]["orders"]) * len(config["run"]["seeds"])
    assert sum(name.endswith("accuracy_matrix.csv") for name in learned) == runs, sorted(learned)
    return learned


def start_snakemake(workdir: Path, configfile: Path) -> subprocess.Popen:
    """The tiny study in its own session, so that one signal reaches every job it started."""
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory",
               str(workdir), "all_figures", "--cores", "2", "--configfile", str(configfile)]
    return subprocess.Popen(command, cwd=workdir, env={**os.environ, **OFFLINE_ENV},
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# What a job's log shows once its work (not its imports) is under way, and the output it is making.
WORK_MARKERS = {
    "finetune_task": re.compile(r"\(\d+/\d+\):\s+\d+%\|"),  # "alpha (1/2):   0%|" training bar
    "svd_cache": re.compile(r"SVD:\s+\d+%\|"),
    "evaluate_checkpoint": re.compile(r"evaluate:\s+\d+%\|"),
}


def output_of_log(rule: str, log: Path, logs: Path) -> Path:
    """Every log names its job by its path under the study's results (``logs.parent``):
    logs/<rule>/<method>/order<o>/seed<s>/step<t>.log, logs/svd_cache/<checkpoint>/svd-<targets>.log."""
    job = logs.parent / log.relative_to(logs / rule).with_suffix("")
    if rule == "finetune_task":
        return job / "model"
    if rule == "svd_cache":
        return job.parent / f"{job.name}.safetensors"
    return job / "eval.json"


def test_a_job_ends_when_snakemake_alone_is_sigkilled(tmp_path):
    """SIGKILL to Snakemake's own process (an out-of-memory kill, ``kill -9 <pid>``): its job
    at work ends within seconds, saying why, so the rerun after ``--unlock`` (the advice
    Snakemake prints) meets no second writer of the same output, and finishes it."""
    import contextlib
    import signal
    import time

    import psutil

    overlay = tmp_path / "long_base.yaml"  # a base training that lasts minutes, not seconds
    overlay.write_text(yaml.safe_dump({"base_model": {"train": {"epochs": 3000}}}))
    configfile = TEST_CONFIGS / "tiny.yaml"
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory",
               str(tmp_path), "results/tiny/base/model", "--cores", "1", "--configfile",
               str(configfile), str(overlay)]
    process = subprocess.Popen(command, cwd=tmp_path, env={**os.environ, **OFFLINE_ENV},
                               start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    log = tmp_path / "results" / "tiny" / "logs" / "base_model.log"
    try:
        deadline = time.monotonic() + 300
        while not (log.is_file() and re.search(r"base:\s+\d+%\|", log.read_text(errors="replace"))):
            assert process.poll() is None and time.monotonic() < deadline, "no base training began"
            time.sleep(0.05)
        jobs = psutil.Process(process.pid).children(recursive=True)
        assert jobs
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        gone, alive = psutil.wait_procs(jobs, timeout=20)
        assert not alive, [job.cmdline() for job in alive]
        assert "the Snakemake process that started this job" in log.read_text(errors="replace")
    finally:  # the test's own clean-up, whatever happened
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    assert not (tmp_path / "results" / "tiny" / "base" / "model").exists()


@pytest.mark.long(0)
def test_e2e_sigkilled_at_random_points_of_training_svd_and_evaluation_then_rerun_gives_the_same_results(
        e2e, tmp_path):
    """SIGKILL the whole workflow (Snakemake and its jobs) while a training, an SVD and an
    evaluation job are at work (their progress bar shows; for training and evaluation, checked:
    their output is not written yet), rerun each time; the finished study equals an
    uninterrupted run byte for byte (every checkpoint's weights and the accuracy matrices) and no
    temporary is left."""
    import random
    import signal
    import time

    rng = random.Random(7)
    logs = tmp_path / "results" / e2e.config["experiment"] / "logs"
    killed_at_work = {}
    for rule, marker in WORK_MARKERS.items():
        # a job may finish between two looks: try the next one (the tiny SVD always does: once)
        for _attempt in range(1 if rule == "svd_cache" else 4):
            started = time.time()
            process = start_snakemake(tmp_path, e2e.configfile)
            deadline, working = time.monotonic() + 600, None
            while working is None and process.poll() is None and time.monotonic() < deadline:
                for log in (logs / rule).rglob("*.log"):
                    if log.stat().st_mtime > started and marker.search(log.read_text(errors="replace")):
                        working = log
                time.sleep(0.01)
            assert working is not None, f"the workflow ended before a {rule} job was at work"
            time.sleep(rng.uniform(0.0, 0.05))
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            # a killed Snakemake leaves its lock; it names this command when run again
            run_snakemake(tmp_path, "all_figures", "--unlock", configfiles=[e2e.configfile])
            if not output_of_log(rule, working, logs).exists():
                killed_at_work[rule] = str(working.relative_to(logs))
                break
    # the tiny model's SVD takes milliseconds: its job is killed once at work, maybe after it wrote
    assert {"finetune_task", "evaluate_checkpoint"} <= set(killed_at_work), killed_at_work
    run_snakemake(tmp_path, "all_figures", "--cores", "2", configfiles=[e2e.configfile])
    assert learned_of(tmp_path, e2e.config) == learned_of(e2e.workdir, e2e.config)
    for output in e2e.outputs:
        assert (tmp_path / output).exists(), output
    assert not [p for p in (tmp_path / "results").rglob("*") if ".tmp" in p.name]


@pytest.mark.long(5)
def test_e2e_a_tampered_checkpoint_is_refused_then_recomputed(e2e, tmp_path):
    """A checkpoint whose weights change on disk before a stage reads it (here its evaluation,
    not yet run): the stage refuses it and moves it aside; the next run recomputes it and the
    study ends with the original results."""
    import shutil

    work = tmp_path / "work"
    shutil.copytree(e2e.workdir, work, symlinks=True, ignore=shutil.ignore_patterns("locks"))
    step1 = work / e2e.run_dir("asvd").relative_to(e2e.workdir) / "step1"
    # its evaluation and what follows from it have not run yet
    for name in ("eval.json", "../accuracy_matrix.csv", "../summary.json"):
        (step1 / name).unlink()
    for table in (work / "results" / e2e.config["experiment"] / "tables").glob("summary.*"):
        table.unlink()
    weights = step1 / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    first = run_snakemake(work, "all_figures", "--cores", "2", configfiles=[e2e.configfile], check=False)
    assert first.returncode != 0
    logs = "".join(log.read_text(errors="replace") for log in (work / "results").rglob("*.log"))
    assert "model.safetensors: content does not match its recorded sha256" in logs
    assert not weights.parent.exists() and weights.parent.with_name("model.corrupt-1").is_dir()
    run_snakemake(work, "all_figures", "--cores", "2", configfiles=[e2e.configfile])
    assert learned_of(work, e2e.config) == learned_of(e2e.workdir, e2e.config)
