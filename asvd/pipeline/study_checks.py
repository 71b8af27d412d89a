"""Checks of a study's config that the JSON schema cannot express: keys that must agree with
each other (orders and benchmark tasks, methods and their rank rules, a real benchmark and its
data directory, published runs and their paths). Each problem is one line naming its key; the
workflow reports them all before any job exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from asvd.data import synthetic
from asvd.data.prepare import GENERAL
from asvd.data.tasks import TASKS, TRACE_METRICS
from asvd.method import ranks
from asvd.pipeline.ablations import lr_variants, retention_variants, trr_may_be_tuned


def normalised_orders(orders: Mapping) -> dict[int, list[str]]:
    """Order number -> tasks. A --config override names an order as text ("1"), config files
    as a number (1): the override wins (the schema refused "01" and "x")."""
    keys = sorted(orders, key=lambda key: isinstance(key, str))
    return {int(key): list(orders[key]) for key in keys}


def reference_path(reference: Mapping, basedir: str | Path) -> Path:
    """A published run's directory or CSV; a relative path is relative to the workflow's checkout."""
    path = Path(reference["path"])
    return path if path.is_absolute() else Path(basedir) / path


def _real_benchmark_problems(config: Mapping, orders: Mapping, tasks: list[str]) -> list[str]:
    """A real benchmark needs known task names, a pretrained base and its data directory."""
    benchmark = config["benchmark"]
    known = TRACE_METRICS if benchmark["name"] == "trace" else TASKS
    problems = [
        f"benchmark.tasks: {task!r} is not a known {benchmark['name']} task "
        f"(known: {sorted(known)})"
        for task in tasks
        if task not in known
    ]
    if not config["base_model"].get("pretrained"):
        problems.append(
            "base_model.pretrained: a real benchmark builds no model to pretrain; "
            "name a pretrained model"
        )
    for task in benchmark.get("from_test_file") or []:
        if task not in tasks:
            problems.append(
                f"benchmark.from_test_file: {task!r} is not in benchmark.tasks"
            )
    for entry in benchmark["tasks"]:
        counts = [
            entry.get(f"{split}_per_class", benchmark.get(f"{split}_per_class"))
            for split in ("train", "test")
        ]
        if entry["name"] in (benchmark.get("from_test_file") or []) and not (
            benchmark["name"] == "olora" and all(counts)
        ):
            problems.append(
                f"benchmark.from_test_file: {entry['name']!r} needs an olora benchmark and "
                "train_per_class and test_per_class set to split a test file"
            )
    general = (benchmark.get("general") or {}).get("tasks", [])
    studied = set(tasks) | {t for tasks in orders.values() for t in tasks}
    problems += [
        f"benchmark.general.tasks: {task!r} is not a known task (known: {sorted(TASKS)})"
        for task in general
        if task not in TASKS
    ]
    problems += [
        f"benchmark.general.tasks: {task!r} is also a task of the study; the general set "
        "must be held out from every order"
        for task in general
        if task in studied
    ]
    key = {"olora": "olora_dir", "trace": "trace_dir"}.get(benchmark["name"])
    if key and not (benchmark.get(key) and Path(benchmark[key]).is_dir()):
        problems.append(
            f"benchmark.{key}: {benchmark.get(key)!r} is not a directory "
            f"(set it with --config 'benchmark={{{key}: PATH}}')"
        )
    return problems


def _rank_rule_problems(method: str, spec: Mapping | None) -> list[str]:
    """A rule's parameters must be its own and consistent (mrr <= trr), as the rule checks them."""
    if not spec:
        return []
    try:
        ranks.from_config(spec, task=2, tasks=2)
    except (TypeError, ValueError) as err:
        note = (
            " (a --configfile block merges into config/config.yaml's: to change a "
            "method's rule, define a method under a new name)"
            if "does not take" in str(err)
            else ""
        )
        return [f"methods.{method}.rank_rule: {err}{note}"]
    return []


def study_problems(config: Mapping, basedir: str | Path) -> list[str]:
    """Cross-key checks the schema cannot express, one line per problem named by its key; run
    on a config the schema accepted, before any job exists."""
    orders = normalised_orders(config["orders"])
    tasks = [task["name"] for task in config["benchmark"]["tasks"]]
    problems = _run_problems(config, orders, tasks) + _method_problems(config, tasks)
    problems += _base_and_data_problems(config, orders, tasks)
    problems += _reference_problems(config, basedir)
    if GENERAL in tasks:
        problems.append(
            f"benchmark.tasks: {GENERAL!r} is reserved for the general-ability set"
        )
    return problems + _variant_problems(config)


