"""asvd.train.pieces: a method is assembled from pieces by its config keys, and a new piece
(docs/architecture.md's worked example) joins training through the public path alone."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from asvd.io import read_json, write_jsonl
from asvd.method_config import PIECE_KEYS, Method
from asvd.pipeline.validation import schema_problems
from asvd.train import pieces
from asvd.train.finetune import TaskInputs, TaskPosition, finetune_task
from asvd.train.models import build_word_tokenizer, save_checkpoint
from conftest import DEFAULT_CONFIG, REPO, load_yaml, random_llama

METHODS = load_yaml(DEFAULT_CONFIG)["methods"]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
RECORDS = [{"id": f"r{i}", "task": "one", "labels": None, "input": f"map {word} to", "target": answer}
           for i, (word, answer) in enumerate([("one", "red"), ("two", "blue"), ("three", "red")])]


@pytest.mark.parametrize("method, expected", [
    ("seqft", ["SubspaceConstraint"]),
    ("asvd", ["SubspaceConstraint", "Freezing"]),
    ("asvd_replay", ["Replay", "SubspaceConstraint", "Freezing"]),
    ("ewc", ["SubspaceConstraint", "EWC"]),
    ("olora", ["SubspaceConstraint", "LoRA"]),
    ("mtl", ["JointTraining", "SubspaceConstraint"]),
])
def test_a_method_is_the_pieces_its_keys_select(method, expected):
    assembled = pieces.assemble(Method.from_config(METHODS[method]))
    assert [type(piece).__name__ for piece in assembled] == expected


def test_a_joint_method_does_not_also_replay():
    method = Method.from_config({"schedule": "joint", "replay": {"ratio": 0.5}})
    assert [type(p).__name__ for p in pieces.assemble(method)] == ["JointTraining", "SubspaceConstraint"]


class L2ToStart(pieces.Piece):
    """docs/architecture.md's worked example: an L2 pull towards the weights the task started
    from (L2-SP), selected by its own key, its anchor saved with the checkpoint and its calls
    logged."""

    key = "l2sp"

    def prepare(self, context, model):
        self.anchor = {name: p.detach().clone() for name, p in model.named_parameters()}
        self.calls = 0
        return model

    def loss_terms(self):
        def pull(model, batch, outputs):
            self.calls += 1
            return self.spec["strength"] * sum(((p - self.anchor[name]) ** 2).sum()
                             for name, p in model.named_parameters())
        return [pull]

    def tensors(self):
        return {"l2_anchor.safetensors": {"embed": self.anchor["model.embed_tokens.weight"]}}

    def log(self, context):
        return {"l2_calls": self.calls}


@pytest.fixture
def first_task(tmp_path):
    """A tiny base checkpoint and one task's records: the inputs of a first training step."""
    tokenizer = build_word_tokenizer([t for r in RECORDS for t in (r["input"], r["target"])])
    save_checkpoint(random_llama(tokenizer, hidden_size=16, layers=1, heads=2), tokenizer,
                    tmp_path / "base")
    write_jsonl(tmp_path / "one.jsonl", RECORDS)
    return TaskInputs(tmp_path / "base", tmp_path / "one.jsonl")


L2SP_KEY = {"schema": {"type": "object", "additionalProperties": False, "required": ["strength"],
                       "description": "{strength}: strength * |theta - theta_start|^2",
                       "properties": {"strength": {"type": "number", "minimum": 0}}}}


def test_a_new_piece_trains_saves_and_logs_through_the_public_path(tmp_path, monkeypatch, first_task):
    """The worked example's three lines in asvd/train/pieces/ (its module, its PIECES entry, its
    key in keys.yaml) make it a method key the config check knows and training runs."""
    config = load_yaml(DEFAULT_CONFIG)
    config["methods"]["l2sp"] = {"rank_rule": None, "l2sp": {"strength": "strong"}}
    assert any("methods.l2sp" in line for line in schema_problems(config, SCHEMA))  # not a key yet
    monkeypatch.setitem(PIECE_KEYS, "l2sp", L2SP_KEY)
    monkeypatch.setattr(pieces, "PIECES", [*pieces.PIECES, L2ToStart])
    assert schema_problems(config, SCHEMA) == [
        "methods.l2sp.l2sp.strength: 'strong' is not of type 'number'"]
    config["methods"]["l2sp"]["l2sp"]["strength"] = 0.1
    assert schema_problems(config, SCHEMA) == []

    settings = {"epochs": 2, "batch_size": 3, "lr": 1e-2, "max_source_length": 16}
    log = finetune_task(first_task, TaskPosition("one", 1, 1), config["methods"]["l2sp"], settings, 0,
                        tmp_path / "step1", tmp_path / "log.json")
    assert log["l2_calls"] == 2 and read_json(tmp_path / "log.json")["l2_calls"] == 2
    # the term joined the loss (logged per step apart from the task loss): zero at the anchor
    assert log["penalty"][0] == 0 and log["penalty"][-1] > 0
    anchor = load_file(tmp_path / "step1" / "l2_anchor.safetensors")["embed"]
    trained = load_file(tmp_path / "step1" / "model.safetensors")["model.embed_tokens.weight"]
    assert not torch.equal(anchor, trained)  # the anchor is the start, not the result


def test_a_piece_without_a_key_must_say_which_methods_have_it():
    with pytest.raises(TypeError, match="SecondConstraint has no key"):
        type("SecondConstraint", (pieces.Piece,), {}).applies(Method.from_config({"rank_rule": None}))


class SecondConstraint(pieces.Piece):
    @classmethod
    def applies(cls, method):
        return True

    def prepare(self, context, model):
        self.constraint = object()  # anything but None: a second projection
        return model


def test_two_pieces_that_constrain_one_method_are_refused(tmp_path, monkeypatch, first_task):
    monkeypatch.setattr(pieces, "PIECES", [*pieces.PIECES, SecondConstraint])
    method = {"rank_rule": {"name": "uniform", "unfreeze": 0.5}}
    with pytest.raises(ValueError, match="2 pieces of one method constrain its steps"):
        finetune_task(first_task, TaskPosition("one", 1, 1), method,
                      {"epochs": 1, "batch_size": 3, "max_source_length": 16}, 0,
                      tmp_path / "step1", tmp_path / "log.json")
    assert not (tmp_path / "step1").exists()
