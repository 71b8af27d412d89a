# What the rules share: the path scheme, the task chain's input functions, the outputs of the
# public targets, and the checks and sweeps that run before the DAG is built.
import functools
import os
import re
import sys
from pathlib import Path

# the workflow's own light modules (validation, rank rules, task registry) check the config
sys.path.insert(0, workflow.basedir)
from asvd.analysis.figure_specs import FIGURES, PER_METHOD_PREFIX, figure_spec
from asvd.data.prepare import GENERAL
from asvd.methods import declared_methods
from asvd.pipeline.fingerprints import code_fingerprint
from asvd.pipeline.study_checks import normalised_orders, reference_path, study_problems
from asvd.train.choice import candidates
from asvd.pipeline.validation import (
    coerce_command_line_values,
    config_error,
    repeated_keys,
    schema_problems,
)

SCHEMA = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
coerce_command_line_values(config, SCHEMA)
# every problem named by its key before any job: a key a config file repeats, the schema's,
# then the cross-key checks
_problems = (
    [problem for path in workflow.configfiles for problem in repeated_keys(path)]
    or schema_problems(config, SCHEMA)
    or study_problems(config, workflow.basedir)
)
if _problems:
    raise config_error(_problems)

SCRIPTS = Path(workflow.basedir) / "workflow" / "scripts"
# Jobs (script subprocesses, conda envs, cluster jobs) import the package from this checkout.
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        filter(None, [workflow.basedir, os.environ.get("PYTHONPATH")])
    )
)
RESULTS = f"results/{config['experiment']}"
RUN = f"{RESULTS}/{{method}}/order{{order}}/seed{{seed}}"
STEP = f"{RUN}/step{{step}}"
BASE = f"{RESULTS}/base"
LOGS = f"{RESULTS}/logs"
BENCH = f"{RESULTS}/benchmarks"


ORDERS = config["orders"] = normalised_orders(config["orders"])
BENCHMARK_TASKS = [task["name"] for task in config["benchmark"]["tasks"]]
# The synthetic benchmark generates a general-ability set; a real one may draw it from tasks
# outside the study (benchmark.general), to instruction-tune a pretrained base and to measure
# what the sequence costs it.
HAS_GENERAL = config["benchmark"]["name"] == "synthetic" or bool(
    config["benchmark"].get("general")
)
INSTRUCTION_TUNED = bool(config["base_model"].get("instruction_tune"))
# Published runs shown beside the study's methods (asvd/analysis/reference_runs.py).
REFERENCE_RUNS = config.get("reference_runs") or {}
REFERENCE = f"{RESULTS}/reference_runs/{{reference}}"


def reference_source(name):
    return str(reference_path(REFERENCE_RUNS[name], workflow.basedir))


# Damaged results (truncated, emptied, a checkpoint without its checksum file, a file where a
# directory belongs) are moved aside before the DAG is built; rebuilt_results() makes them
# targets of this run.
DAMAGED = []
if workflow.is_main_process:
    from asvd.pipeline.damage import sweep

    for _path, _line in sweep(RESULTS):
        print(f"damaged result: {_line}", file=sys.stderr)
        DAMAGED.append(_path)

# `all_baselines` runs every method the config declares (not only run.methods); the retention
# ablation's variants join the methods after that (a wildcard value each).
ALL_METHODS = list(config["methods"])
ABLATION_METHODS = []
# Every listed method tuned alike on its order's first task (asvd/train/tuning.py). A variant
# is tuned as its method: it takes its method's tuned lr, and the trr too unless the trr is what
# it varies (the retention ablation's variants keep their own).
TUNING = config.get("tuning")
TUNING_RESULT = f"{RESULTS}/tuning/{{method}}/order{{order}}.json"
TUNED_AS = {}
TUNED_KEYS = {}


def tuning_candidates(method):
    return candidates(config["methods"][method], TUNING["grid"])


