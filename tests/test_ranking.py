"""Option ranking (asvd.evaluation.ranking): likelihoods of listed options on tiny random models
the tests build, the option they pick, and its scores."""

import pytest
import torch

from asvd.evaluation.ranking import most_likely_options, option_log_likelihoods, rankable, ranked_scores
from asvd.train.loop import TrainSettings, encode
from asvd.train.models import build_seq2seq, build_word_tokenizer, load_checkpoint, save_checkpoint
from conftest import random_llama

OPTIONS = ["red", "dark blue", "green"]
RECORDS = [{"input": f"Task colours : what colour is {word} ? Option : {' , '.join(OPTIONS)}",
            "target": answer, "labels": OPTIONS}
           for word, answer in [("sky", "dark blue"), ("grass", "green"), ("blood", "red"),
                                ("sea", "dark blue")]]
BART = {"d_model": 16, "encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 2,
        "decoder_attention_heads": 2, "encoder_ffn_dim": 32, "decoder_ffn_dim": 32,
        "max_position_embeddings": 64, "dropout": 0.0, "attention_dropout": 0.0,
        "activation_dropout": 0.0}


def tiny_model(tmp_path, family: str):
    tokenizer = build_word_tokenizer([text for r in RECORDS for text in (r["input"], r["target"])])
    model = random_llama(tokenizer) if family == "llama" else build_seq2seq(tokenizer, "bart", BART, 0)
    save_checkpoint(model, tokenizer, tmp_path / family)
    return load_checkpoint(tmp_path / family)  # as evaluation loads it (a causal LM pads left)


@pytest.mark.parametrize("family", ["llama", "bart"])
def test_batched_likelihoods_equal_each_pair_scored_alone(tmp_path, family):
    """Padding and options of different lengths in one batch change nothing: each pair's sum
    equals minus the model's own mean loss on that pair alone times its answer tokens."""
    model, tokenizer = tiny_model(tmp_path, family)
    pairs = [(r["input"], option) for r in RECORDS for option in OPTIONS]
    batched = option_log_likelihoods(model, tokenizer, pairs, batch_size=5, max_source_length=64,
                                     max_target_length=8)
    settings = TrainSettings(max_source_length=64, max_target_length=8)
    for (prompt, option), likelihood in zip(pairs, batched):
        alone = encode(tokenizer, [{"input": prompt, "target": option}], settings, model)
        with torch.no_grad():
            loss = model(**alone).loss.item()
        answer_tokens = int((alone["labels"] != -100).sum())
        assert likelihood == pytest.approx(-loss * answer_tokens, rel=1e-4, abs=1e-4)
    assert len(set(batched)) > len(RECORDS)  # the options really are told apart


@pytest.mark.parametrize("family", ["llama", "bart"])
@pytest.mark.parametrize("favoured", ["red", "green"])
def test_the_option_the_model_favours_is_chosen(tmp_path, family, favoured):
    """A model whose output layer favours one word picks that option for every prompt, whatever
    it would generate and whatever the target is."""
    model, tokenizer = tiny_model(tmp_path, family)
    word = tokenizer.convert_tokens_to_ids(favoured)

    def favour(module, inputs, logits):
        logits[..., word] += 50.0
        return logits

    with model.lm_head.register_forward_hook(favour):
        assert most_likely_options(model, tokenizer, RECORDS, 5, 64, 8) == [favoured] * len(RECORDS)


def test_ranked_scores_count_unanswerable_wrong_and_answers_outside_the_options():
    records = [dict(RECORDS[0]), dict(RECORDS[1]), dict(RECORDS[2], answerable=False)]
    chosen = ["Dark Blue", "red", "red"]  # right (normalised), wrong, right but unanswerable
    predictions = ["dark blue.", "violet", "green"]  # listed, not listed, listed
    scores = ranked_scores(records, predictions, chosen)
    assert scores == {"ranked": pytest.approx(100 / 3), "in_options": pytest.approx(200 / 3)}


def test_only_records_that_all_list_options_are_rankable():
    assert rankable(RECORDS)
    assert not rankable([*RECORDS, {"input": "copy a b", "target": "a b", "labels": None}])
    assert not rankable([{"input": "x", "target": "y", "labels": []}])