def _run_problems(config: Mapping, orders: Mapping, tasks: list[str]) -> list[str]:
    """What ``run`` names exists: its methods, its orders and their tasks; each task once."""
    problems = []
    for method in config["run"]["methods"]:
        if method not in config["methods"]:
            problems.append(f"run.methods: {method!r} has no entry under methods")
    for order in config["run"]["orders"]:
        if order not in orders:
            problems.append(f"run.orders: order {order} is not defined under orders")
    # orders a study does not run may name another benchmark's tasks (merged configs keep them)
    for order in config["run"]["orders"]:
        for task in orders.get(order, []):
            if task not in tasks:
                problems.append(
                    f"orders.{order}: task {task!r} is not in benchmark.tasks"
                )
    repeated = sorted({task for task in tasks if tasks.count(task) > 1})
    return problems + [
        f"benchmark.tasks: {task!r} is listed {tasks.count(task)} times; list each task "
        "once (which entry's settings would count is not said)" for task in repeated]


def _method_problems(config: Mapping, tasks: list[str]) -> list[str]:
    """Rank rules, tuning, the premise's reference and the train blocks' per-task epochs."""
    problems = []
    for name, method in config["methods"].items():
        problems += _rank_rule_problems(name, method.get("rank_rule"))
    tuning = config.get("tuning") or {}
    for method in tuning.get("methods", []):
        if method not in config["methods"]:
            problems.append(f"tuning.methods: {method!r} has no entry under methods")
        rule = (config["methods"].get(method) or {}).get("rank_rule") or {}
        if rule.get("name") != "importance" or _rank_rule_problems(method, rule):
            continue  # no trr to tune, or a broken rule named under methods already
        for trr in tuning["grid"].get("trr") or []:
            problems += [f"tuning.grid.trr: {trr} with {problem.split(': ', 1)[1]}"
                         for problem in _rank_rule_problems(method, {**rule, "trr": trr})]
    reference = (config.get("premise") or {}).get("reference")
    if reference and not (config["methods"].get(reference) or {}).get("rank_rule"):
        problems.append(
            f"premise.reference: {reference!r} is not a constrained method under methods "
            "(its rank rule gives the subspace unconstrained methods are measured against)"
        )
    trains = {"train": config["train"]} | {
        f"methods.{name}.train": method["train"]
        for name, method in config["methods"].items() if method.get("train")}
    for key, block in trains.items():
        for task in block.get("task_epochs") or {}:
            if task not in tasks:
                problems.append(f"{key}.task_epochs: {task!r} is not in benchmark.tasks")
    return problems


def _base_and_data_problems(config: Mapping, orders: Mapping, tasks: list[str]) -> list[str]:
    """The base model's start and tuning against the benchmark that feeds them."""
    problems = []
    if config["base_model"].get("warm_start") and not config["base_model"].get("pretrained"):
        problems.append(
            "base_model.warm_start: needs base_model.pretrained (an encoder to start from); "
            "a base built from scratch has nothing to warm-start"
        )
    if config["benchmark"]["name"] != "synthetic":
        problems += _real_benchmark_problems(config, orders, tasks)
    else:
        problems += synthetic.benchmark_problems(config["benchmark"])
    if config["benchmark"].get("general") and config["benchmark"]["name"] not in (
        "olora",
        "hub",
    ):
        problems.append(
            "benchmark.general: only the olora and hub benchmarks draw a general mixture from "
            "their tasks (the synthetic one generates its own)"
        )
    if config["base_model"].get("instruction_tune") and not (
        config["base_model"].get("pretrained") and config["benchmark"].get("general")
    ):
        problems.append(
            "base_model.instruction_tune: needs a pretrained base and a benchmark.general "
            "mixture to tune it on"
        )
    return problems


def _reference_problems(config: Mapping, basedir: str | Path) -> list[str]:
    """Published runs: a name of their own and a path that exists."""
    problems = []
    for name, reference in (config.get("reference_runs") or {}).items():
        if name in config["methods"]:
            problems.append(
                f"reference_runs.{name}: the name is a method's; give the published run "
                "its own name"
            )
        if not Path(reference_path(reference, basedir)).exists():
            problems.append(
                f"reference_runs.{name}.path: {reference['path']!r} is neither an O-LoRA run "
                "directory nor an accuracy-matrix CSV (no such path)"
            )
    return problems


def _variant_problems(config: Mapping) -> list[str]:
    """The retention ablation's and the trade-off's method variants, built as the study builds
    them (:mod:`asvd.pipeline.ablations`, in :class:`asvd.pipeline.study.Study`'s order): what
    refuses them is named here, with the rest."""
    problems, methods = [], dict(config["methods"])
    if config.get("ablations"):
        try:
            keep = not trr_may_be_tuned(methods, config["ablations"], config.get("tuning"))
            methods.update(retention_variants(methods, config["ablations"], keep_own_name=keep))
        except ValueError as err:
            problems.append(str(err))
    if config.get("tradeoff"):
        try:
            lr_variants(methods, config["tradeoff"])
        except ValueError as err:
            problems.append(str(err))
    return problems