if config.get("ablations"):
    from asvd.pipeline.ablations import retention_variants

    _swept = config["ablations"]["method"]
    # where tuning may move the method's own trr, its declared point is a variant of its own
    _rule = (config["methods"].get(_swept) or {}).get("rank_rule") or {}
    _trr_tuned = (
        bool(TUNING)
        and _swept in TUNING["methods"]
        and _rule.get("name") == "importance"
        and any(
            point["trr"] not in (None, _rule.get("trr"))
            for point in tuning_candidates(_swept)
        )
    )
    _variants = retention_variants(
        config["methods"], config["ablations"], keep_own_name=not _trr_tuned
    )
    config["methods"].update(_variants)
    ABLATION_METHODS = config["ablations"]["references"] + [
        name for name in _variants if name not in config["ablations"]["references"]
    ]
    for _name in _variants:
        if _name != config["ablations"]["method"]:
            TUNED_AS[_name] = config["ablations"]["method"]
            TUNED_KEYS[_name] = ["lr"]
# The learning-retention trade-off's variants: methods at multiples of their tuned lr.
TRADEOFF_METHODS = []
if config.get("tradeoff"):
    from asvd.pipeline.ablations import lr_variant_of, lr_variants

    _variants = lr_variants(config["methods"], config["tradeoff"])
    config["methods"].update(_variants)
    TUNED_AS.update({name: lr_variant_of(name)[0] for name in _variants})
    TRADEOFF_METHODS = config["tradeoff"]["methods"] + list(_variants)
# What each method is (its pieces and schedule), read here and by training alike.
METHODS = declared_methods(config["methods"])


wildcard_constraints:
    method="[a-z0-9_]+",
    order=r"\d+",
    seed=r"\d+",
    step=r"\d+",
    task="[A-Za-z0-9_.-]+",
    split="train|test",
    reference="[A-Za-z0-9_.-]+",


@functools.cache
def code_version(script):
    """Hash of a rule's script and every package module it imports, so editing one reruns it."""
    return code_fingerprint(SCRIPTS / f"{script}.py", Path(workflow.basedir))


def run_tasks(wildcards):
    return ORDERS[int(wildcards.order)]


def method_config(wildcards):
    return config["methods"][wildcards.method]


def task_of_step(wildcards):
    return run_tasks(wildcards)[int(wildcards.step) - 1]


def train_settings(method, task):
    """The train block of ``method`` on ``task``: the method's own ``train`` keys over the
    study's, ``task_epochs`` resolved into ``epochs``."""
    settings = {
        **config["train"],
        **config["methods"][method].get("train", {}),
    }
    per_task = settings.pop("task_epochs", None) or {}
    settings["epochs"] = per_task.get(task, settings["epochs"])
    return settings


def task_train_settings(wildcards):
    return train_settings(wildcards.method, task_of_step(wildcards))


def previous_checkpoint(wildcards):
    """Task t trains from task t-1's checkpoint; the first task (and every task of a
    ``per_task`` or ``joint`` method) from the base model."""
    step = int(wildcards.step)
    if step == 1 or METHODS[wildcards.method].starts_from_base:
        return f"{BASE}/model"
    previous = STEP.format(**{**wildcards, "step": step - 1})
    return f"{previous}/model"


def previous_svd(wildcards):
    """The SVD cache of the checkpoint this task starts from (constrained methods only)."""
    if not METHODS[wildcards.method].constrained:
        return []
    return str(Path(previous_checkpoint(wildcards)).parent / "svd.safetensors")


def previous_train_data(wildcards):
    """Importance samples come from the previous task (the first task uses its own)."""
    step = int(wildcards.step)
    task = run_tasks(wildcards)[max(step - 2, 0)]
    return f"{RESULTS}/data/{task}/train.jsonl"


def shared_adapter_base(wildcards):
    """A shared LoRA adapter (SeqLoRA) is attached again to the base model's weights."""
    return [f"{BASE}/model"] if METHODS[wildcards.method].shares_lora else []


def earlier_tasks(wildcards):
    """Tasks before this step whose training data the step also reads (a replay method's
    memory, a joint method's other tasks), in training order."""
    if not METHODS[wildcards.method].reads_earlier_tasks:
        return []
    return run_tasks(wildcards)[: int(wildcards.step) - 1]


def earlier_train_data(wildcards):
    return [f"{RESULTS}/data/{task}/train.jsonl" for task in earlier_tasks(wildcards)]


# The method's premise (asvd/evaluation/premise.py), measured on the sequential runs of
# constrained methods and, against premise.reference's rule, of unconstrained ones.
PREMISE = config.get("premise")


def measures_premise(method):
    spec = METHODS[method]
    return (
        bool(PREMISE)
        and spec.schedule == "sequential"
        and (spec.constrained or bool(PREMISE["reference"]))
    )


