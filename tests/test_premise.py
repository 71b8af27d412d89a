"""The premise measurement (asvd/evaluation/premise.py) on cases built so the answer is known."""

from __future__ import annotations

import pytest
import torch
from transformers.pytorch_utils import Conv1D

from asvd.evaluation.premise import _headline, frozen_shares, summarise_shares


class _Net(torch.nn.Module):
    """One target ``layers.0.fc`` (a Linear, or GPT-2's Conv1D that stores W as (in, out))."""

    def __init__(self, weight: torch.Tensor, conv1d: bool = False):
        super().__init__()
        self.layers = torch.nn.ModuleList([torch.nn.Module()])
        if conv1d:
            fc = Conv1D(weight.shape[1], weight.shape[0])
        else:
            fc = torch.nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            fc.weight.copy_(weight)
            fc.bias.normal_()  # the bias never enters an output share
        self.layers[0].fc = fc

    def forward(self, x):
        return self.layers[0].fc(x)


def _case(conv1d: bool = False, k: int = 3, n: int = 8):
    """A square random target with k frozen directions: (net, modules, bases, input-side basis
    of the frozen part, its complement)."""
    torch.manual_seed(0)
    weight = torch.randn(n, n)
    U, _, Vh = torch.linalg.svd(weight)
    net = _Net(weight, conv1d)
    bases = {"layers.0.fc": (U[:, :k], Vh[:k].T)}
    # a Linear reads x through W^T: its input side is V; a Conv1D reads x W: its input side is U
    side = U if conv1d else Vh.T
    return net, {"layers.0.fc": net.layers[0].fc}, bases, side[:, :k], side[:, k:]


def _batches(inputs: torch.Tensor):
    """Two batches of (batch, tokens, features): every token is a row of ``inputs``."""
    half = inputs.shape[0] // 2
    return [{"x": inputs[:half].reshape(1, half, -1)}, {"x": inputs[half:].reshape(1, -1, inputs.shape[1])}]


@pytest.mark.parametrize("conv1d", [False, True], ids=["linear", "conv1d"])
def test_inputs_inside_the_frozen_right_subspace_have_share_one(conv1d):
    net, modules, bases, frozen, _ = _case(conv1d)
    inputs = torch.randn(10, frozen.shape[1]) @ frozen.T
    share = frozen_shares(net, modules, bases, _batches(inputs))["layers.0.fc"]
    # and their outputs W x = U_h S_h V_h^T x lie in the frozen left subspace
    assert share == pytest.approx({"input": 1.0, "output": 1.0}, abs=1e-5)


@pytest.mark.parametrize("conv1d", [False, True], ids=["linear", "conv1d"])
def test_inputs_orthogonal_to_the_frozen_subspace_have_share_zero(conv1d):
    net, modules, bases, _, free = _case(conv1d)
    inputs = torch.randn(10, free.shape[1]) @ free.T
    share = frozen_shares(net, modules, bases, _batches(inputs))["layers.0.fc"]
    assert share == pytest.approx({"input": 0.0, "output": 0.0}, abs=1e-5)


def test_a_mixed_input_counts_energy_not_amplitude():
    # x = 3 v_1 + 1 c_1: energy 9 of 10 in V_h (an amplitude count would say 3 of 4)
    net, modules, bases, frozen, free = _case()
    inputs = (3 * frozen[:, 0] + free[:, 0]).repeat(4, 1)
    share = frozen_shares(net, modules, bases, _batches(inputs))["layers.0.fc"]
    assert share["input"] == pytest.approx(0.9, abs=1e-5)


def test_a_target_with_nothing_frozen_has_share_zero_and_a_silent_one_is_refused():
    net, modules, _, frozen, _ = _case()
    inputs = torch.randn(4, frozen.shape[1]) @ frozen.T
    assert frozen_shares(net, modules, {}, _batches(inputs))["layers.0.fc"] == {"input": 0.0,
                                                                                "output": 0.0}
    with pytest.raises(ValueError, match=r"no input energy reached \['layers\.0\.fc'\]"):
        frozen_shares(net, modules, {}, [])


def test_shares_average_over_targets_per_block_and_overall():
    per_target = {"m.layers.0.q": {"input": 1.0, "output": 1.0},
                  "m.layers.0.k": {"input": 0.5, "output": 0.0},
                  "m.layers.1.q": {"input": 0.0, "output": 0.5},
                  "lm_head": {"input": 0.25, "output": 0.25}}
    summary = summarise_shares(per_target)
    assert summary["input"] == pytest.approx(1.75 / 4) and summary["output"] == pytest.approx(0.4375)
    assert summary["blocks"] == {"m.layers.0": {"input": 0.75, "output": 0.5},
                                 "m.layers.1": {"input": 0.0, "output": 0.5},
                                 "lm_head": {"input": 0.25, "output": 0.25}}


def test_the_headline_separates_earlier_tasks_from_the_new_one_from_step_two_on():
    def share(value):
        return {"input": value, "output": value / 2}
    steps = [{"index": 1, "task": "a", "shares": {"a": share(0.1)}},
             {"index": 2, "task": "b", "shares": {"a": share(0.9), "b": share(0.5)}},
             {"index": 3, "task": "c", "shares": {"a": share(0.7), "b": share(0.8),
                                                  "c": share(0.3)}},
             {"index": 4, "task": "d", "shares": {}}]  # nothing frozen at this step
    assert _headline(steps) == pytest.approx({
        "earlier_input_share": 0.8, "new_input_share": 0.4,
        "earlier_output_share": 0.4, "new_output_share": 0.2})
    assert _headline(steps[:1]) == {"earlier_input_share": None, "new_input_share": None,
                                    "earlier_output_share": None, "new_output_share": None}
