"""The study a validated config declares, as files: which runs it trains, which files each step
reads, what each public target makes. The workflow's input functions are this object's methods,
and the figure registry asks it for the files a figure draws; nothing here runs a job. Standard
library only (and the light config modules): the Snakefile builds it while it is parsed.

A ``wildcards`` argument is anything with the attributes a rule's wildcards have (``method``,
``order``, ``seed``, ``step``), so every input function is testable without Snakemake.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from asvd.data.prepare import GENERAL
from asvd.method_config import Method, declared_methods
from asvd.pipeline.ablations import (
    lr_variant_of,
    lr_variants,
    retention_variants,
    trr_may_be_tuned,
)
from asvd.pipeline.layout import (
    CHECKPOINT_FILES,
    DATA_FILES,
    EVAL,
    MATRIX,
    MODEL,
    PREMISE,
    SUMMARY,
    TABLE_FORMATS,
    TRAIN_LOG,
    Layout,
    order_label,
    svd_cache_name,
    target_set,
    targets_key,
)
from asvd.pipeline.study_checks import normalised_orders, reference_path
from asvd.train.choice import candidates


@dataclass(frozen=True)
class Scope:
    """A public target's tables and figures: its name (a figure's ``scopes`` list it), its
    folder, the methods it shows, and whether published runs join its summary table."""

    name: str
    folder: str
    methods: tuple[str, ...]
    references: bool


class Study:
    """Every path and choice of one study (see the module docstring)."""

    def __init__(self, config: Mapping, basedir: str | Path):
        self.config = config
        self.basedir = Path(basedir)
        self.layout = Layout(f"results/{config['experiment']}")
        self.orders = normalised_orders(config["orders"])
        self.tasks = [task["name"] for task in config["benchmark"]["tasks"]]
        # the synthetic benchmark generates a general-ability set; a real one may draw it from
        # tasks outside the study (benchmark.general)
        self.has_general = config["benchmark"]["name"] == "synthetic" or bool(
            config["benchmark"].get("general"))
        self.instruction_tuned = bool(config["base_model"].get("instruction_tune"))
        self.reference_runs = config.get("reference_runs") or {}
        self.tuning = config.get("tuning")
        self.premise = config.get("premise")
        self.blocks = dict(config["methods"])
        self.declared = list(config["methods"])
        self.tuned_as: dict[str, str] = {}
        self.tuned_keys_of: dict[str, list[str]] = {}
        self.ablation_methods = self._add_retention_variants() if config.get("ablations") else []
        self.tradeoff_methods = self._add_lr_variants() if config.get("tradeoff") else []
        self.methods: dict[str, Method] = declared_methods(self.blocks)
        self.scopes = {
            "study": Scope("study", "", tuple(config["run"]["methods"]), True),
            "comparison": Scope("comparison", "baselines", tuple(self.declared), True),
            "ablation": Scope("ablation", "ablations", tuple(self.ablation_methods), False),
            "tradeoff": Scope("tradeoff", "tradeoff", tuple(self.tradeoff_methods), False),
        }

    # ------------------------------------------------------------------ variants and tuning
    def tuning_candidates(self, method: str) -> list[dict]:
        return candidates(self.blocks[method], self.tuning["grid"])

    def _add_retention_variants(self) -> list[str]:
        """The retention ablation's variants join the methods; each takes its method's tuned lr
        and keeps its own trr. Where tuning may move the method's own trr, its declared point
        is a variant of its own."""
        spec = self.config["ablations"]
        swept = spec["method"]
        variants = retention_variants(self.blocks, spec, keep_own_name=not trr_may_be_tuned(
            self.blocks, spec, self.tuning))
        self.blocks.update(variants)
        for name in variants:
            if name != swept:
                self.tuned_as[name] = swept
                self.tuned_keys_of[name] = ["lr"]
        return spec["references"] + [name for name in variants if name not in spec["references"]]

    def _add_lr_variants(self) -> list[str]:
        """The trade-off's variants: methods at multiples of their tuned lr, tuned as their
        method."""
        variants = lr_variants(self.blocks, self.config["tradeoff"])
        self.blocks.update(variants)
        self.tuned_as.update({name: lr_variant_of(name)[0] for name in variants})
        return self.config["tradeoff"]["methods"] + list(variants)

    def tuned(self, method: str) -> bool:
        return bool(self.tuning) and self.tuned_as.get(method, method) in self.tuning["methods"]

    def tuning_of_run(self, wildcards) -> list[str]:
        """The tuning a run's steps and summary read, where its method (or the method a
        variant is tuned as) is tuned."""
        if not self.tuned(wildcards.method):
            return []
        method = self.tuned_as.get(wildcards.method, wildcards.method)
        return [self.layout.tuning.format(method=method, order=wildcards.order)]

    def tuned_keys(self, wildcards) -> list[str]:
        """What a run takes from its tuning: the lr, and the trr unless the method varies it."""
        return self.tuned_keys_of.get(wildcards.method, ["lr", "trr"])

    # ------------------------------------------------------------------ one run's steps
    def run_tasks(self, wildcards) -> list[str]:
        return self.orders[int(wildcards.order)]

    def task_of_step(self, wildcards) -> str:
        return self.run_tasks(wildcards)[int(wildcards.step) - 1]

    def method_block(self, wildcards) -> Mapping:
        return self.blocks[wildcards.method]

    def train_settings(self, method: str, task: str) -> dict:
        """The train block of ``method`` on ``task``: the method's own ``train`` keys over the
        study's, ``task_epochs`` resolved into ``epochs``."""
        settings = {**self.config["train"], **self.blocks[method].get("train", {})}
        per_task = settings.pop("task_epochs", None) or {}
        settings["epochs"] = per_task.get(task, settings["epochs"])
        return settings

    def task_train_settings(self, wildcards) -> dict:
        return self.train_settings(wildcards.method, self.task_of_step(wildcards))

    def first_task_settings(self, wildcards) -> dict:
        return self.train_settings(wildcards.method, self.run_tasks(wildcards)[0])

    def data(self, task: str, name: str = "train.jsonl") -> str:
        return self.layout.data(task, name)

    def task_train_data(self, wildcards) -> str:
        return self.data(self.task_of_step(wildcards))

    def previous_checkpoint(self, wildcards) -> str:
        """Task t trains from task t-1's checkpoint; the first task (and every task of a
        ``per_task`` or ``joint`` method) from the base model."""
        step = int(wildcards.step)
        if step == 1 or self.methods[wildcards.method].starts_from_base:
            return f"{self.layout.base}/{MODEL}"
        return self.step_file(self.run_of(wildcards), step - 1, MODEL)

    def previous_svd(self, wildcards) -> str | list:
        """The SVD cache of the checkpoint this task starts from (constrained methods only:
        none, an empty list, for the others)."""
        if not self.methods[wildcards.method].constrained:
            return []
        return str(Path(self.previous_checkpoint(wildcards)).parent / self.svd_cache(wildcards.method))

    def previous_train_data(self, wildcards) -> str:
        """Importance samples come from the previous task (the first task uses its own)."""
        return self.data(self.run_tasks(wildcards)[max(int(wildcards.step) - 2, 0)])

    def shared_adapter_base(self, wildcards) -> list[str]:
        """A shared LoRA adapter (SeqLoRA) is attached again to the base model's weights."""
        return [f"{self.layout.base}/{MODEL}"] if self.methods[wildcards.method].shares_lora else []

    def earlier_tasks(self, wildcards) -> list[str]:
        """Tasks before this step whose training data the step also reads (a replay method's
        memory, a joint method's other tasks), in training order."""
        if not self.methods[wildcards.method].reads_earlier_tasks:
            return []
        return self.run_tasks(wildcards)[: int(wildcards.step) - 1]

    def earlier_train_data(self, wildcards) -> list[str]:
        return [self.data(task) for task in self.earlier_tasks(wildcards)]

    def first_task_svd(self, wildcards) -> list[str]:
        """Tuning a constrained method starts from the base model's SVD cache."""
        constrained = self.methods[wildcards.method].constrained
        return [f"{self.layout.base}/{self.svd_cache(wildcards.method)}"] if constrained else []

    # ------------------------------------------------------------------ runs
    @staticmethod
    def run_of(wildcards) -> dict:
        return {"method": wildcards.method, "order": int(wildcards.order),
                "seed": int(wildcards.seed)}

    def all_runs(self, methods=None) -> list[dict]:
        run = self.config["run"]
        return [{"method": method, "order": order, "seed": seed}
                for method in methods or run["methods"]
                for order in run["orders"] for seed in run["seeds"]]

    def run_dir(self, run: Mapping) -> str:
        return self.layout.run.format(**run)

    def run_steps(self, run: Mapping) -> list[int]:
        """The steps a run trains: 1..T, or only T for a joint method (one model for all)."""
        count = len(self.orders[run["order"]])
        joint = self.methods[run["method"]].schedule == "joint"
        return [count] if joint else list(range(1, count + 1))

    def step_file(self, run: Mapping, step: int, name: str) -> str:
        return f"{self.layout.step.format(**run, step=step)}/{name}"

    def step_paths(self, run: Mapping, name: str) -> list[str]:
        return [self.step_file(run, step, name) for step in self.run_steps(run)]

    def run_step_files(self, name: str):
        """An input function: file ``name`` of every step of the wildcards' run."""
        return lambda wildcards: self.step_paths(self.run_of(wildcards), name)

    def checkpoints_of_all_runs(self) -> list[str]:
        return [path for run in self.all_runs() for path in self.step_paths(run, MODEL)]

    def evals_of_all_runs(self) -> list[str]:
        return [f"{self.layout.base}/{EVAL}"] + [
            path for run in self.all_runs() for path in self.step_paths(run, EVAL)]

    def run_summaries(self, methods=None) -> list[str]:
        return [f"{self.run_dir(run)}/{SUMMARY}" for run in self.all_runs(methods)]

    def representative_run(self, method: str) -> dict:
        """A method's representative run (first order, first seed) for per-run figures."""
        run = self.config["run"]
        return {"method": method, "order": run["orders"][0], "seed": run["seeds"][0]}

    def first_seed_runs(self, method: str) -> dict[str, dict]:
        """A method's run of each order with the first seed, labelled ``order N`` (per-order figures)."""
        seed = self.config["run"]["seeds"][0]
        return {order_label(order): {"method": method, "order": order, "seed": seed}
                for order in self.config["run"]["orders"]}

    def matrices(self, method: str) -> dict[str, str]:
        """The accuracy matrix of each order (first seed), labelled ``order N``."""
        return {label: f"{self.run_dir(run)}/{MATRIX}" for label, run in self.first_seed_runs(method).items()}

    def representative_steps(self, method: str, name: str, with_base: bool) -> list[str]:
        base = [f"{self.layout.base}/{name}"] if with_base else []
        return base + self.step_paths(self.representative_run(method), name)

    # ------------------------------------------------------------------ published runs
    def reference_source(self, name: str) -> str:
        return str(reference_path(self.reference_runs[name], self.basedir))

    def reference_inputs(self, wildcards) -> list[str]:
        """The files of published run ``wildcards.reference``."""
        from asvd.analysis.reference_runs import source_files

        return [str(path) for path in source_files(self.reference_source(wildcards.reference))]

    def reference_summaries(self) -> list[str]:
        return [f"{self.layout.reference.format(reference=name)}/{SUMMARY}"
                for name in self.reference_runs]

    def reference_matrices(self) -> dict[str, dict[str, str]]:
        return {name: {order_label(spec["order"]):
                       f"{self.layout.reference.format(reference=name)}/{MATRIX}"}
                for name, spec in self.reference_runs.items()}

    def paper_reference(self) -> str:
        """The paper table's reference CSV, relative to the checkout unless absolute."""
        path = Path(self.config["paper_table"]["reference"])
        return str(path if path.is_absolute() else self.basedir / path)

    # ------------------------------------------------------------------ the premise
    def measures_premise(self, method: str) -> bool:
        """Measured on sequential runs of constrained methods and, against premise.reference's
        rule, of unconstrained ones."""
        spec = self.methods[method]
        return (bool(self.premise) and spec.schedule == "sequential"
                and (spec.constrained or bool(self.premise["reference"])))

    def premise_inputs(self, wildcards) -> dict:
        """Where every step of a run starts (the base, then each earlier step) with its SVD
        cache, the steps' train logs, and every task's test (measured) and train (importance)
        data."""
        run = self.run_of(wildcards)
        tasks = self.run_tasks(wildcards)
        starts = [self.layout.base] + [self.layout.step.format(**run, step=step)
                                       for step in range(1, len(tasks))]
        cache = self.svd_cache(self.premise_subspace_of(wildcards.method))
        return {
            "checkpoints": [f"{start}/{MODEL}" for start in starts],
            "svd": [f"{start}/{cache}" for start in starts],
            "train_logs": self.step_paths(run, TRAIN_LOG),
            "tests": [self.data(task, "test.jsonl") for task in tasks],
            "train": [self.data(task) for task in tasks],
            "reference_tuned": self._premise_reference_tuning(wildcards),
        }

    def _premise_reference_tuning(self, wildcards) -> list[str]:
        """An unconstrained method is measured against the reference's rule as tuned in its
        order."""
        reference = self.premise["reference"]
        if self.methods[wildcards.method].constrained or not reference or not self.tuned(reference):
            return []
        return [self.layout.tuning.format(method=reference, order=wildcards.order)]

    def premise_subspace_of(self, method: str) -> str:
        """Whose rule and targets measure ``method``'s premise: its own, or where it is
        unconstrained, premise.reference's."""
        return method if self.methods[method].constrained else self.premise["reference"]

    def premise_of_run(self, wildcards) -> list[str]:
        """A run's premise measurement, an input of its summary where it is measured."""
        if not self.measures_premise(wildcards.method):
            return []
        return [f"{self.run_dir(self.run_of(wildcards))}/{PREMISE}"]

    def premise_reference(self) -> Mapping | None:
        """The reference method's block, for measuring unconstrained methods' premise."""
        reference = self.premise["reference"]
        return reference and self.blocks[reference]

    def premise_reference_train(self, wildcards):
        reference = self.premise["reference"]
        return reference and self.train_settings(reference, self.run_tasks(wildcards)[0])

    # ------------------------------------------------------------------ checkpoints
    def svd_cache(self, method: str) -> str:
        """The file name of ``method``'s SVD caches: one per target set, shared by the methods
        with the same ``target_modules``."""
        return svd_cache_name(self.blocks[method].get("target_modules", "auto"))

    def svd_targets(self, key: str) -> list[str]:
        """The target patterns the SVD caches named by ``key`` hold."""
        for block in self.blocks.values():
            targets = block.get("target_modules", "auto")
            if targets_key(targets) == key:
                return target_set(targets)
        raise ValueError(f"no method of this study has SVD targets {key!r}")

    def svd_caches_of_run(self, run: Mapping) -> list[str]:
        """The SVD caches of a run's steps that a later step, the premise or a figure reads."""
        method = run["method"]
        names = {self.svd_cache(method)}
        if self.measures_premise(method):
            names.add(self.svd_cache(self.premise_subspace_of(method)))
        return [path for name in sorted(names) for path in self.step_paths(run, name)]

    def studied_tasks(self) -> list[str]:
        """Every task of the orders being run, in first-seen order (the base model's row 0)."""
        tasks = []
        for order in self.config["run"]["orders"]:
            tasks += [task for task in self.orders[order] if task not in tasks]
        return tasks

    def checkpoint_eval_names(self, wildcards) -> list[str]:
        """The base model is scored on every studied task; a run's checkpoint on its sequence.
        ``wildcards.checkpoint`` is the checkpoint's folder under the study's root."""
        general = [GENERAL] if self.has_general else []
        if f"{self.layout.root}/{wildcards.checkpoint}" == self.layout.base:
            return [*self.studied_tasks(), *general]
        order = re.search(r"(?:^|/)order(\d+)(?:/|$)", wildcards.checkpoint).group(1)
        return [*self.orders[int(order)], *general]

    def checkpoint_eval_inputs(self, wildcards) -> dict:
        return {"model": f"{self.layout.root}/{wildcards.checkpoint}/{MODEL}",
                "tests": [self.data(name, "test.jsonl")
                          for name in self.checkpoint_eval_names(wildcards)]}

    def base_model_inputs(self, wildcards) -> dict:
        """A built base pretrains on the general mixture; a pretrained one needs it only to be
        instruction-tuned on it."""
        general = self.data(GENERAL)
        if self.config["base_model"].get("pretrained"):
            return {"general": general} if self.instruction_tuned else {}
        return {"general": general,
                "vocabulary": [self.data(task, split) for task in [*self.tasks, GENERAL]
                               for split in ("train.jsonl", "test.jsonl")]}

    # ------------------------------------------------------------------ public targets
    def table_outputs(self, scope: str = "study") -> list[str]:
        folder = self.scopes[scope].folder
        names = ["summary"] + (["paper"] if scope == "study" and self.config.get("paper_table")
                               else [])
        return [self.layout.table(folder, name, ext) for name in names for ext in TABLE_FORMATS]

    def table_summaries(self, scope: str) -> list[str]:
        """The run summaries target ``scope``'s summary table reads."""
        spec = self.scopes[scope]
        references = self.reference_summaries() if spec.references else []
        return self.run_summaries(list(spec.methods)) + references

    def outputs(self, scope: str) -> list[str]:
        """A public target's tables and figures."""
        from asvd.analysis.figure_registry import figure_outputs

        return self.table_outputs(scope) + figure_outputs(self, scope)

    def study_outputs(self) -> set[str]:
        """Every result a public target of this study can make: all the damage sweep may
        check or move (:func:`asvd.pipeline.damage.sweep`)."""
        methods = list(dict.fromkeys(self.declared + self.ablation_methods + self.tradeoff_methods))
        runs = self.all_runs(methods)
        scopes = [scope for scope in self.scopes.values()
                  if scope.name in ("study", "comparison") or scope.methods]
        return {
            *(path for run in runs for name in CHECKPOINT_FILES
              for path in self.step_paths(run, name)),
            *(path for run in runs for path in self.svd_caches_of_run(run)),
            *(f"{self.layout.base}/{self.svd_cache(method)}" for method in methods),
            *(f"{self.run_dir(run)}/{name}" for run in runs for name in (MATRIX, SUMMARY)),
            *(f"{self.run_dir(run)}/{PREMISE}" for run in runs
              if self.measures_premise(run["method"])),
            *(path for run in runs for path in self.tuning_of_run(_Wildcards(run))),
            *(f"{self.layout.base}/{name}" for name in CHECKPOINT_FILES),
            *(self.data(task, name) for task in [*self.tasks, *([GENERAL] if self.has_general
                                                                else [])]
              for name in DATA_FILES),
            *(f"{self.layout.reference.format(reference=name)}/{file}"
              for name in self.reference_runs for file in (MATRIX, SUMMARY)),
            *(path for scope in scopes for path in self.outputs(scope.name)),
            *(f"{self.layout.scope(scope.folder)}/tables/environment.csv"
              for scope in self.scopes.values()),
        }


class _Wildcards:
    """A run as the attributes a rule's wildcards have."""

    def __init__(self, run: Mapping):
        self.__dict__.update(run)