def premise_inputs(wildcards):
    """Where every step of a run starts (the base, then each earlier step) with its SVD cache,
    the steps' train logs, and every task's test (measured) and train (importance) data.
    """
    run = run_of(wildcards)
    tasks = run_tasks(wildcards)
    starts = [BASE] + [STEP.format(**run, step=step) for step in range(1, len(tasks))]
    return {
        "checkpoints": [f"{start}/model" for start in starts],
        "svd": [f"{start}/svd.safetensors" for start in starts],
        "train_logs": step_paths(run, "train_log.json"),
        "tests": [f"{RESULTS}/data/{task}/test.jsonl" for task in tasks],
        "train": [f"{RESULTS}/data/{task}/train.jsonl" for task in tasks],
        "reference_tuned": premise_reference_tuning(wildcards),
    }


def premise_reference_tuning(wildcards):
    """An unconstrained method is measured against the reference's rule as tuned in its order."""
    reference = PREMISE["reference"]
    if METHODS[wildcards.method].constrained or not reference or not tuned(reference):
        return []
    return [TUNING_RESULT.format(method=reference, order=wildcards.order)]


def premise_of_run(wildcards):
    """A run's premise measurement, an input of its summary where it is measured."""
    if not measures_premise(wildcards.method):
        return []
    return [f"{RUN.format(**run_of(wildcards))}/premise.json"]


def tuned(method):
    return bool(TUNING) and TUNED_AS.get(method, method) in TUNING["methods"]


def tuning_of_run(wildcards):
    """The tuning a run's steps and summary read, where its method (or the method a trade-off
    variant scales) is tuned."""
    if not tuned(wildcards.method):
        return []
    method = TUNED_AS.get(wildcards.method, wildcards.method)
    return [TUNING_RESULT.format(method=method, order=wildcards.order)]


def tuned_keys(wildcards):
    """What a run takes from its tuning: the lr, and the trr unless the method varies it."""
    return TUNED_KEYS.get(wildcards.method, ["lr", "trr"])


def all_runs(methods=None):
    return [
        {"method": method, "order": order, "seed": seed}
        for method in methods or config["run"]["methods"]
        for order in config["run"]["orders"]
        for seed in config["run"]["seeds"]
    ]


def run_steps(run):
    """The steps a run trains: 1..T, or only T for a joint method (one model for all tasks)."""
    count = len(ORDERS[run["order"]])
    return (
        [count]
        if METHODS[run["method"]].schedule == "joint"
        else list(range(1, count + 1))
    )


def step_paths(run, name):
    return [f"{STEP.format(**run, step=step)}/{name}" for step in run_steps(run)]


def checkpoints_of_all_runs():
    return [path for run in all_runs() for path in step_paths(run, "model")]


def evals_of_all_runs():
    return [f"{BASE}/eval.json"] + [
        path for run in all_runs() for path in step_paths(run, "eval.json")
    ]


def run_summaries(methods=None):
    return [f"{RUN.format(**run)}/summary.json" for run in all_runs(methods)]


def representative_run(method):
    """A method's representative run (first order, first seed) for per-run figures."""
    order, seed = config["run"]["orders"][0], config["run"]["seeds"][0]
    return {"method": method, "order": order, "seed": seed}


def paper_reference():
    """The reference CSV; a relative path is relative to this checkout (config/reference/...)."""
    path = Path(config["paper_table"]["reference"])
    return str(path if path.is_absolute() else Path(workflow.basedir) / path)


def reference_inputs(wildcards):
    from asvd.analysis.reference_runs import source_files

    return [str(path) for path in source_files(reference_source(wildcards.reference))]


def reference_summaries():
    return [
        f"{REFERENCE.format(reference=name)}/summary.json" for name in REFERENCE_RUNS
    ]


def _reference_matrices():
    return {
        name: {
            f"order {spec['order']}": f"{REFERENCE.format(reference=name)}/accuracy_matrix.csv"
        }
        for name, spec in REFERENCE_RUNS.items()
    }


def table_outputs():
    names = ["summary"] + (["paper"] if config.get("paper_table") else [])
    return expand(
        f"{RESULTS}/tables/{{name}}.{{ext}}", name=names, ext=["csv", "md", "tex"]
    )


