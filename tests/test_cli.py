"""asvd.cli: ``--version`` and ``inspect`` (what a method's rule freezes on a checkpoint, through
the training step's own code path); ``metrics`` and ``import-olora`` are in test_metrics.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

import asvd
from asvd.cli import main
from asvd.io import write_jsonl
from asvd.train.models import build_word_tokenizer, save_checkpoint
from conftest import OFFLINE_ENV, random_llama

RECORDS = [{"id": f"r{i}", "task": "one", "labels": None, "input": f"map {word} to", "target": answer}
           for i, (word, answer) in enumerate([("one", "red"), ("two", "blue"), ("three", "red")] * 4)]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("inspect")
    tokenizer = build_word_tokenizer([t for r in RECORDS for t in (r["input"], r["target"])])
    save_checkpoint(random_llama(tokenizer, hidden_size=16, layers=1, heads=2), tokenizer, root / "model")
    write_jsonl(root / "train.jsonl", RECORDS)
    return root


def inspect(capsys, *argv) -> dict:
    assert main(["inspect", *map(str, argv)]) == 0
    return json.loads(capsys.readouterr().out)


def test_version_is_the_packages():
    result = subprocess.run([sys.executable, "-m", "asvd", "--version"], capture_output=True,
                            text=True, env={**os.environ, **OFFLINE_ENV}, check=True)
    assert result.stdout.strip() == f"asvd {asvd.__version__}"


def test_the_library_api_is_reachable_from_the_package():
    assert asvd.find_targets.__module__ == "asvd.method.targets"
    assert asvd.importance_scores.__module__ == "asvd.method.importance"
    assert asvd.method.ranks.Uniform is asvd.ranks.Uniform  # a subpackage is an attribute


def test_inspect_lists_targets_and_the_k_a_uniform_rule_freezes(checkpoint, capsys):
    plain = inspect(capsys, checkpoint / "model")
    assert plain["targets"] and all(row["frozen"] == 0 for row in plain["targets"].values())
    report = inspect(capsys, checkpoint / "model", "--method",
                     "{rank_rule: {name: uniform, unfreeze: 0.25}}")
    assert set(report["targets"]) == set(plain["targets"])
    for row in report["targets"].values():
        assert row["rank"] == min(row["shape"]) and row["frozen"] + row["free"] == row["rank"]
        assert row["frozen"] == row["rank"] - int(0.25 * row["rank"])


def test_inspect_measures_importance_on_the_data_given(checkpoint, capsys):
    method = "{rank_rule: {name: importance, mrr: 0.1, trr: 0.8, samples: 8}}"
    report = inspect(capsys, checkpoint / "model", "--method", method, "--data",
                     checkpoint / "train.jsonl")
    assert report["importance"] and all(0 < row["frozen"] < row["rank"]
                                        for row in report["targets"].values())


@pytest.mark.parametrize("argv, message", [
    (["--method", "{rank_rule: {name: importance, mrr: 0.1, trr: 0.8, samples: 8}}"], "give --data"),
    (["--method", "[1, 2]"], "a method block is a YAML mapping"),
    (["--method", "{rank_rule: null, rank: 3}"], r"methods.--method: unknown keys \['rank'\]"),
    (["--task", "3", "--tasks", "2"], "--task 3 is not within 1..--tasks 2"),
])
def test_inspect_names_a_bad_argument_without_a_traceback(checkpoint, capsys, argv, message):
    assert main(["inspect", str(checkpoint / "model"), *argv]) == 2
    assert re.search(message, capsys.readouterr().err)
