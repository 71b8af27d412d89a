"""Each config key is declared once, in code, and the schema and config/README.md agree with it:
a key added to a method, the train block or a rank rule without its schema entry and its row in
config/README.md (or the other way round) fails here. A piece's own key (asvd/train/pieces/
keys.yaml, read by asvd.train.pieces) carries its documentation with its schema."""

from __future__ import annotations

import dataclasses
import re

import pytest

from asvd.method import ranks
from asvd.method_config import PIECE_KEYS, Method
from asvd.pipeline.validation import load_schema
from asvd.train import pieces
from asvd.train.loop import TrainSettings
from conftest import REPO

SCHEMA = load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")
README = (REPO / "config" / "README.md").read_text(encoding="utf-8")
RENAMED = {"project"}  # earlier names the schema refuses with a pointer to the new one
MOVED = {"first_task"}  # rank-rule keys that moved to the method
# keys of train blocks the workflow reads before training (it resolves them into epochs)
WORKFLOW_TRAIN_KEYS = {"task_epochs"}


def field_names(cls) -> set[str]:
    return {field.name for field in dataclasses.fields(cls)}


def documented() -> set[str]:
    """Every key named in the first column of config/README.md's tables."""
    cells = re.findall(r"^\| (.+?) \|", README, re.M)
    return {key for cell in cells for key in re.findall(r"`([^`]+)`", cell)}


def test_a_method_block_is_the_method_object():
    schema = set(SCHEMA["properties"]["methods"]["additionalProperties"]["properties"])
    assert schema - RENAMED == field_names(Method) - {"pieces"} | set(PIECE_KEYS)


def test_every_piece_key_is_read_by_one_piece():
    keys = [piece.key for piece in pieces.PIECES if piece.key]
    assert sorted(keys) == sorted(PIECE_KEYS)


@pytest.mark.parametrize("key", sorted(PIECE_KEYS))
def test_a_piece_key_documents_itself_and_each_of_its_keys(key):
    schema = PIECE_KEYS[key]["schema"]
    assert len(schema["description"]) > 40
    assert [name for name in schema["properties"] if name not in schema["description"]] == []
    assert set(PIECE_KEYS[key]) <= {"schema", "reads_earlier_tasks", "whole_model_copy"}


def test_a_train_block_is_the_training_settings():
    assert set(SCHEMA["$defs"]["train"]["properties"]) == field_names(TrainSettings) | WORKFLOW_TRAIN_KEYS


def test_a_rank_rule_block_is_one_of_the_rule_classes():
    schema = SCHEMA["$defs"]["rank_rule"]["properties"]
    assert set(schema["name"]["enum"]) == set(ranks.RULES)
    fields = set().union(*(field_names(rule) for rule in ranks.RULES.values()))
    assert set(schema) == fields - set(ranks.POSITION) | {"name"} | MOVED


def has_row(key: str, rows: set[str]) -> bool:
    """A row names ``key`` itself, a key under it, or a pattern over it (``threads.<rule>``)."""
    for row in rows:
        pattern = re.escape(row).replace(r"\<", "<").replace(r"\>", ">")
        pattern = re.sub(r"<\w+>", r"[^.]+", pattern)
        if re.fullmatch(pattern, key) or row.startswith(f"{key}."):
            return True
    return False


def test_every_key_has_its_row_in_config_readme():
    rows = documented()
    keys = []
    for key, spec in SCHEMA["properties"].items():
        children = spec.get("properties") if isinstance(spec, dict) else None
        keys += [f"{key}.{child}" for child in children] if children else [key]
    method_keys = set(SCHEMA["properties"]["methods"]["additionalProperties"]["properties"])
    keys += [f"methods.<name>.{key}" for key in sorted(method_keys - RENAMED - set(PIECE_KEYS))]
    keys += [f"train.{key}" for key in SCHEMA["$defs"]["train"]["properties"]]
    assert [key for key in keys if not has_row(key, rows)] == []


def test_a_key_without_its_row_is_found():
    rows = {"threads.<rule>", "benchmark.hub.<task>", "train.lr"}
    assert has_row("threads.svd_cache", rows) and has_row("benchmark.hub", rows)
    assert not has_row("train.weight_decay", rows) and not has_row("threads", {"train.lr"})