def drawn_methods(spec, methods):
    """The methods of ``methods`` a figure shows (its registry entry says which qualify)."""
    qualifies = {
        "all": lambda method: True,
        "constrained": lambda method: METHODS[method].constrained,
        "importance": lambda method: METHODS[method].uses_importance,
        "premise": measures_premise,
    }[spec.methods]
    return [method for method in methods if qualifies(method)]


def registered_figures(where, methods):
    """The registry's figures drawn ``where`` (study, comparison, ablation or tradeoff) over
    ``methods``."""
    return [
        name
        for name, spec in FIGURES.items()
        if getattr(spec, where)
        and (HAS_GENERAL or not spec.needs_general)
        and drawn_methods(spec, methods)
    ]


def figure_names():
    methods = config["run"]["methods"]
    return registered_figures("study", methods) + [
        f"{PER_METHOD_PREFIX}{method}" for method in methods
    ]


def figure_outputs():
    return table_outputs() + expand(
        f"{RESULTS}/figures/{{name}}.{{ext}}", name=figure_names(), ext=["png", "pdf"]
    )


def study_outputs():
    """Every result a public target of this study can make (damaged ones outside it, left by
    another config, are moved aside but not rebuilt)."""
    runs = all_runs(
        list(dict.fromkeys(ALL_METHODS + ABLATION_METHODS + TRADEOFF_METHODS))
    )
    checkpoint_files = ["model", "svd.safetensors", "eval.json", "train_log.json"]
    return {
        *(
            path
            for run in runs
            for name in checkpoint_files
            for path in step_paths(run, name)
        ),
        *(
            f"{RUN.format(**run)}/{name}"
            for run in runs
            for name in ("accuracy_matrix.csv", "summary.json")
        ),
        *(
            f"{RUN.format(**run)}/premise.json"
            for run in runs
            if measures_premise(run["method"])
        ),
        *(
            TUNING_RESULT.format(
                method=TUNED_AS.get(run["method"], run["method"]), order=run["order"]
            )
            for run in runs
            if tuned(run["method"])
        ),
        *(f"{BASE}/{name}" for name in checkpoint_files),
        *expand(
            f"{RESULTS}/data/{{task}}/{{name}}",
            task=[*BENCHMARK_TASKS, *([GENERAL] if HAS_GENERAL else [])],
            name=["train.jsonl", "test.jsonl", "stats.json"],
        ),
        *(
            f"{REFERENCE.format(reference=name)}/{file}"
            for name in REFERENCE_RUNS
            for file in ("accuracy_matrix.csv", "summary.json")
        ),
        *figure_outputs(),
        *baseline_outputs(),
        *(ablation_outputs() if ABLATION_METHODS else []),
        *(tradeoff_outputs() if TRADEOFF_METHODS else []),
        *(
            f"{RESULTS}/{part}tables/environment.csv"
            for part in ("", "baselines/", "ablations/", "tradeoff/")
        ),
    }


def rebuilt_results():
    """The damaged results moved aside at this start that this study makes: extra inputs of
    every public target, so they are rebuilt (a missing intermediate alone would not make
    Snakemake rerun anything) and, being newer, rebuild what was made from them."""
    known = study_outputs() if DAMAGED else set()
    return [path for path in DAMAGED if path in known]


def run_of(wildcards):
    return {
        "method": wildcards.method,
        "order": int(wildcards.order),
        "seed": int(wildcards.seed),
    }


def svd_targets():
    """Target patterns of every constrained method, so one cache serves them all."""
    patterns = []
    for method in ALL_METHODS:
        targets = config["methods"][method].get("target_modules", "auto")
        for pattern in [targets] if isinstance(targets, str) else targets:
            if pattern not in patterns:
                patterns.append(pattern)
    return patterns


def studied_tasks():
    """Every task of the orders being run, in first-seen order (the base model's row 0)."""
    tasks = []
    for order in config["run"]["orders"]:
        tasks += [task for task in ORDERS[order] if task not in tasks]
    return tasks


def checkpoint_eval_names(wildcards):
    """The base model is scored on every studied task; a run's checkpoint on its sequence."""
    general = [GENERAL] if HAS_GENERAL else []
    if wildcards.checkpoint == BASE:
        return [*studied_tasks(), *general]
    match = re.search(r"(?:^|/)order(\d+)(?:/|$)", wildcards.checkpoint)
    return [*ORDERS[int(match.group(1))], *general]


