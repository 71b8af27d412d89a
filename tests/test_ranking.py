"""Option ranking (asvd.evaluation.ranking): likelihoods of listed options on tiny random models
the tests build, the option they pick, and its scores."""

import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizer

from asvd.evaluation.ranking import most_likely_options, option_log_likelihoods, rankable, ranked_scores
from asvd.train.base import fetch_base_model
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


FAMILIES = ["llama", "bart", "bert2bert"]


def warm_started_bert(tmp_path):
    """A tiny random BERT warm-started into an encoder-decoder, as the small real base is."""
    words = sorted({word for r in RECORDS for word in f"{r['input']} {r['target']}".split()})
    tokenizer = BertTokenizer(vocab={word: i for i, word in
                                     enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])})
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=64)
    BertModel(config).save_pretrained(tmp_path / "bert")
    tokenizer.save_pretrained(tmp_path / "bert")
    fetch_base_model(str(tmp_path / "bert"), tmp_path / "bert2bert", tmp_path / "log.json",
                     warm_start="encoder_decoder")


def tiny_model(tmp_path, family: str):
    if family == "bert2bert":
        warm_started_bert(tmp_path)
    else:
        tokenizer = build_word_tokenizer([text for r in RECORDS for text in (r["input"], r["target"])])
        model = random_llama(tokenizer) if family == "llama" else build_seq2seq(tokenizer, "bart", BART, 0)
        save_checkpoint(model, tokenizer, tmp_path / family)
    return load_checkpoint(tmp_path / family)  # as evaluation loads it (a causal LM pads left)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("batch_size", [1, 5])
def test_batched_likelihoods_equal_each_pair_scored_alone(tmp_path, family, batch_size):
    """Padding, options of different lengths and (encoder-decoder) one encoding shared by a
    prompt's options change nothing: each option's sum equals minus the model's own mean loss
    on that (prompt, option) pair alone times its answer tokens."""
    model, tokenizer = tiny_model(tmp_path, family)
    records = [*RECORDS, {**RECORDS[0], "labels": OPTIONS[:2]}]  # a record with fewer options
    batched = option_log_likelihoods(model, tokenizer, records, batch_size=batch_size,
                                     max_source_length=64, max_target_length=8)
    settings = TrainSettings(max_source_length=64, max_target_length=8)
    assert [len(scores) for scores in batched] == [len(r["labels"]) for r in records]
    for record, scores in zip(records, batched):
        for option, likelihood in zip(record["labels"], scores):
            alone = encode(tokenizer, [{"input": record["input"], "target": option}], settings, model)
            with torch.no_grad():
                loss = model(**alone).loss.item()
            answer_tokens = int((alone["labels"] != -100).sum())
            assert likelihood == pytest.approx(-loss * answer_tokens, rel=1e-4, abs=1e-4)
    assert all(len(set(scores)) == len(scores) for scores in batched)  # options told apart


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("favoured", ["red", "green"])
def test_the_option_the_model_favours_is_chosen(tmp_path, family, favoured):
    """A model whose output layer favours one word picks that option for every prompt, whatever
    it would generate and whatever the target is."""
    model, tokenizer = tiny_model(tmp_path, family)
    word = tokenizer.convert_tokens_to_ids(favoured)

    def favour(module, inputs, logits):
        logits[..., word] += 50.0
        return logits

    with model.get_output_embeddings().register_forward_hook(favour):
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
