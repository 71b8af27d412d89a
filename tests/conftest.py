"""Shared test helpers: repository paths, the shared/ folder, config merging, Snakemake runs."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
import traceback
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pytest
import yaml
from filelock import FileLock

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
DEFAULT_CONFIG = REPO / "config" / "config.yaml"
TEST_CONFIGS = REPO / "tests" / "configs"

# Everything runs offline; no test may reach the Hugging Face Hub.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def shared_dir() -> Path | None:
    """``../shared`` beside the checkout (reference material, real data), or None if absent."""
    path = REPO.parent / "shared"
    return path if path.is_dir() else None


def load_yaml(path: str | Path) -> dict:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def deep_merge(base: Mapping, update: Mapping) -> dict:
    """Snakemake's ``--configfile`` semantics: nested dicts merge, everything else replaces."""
    merged = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def task_log(task: str = "alpha", step: int = 1, **keys) -> dict:
    """A complete task train log record (asvd.train_log.TaskLog) with ``keys`` over defaults."""
    return {"steps": 2, "resumed_from_step": 0, "examples": 4, "seconds": 0.1, "loss": [1.0, 0.5],
            "final_loss": 0.5, "environment": {}, "task": task, "step": step, "replayed": 0,
            "ranks": {}, "frozen_ranks": {}, "max_violation": 0.0, "violation": {},
            "trained_parameters": 10, "processes": 1, **keys}


def effective_config(*configfiles: str | Path) -> dict:
    """The config a run sees: the embedded default with ``configfiles`` merged on top in order."""
    config = load_yaml(DEFAULT_CONFIG)
    for path in configfiles:
        config = deep_merge(config, load_yaml(path))
    return config


def run_snakemake(
    workdir: str | Path,
    *args: str,
    configfiles: Sequence[str | Path] = (),
    check: bool = True,
    timeout: float = 600,
    snakefile: str | Path = SNAKEFILE,
) -> subprocess.CompletedProcess:
    """``python -m snakemake`` on the repository's Snakefile with ``--directory workdir``.

    Targets and flags go in ``args``; the config files follow them all as the values of one
    ``--configfile`` (merged in order); ``snakefile`` runs a copy of the workflow. stdout and stderr are
    captured as text; with ``check`` a non-zero exit fails the calling test with both shown.
    """
    command = [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(snakefile),
        "--directory", str(workdir),
        *args,
        # last, so the option's several values swallow nothing (a repeated --configfile=PATH
        # would keep only the last file)
        *(["--configfile", *(str(Path(path).resolve()) for path in configfiles)]
          if configfiles else []),
    ]
    env = {**os.environ, **OFFLINE_ENV}
    result = subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"snakemake exited {result.returncode}: {' '.join(command)}\n"
            f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-6000:]}",
            pytrace=False,
        )
    return result


def built_once(tmp_path_factory, name: str, build: Callable[[Path], Any]) -> Any:
    """``build(folder)`` run once per test session, however many xdist workers need it: the
    first builds under a file lock while the others wait, then all read its (JSON) result. A
    failed build fails every test that needs it, showing the first traceback."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # shared by the workers of this session
    record, failed = root / f"{name}.json", root / f"{name}.failed"
    with FileLock(str(root / f"{name}.lock")):
        if failed.exists():
            pytest.fail(f"{name}: the build failed in another worker:\n{failed.read_text()}",
                        pytrace=False)
        if not record.exists():
            try:
                record.write_text(json.dumps(build(root / name)))
            except BaseException:
                failed.write_text(traceback.format_exc())
                raise
    return json.loads(record.read_text())


# A small prepared study, the inputs of every stage called directly: two synthetic tasks, the
# general mixture and a BART base trained on it.
STAGE_BENCHMARK = {
    "name": "synthetic",
    "symbols": 8,
    "classes": ["red", "blue"],
    "length": 4,
    "tasks": [{"name": "alpha", "position": "first"}, {"name": "beta", "position": "last"}],
    "train_per_task": 64,
    "test_per_task": 16,
    "general_train": 96,
    "general_test": 16,
}
STAGE_ARCHITECTURE = {
    "d_model": 16, "encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 2,
    "decoder_attention_heads": 2, "encoder_ffn_dim": 32, "decoder_ffn_dim": 32,
    "max_position_embeddings": 32, "dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0,
}
STAGE_TRAIN = {"epochs": 2, "batch_size": 16, "lr": 3e-3, "weight_decay": 0.1}
STAGE_ASVD = {"rank_rule": {"name": "importance", "mrr": 0.1, "trr": 0.8, "samples": 8},
              "projection": "two_sided", "target_modules": "auto", "train_other_params": True}


@pytest.fixture(scope="session")
def prepared(tmp_path_factory):
    """``(root, files)``: the prepared study's folder (the base under ``base/model``) and each
    task's ``{"train", "test"}`` files, built once per test process."""
    from asvd.data import prepare
    from asvd.train.base import train_base_model

    root = tmp_path_factory.mktemp("stages")
    files = {}
    for task in ["alpha", "beta", prepare.GENERAL]:
        files[task] = {split: root / "data" / task / f"{split}.jsonl" for split in ("train", "test")}
        prepare.prepare_task(STAGE_BENCHMARK, task, "seed", 0, files[task]["train"], files[task]["test"])
    vocabulary = [path for splits in files.values() for path in splits.values()]
    train_base_model(files[prepare.GENERAL]["train"], vocabulary, "bart", STAGE_ARCHITECTURE,
                     {"epochs": 1, "batch_size": 32, "lr": 1e-3}, 0, root / "base" / "model",
                     root / "base" / "train_log.json")
    return root, files