def base_model_inputs(wildcards):
    """A built base pretrains on the general mixture; a pretrained one needs it only to be
    instruction-tuned on it."""
    if config["base_model"].get("pretrained"):
        general = f"{RESULTS}/data/{GENERAL}/train.jsonl"
        return {"general": general} if INSTRUCTION_TUNED else {}
    return {
        "general": f"{RESULTS}/data/{GENERAL}/train.jsonl",
        "vocabulary": expand(
            f"{RESULTS}/data/{{task}}/{{split}}.jsonl",
            task=[*BENCHMARK_TASKS, GENERAL],
            split=["train", "test"],
        ),
    }


def checkpoint_eval_inputs(wildcards):
    names = checkpoint_eval_names(wildcards)
    return {
        "model": f"{wildcards.checkpoint}/model",
        "tests": [f"{RESULTS}/data/{name}/test.jsonl" for name in names],
    }


# Inputs of the figures (workflow/rules/report.smk).
def _matrices(method):
    seed = config["run"]["seeds"][0]
    return {
        f"order {order}": f"{RUN.format(method=method, order=order, seed=seed)}/accuracy_matrix.csv"
        for order in config["run"]["orders"]
    }


def _representative_steps(method, name, with_base):
    run = representative_run(method)
    return ([f"{BASE}/{name}"] if with_base else []) + step_paths(run, name)


# The figures that compare methods, drawn again over every method by `all_baselines`.
def baseline_outputs():
    return expand(
        f"{RESULTS}/baselines/tables/summary.{{ext}}", ext=["csv", "md", "tex"]
    ) + expand(
        f"{RESULTS}/baselines/figures/{{name}}.{{ext}}",
        name=registered_figures("comparison", ALL_METHODS),
        ext=["png", "pdf"],
    )


def ablation_outputs():
    return expand(
        f"{RESULTS}/ablations/tables/summary.{{ext}}", ext=["csv", "md", "tex"]
    ) + expand(
        f"{RESULTS}/ablations/figures/{{name}}.{{ext}}",
        name=registered_figures("ablation", ABLATION_METHODS),
        ext=["png", "pdf"],
    )


def tradeoff_outputs():
    return expand(
        f"{RESULTS}/tradeoff/tables/summary.{{ext}}", ext=["csv", "md", "tex"]
    ) + expand(
        f"{RESULTS}/tradeoff/figures/{{name}}.{{ext}}",
        name=registered_figures("tradeoff", TRADEOFF_METHODS),
        ext=["png", "pdf"],
    )


def figure_inputs(wildcards, methods=None):
    """The files figure ``wildcards.figure`` draws, by the data its registry entry reads (dicts
    keep the labels the plot functions need); ``methods`` defaults to ``run.methods``.
    """
    name = wildcards.figure
    spec = figure_spec(name)
    if name.startswith(PER_METHOD_PREFIX):
        return {spec.data: _matrices(name.removeprefix(PER_METHOD_PREFIX))}
    methods = drawn_methods(spec, methods or config["run"]["methods"])
    if spec.data == "matrices":
        data = {method: _matrices(method) for method in methods}
        data.update(_reference_matrices() if spec.references else {})
    elif spec.data == "summaries":
        data = run_summaries(methods) + (
            reference_summaries() if spec.references else []
        )
    elif spec.data == "train_logs":
        data = {
            method: _representative_steps(method, "train_log.json", with_base=False)
            for method in methods
        }
    elif spec.data == "svd_caches":
        data = {
            method: _representative_steps(method, "svd.safetensors", with_base=True)
            for method in methods
        }
    else:  # "runs": task t froze directions of checkpoint t-1
        data = {
            method: {
                "svd_caches": _representative_steps(
                    method, "svd.safetensors", with_base=True
                )[:-1],
                "train_logs": _representative_steps(
                    method, "train_log.json", with_base=False
                ),
            }
            for method in methods
        }
    return {spec.data: data}


def _flat_inputs(wildcards, methods=None):
    """Snakemake needs a flat file list; the script gets the structure via params."""
    files = []

    def walk(value):
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            files.extend(value)
        else:
            files.append(value)

    walk(figure_inputs(wildcards, methods))
    return files
