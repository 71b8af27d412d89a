"""Where every result of a study lives, defined once: the workflow's rules write to these paths
and :mod:`asvd.pipeline.study` (the rules' input functions, the figure registry) reads them.

Templates keep Snakemake's ``{wildcard}`` fields; ``.format(...)`` fills them. Standard library
only: the Snakefile reads this while it is parsed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Sequence

# the files of a checkpoint (the base model or a task step)
MODEL = "model"
EVAL = "eval.json"
TRAIN_LOG = "train_log.json"
CHECKPOINT_FILES = (MODEL, EVAL, TRAIN_LOG)
# and one SVD cache per set of target patterns a reader needs (see svd_cache_name)
SVD_CACHE = "svd-{targets}.safetensors"
SVD_KEY = r"auto|[0-9a-f]{8}"
# the files of a run (one method, order and seed) or a published reference run
MATRIX = "accuracy_matrix.csv"
SUMMARY = "summary.json"
PREMISE = "premise.json"
# a task's prepared data
DATA_FILES = ("train.jsonl", "test.jsonl", "stats.json")
TABLE_FORMATS = ("csv", "md", "tex", "html")
FIGURE_FORMATS = ("png", "pdf")


def target_set(target_modules: str | Sequence[str]) -> list[str]:
    """A method's ``target_modules`` as the sorted patterns they are (order and repeats select
    the same matrices)."""
    return sorted(set([target_modules] if isinstance(target_modules, str) else target_modules))


def targets_key(target_modules: str | Sequence[str]) -> str:
    """The name of a method's target patterns in its SVD caches' file names: ``auto`` for the
    family's own, else a hash of the patterns (their order and repeats aside, as they select the
    same matrices). A cache is a function of its checkpoint and its key alone, so a method whose
    targets change, or a method that is not run, changes no other method's caches."""
    patterns = target_set(target_modules)
    if patterns == ["auto"]:
        return "auto"
    return hashlib.sha256(json.dumps(patterns).encode()).hexdigest()[:8]


def svd_cache_name(target_modules: str | Sequence[str]) -> str:
    """``svd-<key>.safetensors``: the SVD cache of ``target_modules`` beside a checkpoint."""
    return SVD_CACHE.format(targets=targets_key(target_modules))


def order_label(order) -> str:
    """How tables and figures name a task order (``order 2``)."""
    return f"order {order}"


@dataclass(frozen=True)
class Layout:
    """The paths under ``root`` (``results/<experiment>``)."""

    root: str

    @property
    def base(self) -> str:
        return f"{self.root}/base"

    @property
    def logs(self) -> str:
        return f"{self.root}/logs"

    @property
    def benchmarks(self) -> str:
        """Snakemake's per-job timings (``benchmark:``), not the task suite."""
        return f"{self.root}/benchmarks"

    @property
    def run(self) -> str:
        return f"{self.root}/{{method}}/order{{order}}/seed{{seed}}"

    @property
    def step(self) -> str:
        return f"{self.run}/step{{step}}"

    @property
    def job_key(self) -> str:
        """A training step's name under logs/, benchmarks/ and resume/."""
        return "{method}/order{order}/seed{seed}/step{step}"

    @property
    def resume(self) -> str:
        """A killed training job's state, outside its outputs so a rerun resumes from it."""
        return f"{self.root}/resume/{self.job_key}/train_state.pt"

    @property
    def tuning(self) -> str:
        return f"{self.root}/tuning/{{method}}/order{{order}}.json"

    @property
    def reference(self) -> str:
        return f"{self.root}/reference_runs/{{reference}}"

    def data(self, task: str, name: str) -> str:
        """``name`` (``train.jsonl``, ``test.jsonl``, ``stats.json``) of a task's data."""
        return f"{self.root}/data/{task}/{name}"

    def scope(self, folder: str) -> str:
        """Where a public target's tables and figures go: the study's own at the top, the
        comparison of every baseline, the ablation and the trade-off in sub-folders."""
        return f"{self.root}/{folder}" if folder else self.root

    def table(self, folder: str, name: str, ext: str) -> str:
        return f"{self.scope(folder)}/tables/{name}.{ext}"

    def figure(self, folder: str, name: str, ext: str) -> str:
        return f"{self.scope(folder)}/figures/{name}.{ext}"