def random_llama(tokenizer, hidden_size: int = 32, layers: int = 2, heads: int = 4):
    """A tiny randomly initialised LLaMA (seed 0) over ``tokenizer``'s vocabulary."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(
        hidden_size=hidden_size, intermediate_size=2 * hidden_size, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=heads, vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id))


def write_olora_run(run_dir: Path, rows: list[list[float]], tasks: list[str]) -> Path:
    """An O-LoRA-style run directory: ``outputs/<k>-<task>/all_results.json`` scoring, at step
    k, the tasks seen so far (``rows[k-1]``), as O-LoRA publishes its runs."""
    for k, (task, row) in enumerate(zip(tasks, rows), start=1):
        results = {"epoch": 1.0, "predict_exact_match": 0.0}
        results |= {f"predict_exact_match_for_{t}": v for t, v in zip(tasks[:k], row)}
        step_dir = run_dir / "outputs" / f"{k}-{task}"
        step_dir.mkdir(parents=True)
        (step_dir / "all_results.json").write_text(json.dumps(results))
    return run_dir


def learned_files(results: Path) -> dict[str, str]:
    """Hash of every checkpoint's weights and every accuracy matrix under an experiment's
    results, by relative path: what byte-identity checks compare (a study that learns little
    may score the same by chance; its weights differ whenever its training does)."""
    files = [*results.glob("**/model/model.safetensors"), *results.glob("*/order*/seed*/accuracy_matrix.csv")]
    learned = {str(path.relative_to(results)): hashlib.sha256(path.read_bytes()).hexdigest()
               for path in sorted(files) if ".corrupt-" not in str(path)}
    assert any(name.endswith("model.safetensors") for name in learned), f"no checkpoint under {results}"
    return learned


class _TableCells(HTMLParser):
    """Collects the text of every header and data cell, row by row, entities decoded."""

    def __init__(self):
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("th", "td"):
            self._cell = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("th", "td"):
            self.rows[-1].append(self._cell.strip())
            self._cell = None


def html_table_rows(page: str) -> list[list[str]]:
    """The cells of an HTML table page as a reader sees them: the header row, then each row."""
    parser = _TableCells()
    parser.feed(page)
    return parser.rows


def pytest_collection_modifyitems(config, items):
    """Spread the tests marked ``long(rank)`` over the xdist workers and start them first.

    xdist's load scheduler first hands each worker a chunk of consecutive tests (a quarter of its
    share) and then feeds whichever worker runs short. So each worker's chunk starts with its
    share of the long tests (by rank, round robin), followed by short tests; one long test never
    runs alone at the end while the other worker idles, and two never queue on one worker."""
    def rank(item):
        return item.get_closest_marker("long").args[0]

    long = sorted((item for item in items if item.get_closest_marker("long")), key=rank)
    short = [item for item in items if not item.get_closest_marker("long")]
    workers = getattr(config, "workerinput", {}).get("workercount", 1)
    chunk = max(2, len(items) // workers // 4)  # xdist's LoadScheduling: its first chunk size
    ordered = []
    for worker in range(workers):
        share = long[worker::workers]
        ordered += share + short[: max(0, chunk - len(share))]
        short = short[max(0, chunk - len(share)):]
    items[:] = ordered + short
