"""Rank rules on worked cases (docs/method.md §3)."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from asvd.method import ranks


def test_importance_worked_case():
    # I = (0.5, 1.0, 1.5) -> normalised (0.5, 1, 1.5); r_l = 0.1 + I * 0.7 = (0.45, 0.8, 1.15)
    shapes = {"a": (100, 40), "b": (40, 40), "c": (10, 64)}
    importance = {"a": 0.5, "b": 1.0, "c": 1.5}
    rule = ranks.Importance(mrr=0.1, trr=0.8, granularity="matrix")
    ratios = rule.retention_ratios(importance)
    assert ratios == pytest.approx({"a": 0.45, "b": 0.8, "c": 1.15})
    # k = floor(r_l * min(d_out, d_in)): 0.45*40 = 18, 0.8*40 = 32, 1.15*10 = 11.5 -> clamp to 9
    assert rule.frozen_ranks(shapes, importance) == {"a": 18, "b": 32, "c": 9}


def test_importance_negative_scores_count_as_zero_and_get_mrr():
    # clipped I = (0, 5), mean 2.5: r = (0.1, 0.1 + 2 * 0.7 = 1.5); b asks for 12 of 8 -> 7
    rule = ranks.Importance(mrr=0.1, trr=0.8, granularity="matrix")
    shapes = {"a": (8, 8), "b": (8, 8)}
    importance = {"a": -3.0, "b": 5.0}
    assert rule.retention_ratios(importance) == pytest.approx({"a": 0.1, "b": 1.5})
    assert rule.frozen_ranks(shapes, importance) == {"a": 0, "b": 7}
    assert rule.unimportant_units(importance) == ["a"]
    assert rule.clamped_targets(shapes, importance) == ["b"]


def test_a_slightly_negative_block_never_refuses_a_base():
    # the measured case: a 256-wide base whose decoder block 0 scored -0.0018 on its first task
    rule = ranks.Importance(mrr=0.1, trr=0.8)
    importance = {"m.encoder.layers.0": 0.9, "m.encoder.layers.1": 0.95,
                  "m.decoder.layers.0": -0.0018, "m.decoder.layers.1": 0.5}
    ratios = rule.retention_ratios(importance)
    assert ratios["m.decoder.layers.0"] == pytest.approx(0.1)
    assert all(math.isfinite(r) and r >= 0.1 for r in ratios.values())


def test_no_positive_importance_gives_every_unit_mrr():
    rule = ranks.Importance(mrr=0.2, trr=0.8, granularity="matrix")
    assert rule.retention_ratios({"a": 0.0, "b": -1.0}) == {"a": 0.2, "b": 0.2}


def test_non_finite_importance_is_refused_naming_the_unit():
    rule = ranks.Importance(granularity="matrix")
    with pytest.raises(ValueError, match=r"importance of \['b'\] is not finite"):
        rule.retention_ratios({"a": 1.0, "b": math.nan})


def test_clamped_targets_are_exactly_those_the_clamp_changed():
    rule = ranks.Importance(mrr=0.1, trr=0.8, granularity="matrix")
    shapes = {"a": (10, 10), "b": (10, 10), "c": (10, 10)}
    importance = {"a": 0.2, "b": 1.0, "c": 1.8}  # r = 0.24, 0.8, 1.36 -> k 2, 8, 13 -> 9
    unclamped = {name: math.floor(r * 10) for name, r in rule.retention_ratios(importance).items()}
    frozen = rule.frozen_ranks(shapes, importance)
    assert rule.clamped_targets(shapes, importance) == [
        name for name in shapes if frozen[name] != unclamped[name]] == ["c"]


BLOCKS = {
    # family: (a target name, the block it lies in)
    "t5": ("encoder.block.3.layer.1.DenseReluDense.wi", "encoder.block.3"),
    "bart": ("model.decoder.layers.1.encoder_attn.q_proj", "model.decoder.layers.1"),
    "bert2bert": ("decoder.bert.encoder.layer.5.attention.self.query", "decoder.bert.encoder.layer.5"),
    "llama": ("model.layers.31.mlp.down_proj", "model.layers.31"),
    "gpt2": ("transformer.h.0.attn.c_attn", "transformer.h.0"),
}


@pytest.mark.parametrize("family", sorted(BLOCKS))
def test_a_target_belongs_to_its_outermost_numbered_block(family):
    target, block = BLOCKS[family]
    assert ranks.block_of(target) == block


def test_a_target_outside_any_block_is_refused_naming_it():
    with pytest.raises(ValueError, match="'lm_head' lies in no numbered block"):
        ranks.block_of("lm_head")


def test_block_importance_worked_case_normalises_over_blocks_not_targets():
    # block A holds one target, block B three; I_A = 0.5, I_B = 1.5, mean over blocks 1.0
    # (over targets it would be 1.25): r_A = 0.1 + 0.5 * 0.7 = 0.45, r_B = 0.1 + 1.5 * 0.7 = 1.15
    shapes = {"m.layers.0.q": (40, 40), "m.layers.1.q": (40, 40), "m.layers.1.k": (40, 20),
              "m.layers.1.fc": (10, 64)}
    importance = {"m.layers.0": 0.5, "m.layers.1": 1.5}
    rule = ranks.Importance(mrr=0.1, trr=0.8)
    assert rule.retention_ratios(importance) == pytest.approx({"m.layers.0": 0.45, "m.layers.1": 1.15})
    assert rule.frozen_ranks(shapes, importance) == {
        "m.layers.0.q": 18, "m.layers.1.q": 39, "m.layers.1.k": 19, "m.layers.1.fc": 9}


def test_block_importance_is_normalised_by_its_mean():
    # I = (0.2, 0.6): mean 0.4, I/mean = (0.5, 1.5); without the normalisation r = (0.24, 0.52)
    rule = ranks.Importance(mrr=0.1, trr=0.8)
    shapes = {"m.layers.0.q": (100, 100), "m.layers.1.q": (100, 100)}
    assert rule.frozen_ranks(shapes, {"m.layers.0": 0.2, "m.layers.1": 0.6}) == {
        "m.layers.0.q": 45, "m.layers.1.q": 99}


@given(scores=st.lists(st.floats(0.01, 1.0), min_size=1, max_size=8), rank=st.integers(2, 300))
def test_block_importance_never_freezes_less_than_mrr(scores, rank):
    rule = ranks.Importance(mrr=0.1, trr=0.8)
    importance = {f"m.layers.{i}": value for i, value in enumerate(scores)}
    shapes = {f"m.layers.{i}.q": (rank, rank) for i in range(len(scores))}
    for k in rule.frozen_ranks(shapes, importance).values():
        assert math.floor(0.1 * rank) <= k <= rank - 1


def test_importance_needs_a_score_for_every_target():
    with pytest.raises(ValueError, match="no importance score"):
        ranks.Importance(granularity="matrix").frozen_ranks({"a": (4, 4), "b": (4, 4)}, {"a": 1.0})


def test_uniform_worked_cases():
    shapes = {"q": (64, 64), "wi": (256, 64)}
    assert ranks.Uniform(unfreeze=0.25).frozen_ranks(shapes) == {"q": 48, "wi": 48}
    assert ranks.Uniform(unfreeze=0.2).frozen_ranks({"x": (10, 10)}) == {"x": 8}
    assert ranks.Uniform(unfreeze=1.0).frozen_ranks(shapes) == {"q": 0, "wi": 0}
    # unfreeze 0 would freeze everything: clamped so one direction stays trainable
    assert ranks.Uniform(unfreeze=0.0).frozen_ranks(shapes) == {"q": 63, "wi": 63}


def test_linear_uses_max_dimension_like_the_released_script():
    shapes = {"q": (1024, 1024), "wi": (4096, 1024)}  # T5-large attention and FFN
    assert ranks.Linear(task=1).frozen_ranks(shapes) == {"q": 0, "wi": 0}
    assert ranks.Linear(task=3).frozen_ranks(shapes) == {"q": 143, "wi": 573}
    assert ranks.Linear(task=4).frozen_ranks(shapes)["wi"] == 860
    # from the 5th task the FFN matrix is frozen completely, as in the released script
    assert ranks.Linear(task=5).frozen_ranks(shapes)["wi"] == 1024
    assert ranks.Linear(task=5, freeze_whole=False).frozen_ranks(shapes)["wi"] == 1023


def test_a_completely_frozen_matrix_does_not_move():
    from asvd.method.constraint import OrthogonalSubspace

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Linear(4, 8))
    rule = ranks.Linear(task=9, step=1.0)  # k = r for both
    constraint = OrthogonalSubspace(model, [r"^0$", r"^1$"], rule)
    assert constraint.frozen_ranks() == {"0": 4, "1": 4}
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    constraint.wrap(optimizer)
    before = [layer.weight.detach().clone() for layer in model]
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.randn(5, 8)).square().sum().backward()
        optimizer.step()
    assert constraint.max_violation() <= 1e-5
    for layer, weight in zip(model, before):
        torch.testing.assert_close(layer.weight.detach(), weight, atol=1e-5, rtol=0)


def test_progressive():
    assert ranks.Progressive(task=3, tasks=4).frozen_ranks({"a": (40, 20)}) == {"a": 10}


def test_fixed_and_from_config():
    rule = ranks.from_config({"name": "fixed", "ranks": {"a": 3}}, task=1, tasks=2)
    assert rule.frozen_ranks({"a": (5, 5), "b": (5, 5)}) == {"a": 3, "b": 0}
    with pytest.raises(ValueError, match=r"rank_rule 'fixed': \['a'\] are not targets of this model"):
        rule.frozen_ranks({"encoder.a": (5, 5)})  # a typo would leave every target free
    rule = ranks.from_config({"name": "importance", "mrr": 0.2, "trr": 0.6}, 2, 4)
    assert rule == ranks.Importance(mrr=0.2, trr=0.6, granularity="block")
    with pytest.raises(ValueError, match=r"does not take \['first_task'\]"):  # the method's key now
        ranks.from_config({"name": "importance", "first_task": "full"}, 2, 4)
    rule = ranks.from_config({"name": "importance", "granularity": "matrix"}, 2, 4)
    assert rule.granularity == "matrix"
    with pytest.raises(ValueError, match="granularity 'layer'"):
        ranks.from_config({"name": "importance", "granularity": "layer"}, 2, 4)
    with pytest.raises(ValueError, match="rank_rule.name"):
        ranks.from_config({"name": "magic"}, 1, 1)


@given(
    d_out=st.integers(1, 300),
    d_in=st.integers(1, 300),
    unfreeze=st.floats(0.0, 1.0),
)
def test_uniform_always_within_bounds(d_out, d_in, unfreeze):
    k = ranks.Uniform(unfreeze=unfreeze).frozen_ranks({"w": (d_out, d_in)})["w"]
    r = min(d_out, d_in)
    assert 0 <= k <= max(r - 1, 0)
    assert k <= math.floor(r * (1 - unfreeze) + 1e-6)
