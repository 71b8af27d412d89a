"""asvd.method.importance: block and matrix importance scores, and how the rank rule takes
the scores it cannot use."""

import pytest
import torch
from test_targets import MODELS

from asvd.method import ranks
from asvd.method.importance import importance_scores
from asvd.method.targets import find_targets


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


def test_the_library_example_of_docs_method_8_runs_as_written():
    """docs/method.md §8: the adaptive rule on one's own model and the previous task's batches."""
    import asvd
    from asvd.train.models import build_word_tokenizer
    from conftest import random_llama

    tokenizer = build_word_tokenizer(["map one to red", "map two to blue"])
    model = random_llama(tokenizer, hidden_size=16, layers=2, heads=2)
    previous_task_batches = [tokenizer(["map one to red"], return_tensors="pt"),
                             tokenizer(["map two to blue"], return_tensors="pt")]
    targets = asvd.find_targets(model, "auto")
    importance = asvd.importance_scores(model, targets, previous_task_batches, granularity="block")
    constraint = asvd.OrthogonalSubspace(model, targets="auto", importance=importance,
                                         rank_rule=asvd.ranks.Importance(mrr=0.1, trr=0.8, samples=128))
    assert set(importance) == {"model.layers.0", "model.layers.1"}
    assert set(constraint.frozen_ranks()) == set(targets)
    assert all(k > 0 for k in constraint.frozen_ranks().values())
    assert constraint.max_violation() < 1e-5  # fp32 rounding of U S Vh
