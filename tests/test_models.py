"""Target discovery on tiny random models of every family 'auto' knows, and importance scores."""

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
from asvd.method.importance import importance_scores
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


def test_matrix_importance_is_the_mean_input_output_cosine_of_the_linear_part():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.same = torch.nn.Linear(4, 4)  # its bias is not part of X W^T
            self.flip = torch.nn.Linear(4, 4, bias=False)
            self.wide = torch.nn.Linear(4, 6, bias=False)

        def forward(self, x):
            return self.same(x) + self.flip(x) + self.wide(x)[..., :4]

    net = Net()
    with torch.no_grad():
        net.same.weight.copy_(torch.eye(4))
        net.same.bias.fill_(100.0)
        net.flip.weight.copy_(-2 * torch.eye(4))
        net.wide.weight.copy_(torch.cat([torch.eye(4), torch.ones(2, 4)]))
    batches = [{"x": torch.randn(3, 4)} for _ in range(2)]
    scores = importance_scores(net, {"same": net.same, "flip": net.flip, "wide": net.wide}, batches,
                               granularity="matrix")
    assert scores["same"] == pytest.approx(1.0)
    assert scores["flip"] == pytest.approx(-1.0)
    assert scores["wide"] == pytest.approx(1.0)  # first min(d_in, d_out) coordinates


class _Block(torch.nn.Module):
    """A residual block that returns a tuple, like Hugging Face's: h + scale * fc(h)."""

    def __init__(self, scale):
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)
        self.scale = scale

    def forward(self, hidden_states):
        return (hidden_states + self.scale * self.fc(hidden_states),)


class _Stack(torch.nn.Module):
    def __init__(self, scales):
        super().__init__()
        self.layers = torch.nn.ModuleList(_Block(scale) for scale in scales)

    def forward(self, x):
        for layer in self.layers:
            x = layer(hidden_states=x)[0]
        return x


def test_block_importance_is_the_cosine_between_a_blocks_input_and_output():
    torch.manual_seed(0)
    net = _Stack([0.0, 1.0])
    with torch.no_grad():
        net.layers[1].fc.weight.copy_(torch.eye(4))
        net.layers[1].fc.bias.zero_()
    targets = {"layers.0.fc": net.layers[0].fc, "layers.1.fc": net.layers[1].fc}
    scores = importance_scores(net, targets, [{"x": torch.randn(5, 4)} for _ in range(3)])
    # block 0 passes its input through (cos 1); block 1 doubles it (cos 1); both by block name
    assert scores == pytest.approx({"layers.0": 1.0, "layers.1": 1.0})


def test_a_block_with_a_negative_score_is_kept_and_gets_mrr_not_refused():
    torch.manual_seed(0)
    net = _Stack([0.0, -2.0])
    with torch.no_grad():
        net.layers[1].fc.weight.copy_(torch.eye(4))
        net.layers[1].fc.bias.zero_()
    targets = {"layers.0.fc": net.layers[0].fc, "layers.1.fc": net.layers[1].fc}
    scores = importance_scores(net, targets, [{"x": torch.randn(5, 4)}])
    assert scores == pytest.approx({"layers.0": 1.0, "layers.1": -1.0})
    rule = ranks.Importance(mrr=0.1, trr=0.8)
    assert rule.unimportant_units(scores) == ["layers.1"]
    # block 1 counts as I = 0 (r = mrr); block 0 takes the whole mean: r = 0.1 + 2 * 0.7
    assert rule.retention_ratios(scores) == pytest.approx({"layers.0": 1.5, "layers.1": 0.1})
    shapes = {"layers.0.fc": (4, 4), "layers.1.fc": (4, 4)}
    assert rule.frozen_ranks(shapes, scores) == {"layers.0.fc": 3, "layers.1.fc": 0}
    assert rule.clamped_targets(shapes, scores) == ["layers.0.fc"]


def test_a_block_with_a_nan_score_is_refused_naming_its_targets():
    net = _Stack([0.0, 1.0])
    with torch.no_grad():
        net.layers[1].fc.weight.fill_(float("nan"))
    targets = {"layers.0.fc": net.layers[0].fc, "layers.1.fc": net.layers[1].fc}
    with pytest.raises(ValueError, match=r"layers\.1 = nan.*targets \['layers\.1\.fc'\]"):
        importance_scores(net, targets, [{"x": torch.randn(5, 4)}])


BLOCK_COUNTS = {"t5": 4, "t5-gated": 2, "llama": 2, "mistral": 2, "bert": 2, "gpt2": 2, "bart": 2}


@pytest.mark.parametrize("family", sorted(MODELS))
def test_block_importance_scores_every_block_of_every_family(family):
    build, _, _ = MODELS[family]
    torch.manual_seed(0)
    model = build()
    targets = find_targets(model, "auto")
    ids = torch.randint(1, 64, (1, 7))
    batch = ({"input_ids": ids, "decoder_input_ids": ids} if model.config.is_encoder_decoder
             else {"input_ids": ids})
    scores = importance_scores(model, targets, [batch, batch])
    assert set(scores) == {ranks.block_of(name) for name in targets}
    assert len(scores) == BLOCK_COUNTS[family]
    assert all(0 < value <= 1 + 1e-6 for value in scores.values())


def test_word_tokenizer_round_trip():
    tokenizer = build_word_tokenizer(["copy : ba be", "red"])
    ids = tokenizer("copy : ba be")["input_ids"]
    assert ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == "copy : ba be"


# --------------------------------------------------------------------------- model errors


def test_targets_matching_nothing_list_what_was_looked_for_and_what_exists():
    from conftest import random_llama

    model = random_llama(build_word_tokenizer(["a b"]))
    with pytest.raises(ValueError, match=r"no 2-D weight matches \['attn\\\\.c_attn'\]") as error:
        find_targets(model, [r"attn\.c_attn"])
    assert "model.layers.N.self_attn.q_proj" in str(error.value)
    assert "model.layers.N.mlp.down_proj" in str(error.value)


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
