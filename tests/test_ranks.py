"""Rank rules on worked cases (METHOD.md section 3)."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asvd import ranks


def test_importance_worked_case():
    # I = (0.5, 1.0, 1.5) -> normalised (0.5, 1, 1.5); r_l = 0.1 + I * 0.7 = (0.45, 0.8, 1.15)
    shapes = {"a": (100, 40), "b": (40, 40), "c": (10, 64)}
    importance = {"a": 0.5, "b": 1.0, "c": 1.5}
    rule = ranks.Importance(mrr=0.1, trr=0.8)
    ratios = rule.retention_ratios(importance)
    assert ratios == pytest.approx({"a": 0.45, "b": 0.8, "c": 1.15})
    # k = floor(r_l * min(d_out, d_in)): 0.45*40 = 18, 0.8*40 = 32, 1.15*10 = 11.5 -> clamp to 9
    assert rule.frozen_ranks(shapes, importance) == {"a": 18, "b": 32, "c": 9}


def test_importance_negative_scores_clamp_to_zero():
    rule = ranks.Importance(mrr=0.1, trr=0.8)
    shapes = {"a": (8, 8), "b": (8, 8)}
    assert rule.frozen_ranks(shapes, {"a": -3.0, "b": 5.0}) == {"a": 0, "b": 7}


def test_importance_needs_a_score_for_every_target():
    with pytest.raises(ValueError, match="no importance score"):
        ranks.Importance().frozen_ranks({"a": (4, 4), "b": (4, 4)}, {"a": 1.0})


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
    # from the 5th task the FFN matrix is frozen completely (clamped to r - 1)
    assert ranks.Linear(task=5).frozen_ranks(shapes)["wi"] == 1023


def test_progressive():
    assert ranks.Progressive(task=3, tasks=4).frozen_ranks({"a": (40, 20)}) == {"a": 10}


def test_fixed_and_from_config():
    rule = ranks.from_config({"name": "fixed", "ranks": {"a": 3}}, task=1, tasks=2)
    assert rule.frozen_ranks({"a": (5, 5), "b": (5, 5)}) == {"a": 3, "b": 0}
    rule = ranks.from_config({"name": "importance", "mrr": 0.2, "trr": 0.6, "first_task": "full"}, 2, 4)
    assert rule == ranks.Importance(mrr=0.2, trr=0.6)
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
