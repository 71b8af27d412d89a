"""asvd.train.models and base: the word tokenizer, loading checkpoints that are missing or unusable,
and a base model trained or fetched that loads as any Hugging Face checkpoint."""

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSeq2SeqLM

from asvd.train.models import build_word_tokenizer


def test_word_tokenizer_round_trip():
    tokenizer = build_word_tokenizer(["copy : ba be", "red"])
    ids = tokenizer("copy : ba be")["input_ids"]
    assert ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == "copy : ba be"


# --------------------------------------------------------------------------- model errors


def test_a_missing_model_is_named(tmp_path):
    from asvd.train.models import load_checkpoint

    with pytest.raises(ValueError, match=f"{tmp_path / 'absent'}: no such model directory"):
        load_checkpoint(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=f"{tmp_path / 'empty'}: no model there .*config.json"):
        load_checkpoint(tmp_path / "empty")


def test_a_tokenizer_without_the_needed_special_tokens_is_named(tmp_path):
    from transformers import PreTrainedTokenizerFast

    from asvd.train.models import load_checkpoint, save_checkpoint
    from conftest import random_llama

    complete = build_word_tokenizer(["map one to red"])
    bare = PreTrainedTokenizerFast(tokenizer_object=complete.backend_tokenizer, unk_token="<unk>")
    save_checkpoint(random_llama(complete), bare, tmp_path / "model")
    with pytest.raises(ValueError, match=r"model: the tokenizer has no eos_token .*; no pad_token and no "
                                         r"eos_token to pad with \(its special tokens: \{'unk_token'"):
        load_checkpoint(tmp_path / "model")


def test_base_checkpoint_loads_with_from_pretrained(prepared):
    root, _ = prepared
    model = AutoModelForSeq2SeqLM.from_pretrained(root / "base" / "model")
    assert (root / "base" / "model" / "model.safetensors").exists()
    assert model.config.model_type == "bart"


def test_fetch_base_model_loads_by_name_from_a_local_directory(tmp_path, prepared):
    """The real-model path (a hub id for users with network) exercised on local files."""
    from asvd.train.base import fetch_base_model

    root, _ = prepared
    result = fetch_base_model(str(root / "base" / "model"), tmp_path / "model", tmp_path / "log.json")
    assert result["model_type"] == "bart" and result["parameters"] > 0
    a = load_file(root / "base" / "model" / "model.safetensors")
    b = load_file(tmp_path / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
