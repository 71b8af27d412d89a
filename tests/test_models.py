"""asvd.train.models: the word tokenizer, and loading checkpoints that are missing or unusable."""

import pytest

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
