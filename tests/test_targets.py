"""asvd.method.targets: target discovery on tiny random models of every family 'auto' knows
(the MODELS below are shared with tests/test_importance.py)."""


import pytest
import torch
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    BertConfig,
    BertModel,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    T5Config,
    T5ForConditionalGeneration,
)

from asvd.method import ranks
from asvd.method.constraint import OrthogonalSubspace
from asvd.method.targets import find_targets
from asvd.train.models import build_word_tokenizer

SMALL = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
             num_key_value_heads=2, vocab_size=64)

MODELS = {
    "t5": (lambda: T5ForConditionalGeneration(T5Config(vocab_size=64, d_model=16, d_kv=8, d_ff=32,
                                                       num_layers=2, num_heads=2)),
           2 * 6 + 2 * 6, "encoder.block.0.layer.0.SelfAttention.q"),
    "t5-gated": (lambda: T5ForConditionalGeneration(T5Config(vocab_size=64, d_model=16, d_kv=8, d_ff=32,
                                                             num_layers=1, num_heads=2,
                                                             feed_forward_proj="gated-gelu")),
                 7 + 7, "decoder.block.0.layer.2.DenseReluDense.wi_1"),
    "llama": (lambda: LlamaForCausalLM(LlamaConfig(**SMALL)), 2 * 7, "model.layers.1.mlp.gate_proj"),
    "mistral": (lambda: MistralForCausalLM(MistralConfig(**SMALL)), 2 * 7, "model.layers.0.self_attn.o_proj"),
    "bert": (lambda: BertModel(BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=2,
                                          num_attention_heads=2, intermediate_size=32)),
             2 * 6, "encoder.layer.1.output.dense"),
    "gpt2": (lambda: GPT2LMHeadModel(GPT2Config(vocab_size=64, n_embd=16, n_layer=2, n_head=2)),
             2 * 4, "transformer.h.0.attn.c_attn"),
    "bart": (lambda: BartForConditionalGeneration(BartConfig(vocab_size=64, d_model=16, encoder_layers=1,
                                                             decoder_layers=1, encoder_ffn_dim=32,
                                                             decoder_ffn_dim=32, encoder_attention_heads=2,
                                                             decoder_attention_heads=2)),
             6 + 6, "model.encoder.layers.0.fc1"),
}


@pytest.mark.parametrize("family", sorted(MODELS))
def test_auto_targets(family):
    build, count, example = MODELS[family]
    torch.manual_seed(0)
    targets = find_targets(build(), "auto")
    assert len(targets) == count
    assert example in targets
    # never embeddings, norms, heads or (for T5/BART) cross-attention
    assert not any(word in name for name in targets
                   for word in ("embed", "norm", "lm_head", "EncDecAttention", "encoder_attn", "pooler"))


def test_constraint_leaves_non_targets_alone_on_a_real_architecture():
    torch.manual_seed(0)
    model = MODELS["llama"][0]()
    constraint = OrthogonalSubspace(model, "auto", ranks.Uniform(unfreeze=0.5))
    assert set(constraint.frozen_ranks()) == set(find_targets(model))
    ids = torch.randint(0, 64, (2, 6))
    model(input_ids=ids, labels=ids).loss.backward()
    before = {n: p.grad.clone() for n, p in model.named_parameters()}
    constraint.project_gradients()
    target_weights = {f"{name}.weight" for name in constraint.subspaces}
    for name, param in model.named_parameters():
        if name not in target_weights:
            assert torch.equal(param.grad, before[name]), name


def test_unknown_family_and_no_match_errors():
    with pytest.raises(ValueError, match="target_modules: 'auto' does not know"):
        find_targets(torch.nn.Linear(3, 3), "auto")
    with pytest.raises(ValueError, match="no 2-D weight matches"):
        find_targets(MODELS["llama"][0](), ["nothing_here"])


def test_targets_matching_nothing_list_what_was_looked_for_and_what_exists():
    from conftest import random_llama

    model = random_llama(build_word_tokenizer(["a b"]))
    with pytest.raises(ValueError, match=r"no 2-D weight matches \['attn\\\\.c_attn'\]") as error:
        find_targets(model, [r"attn\.c_attn"])
    assert "model.layers.N.self_attn.q_proj" in str(error.value)
    assert "model.layers.N.mlp.down_proj" in str(error.value)


@pytest.mark.parametrize("family", sorted(MODELS))
def test_the_svd_stage_finds_the_same_targets_in_the_saved_tensors(family, tmp_path):
    """The SVD stage reads a checkpoint's safetensors without building the model: same targets,
    same weights (the cache stamp), as the live model gives."""
    from asvd.io import write_checksums
    from asvd.method import svd

    build, _, _ = MODELS[family]
    torch.manual_seed(0)
    model = build()
    model.save_pretrained(tmp_path / "model", safe_serialization=True)
    write_checksums(tmp_path / "model")
    summary = svd.build_cache(tmp_path / "model", tmp_path / "svd.safetensors")
    modules = find_targets(model, "auto")
    assert svd.cached_names(tmp_path / "svd.safetensors") == sorted(modules)
    assert summary["weights_sha256"] == svd.weights_hash(svd.module_weights(modules))
