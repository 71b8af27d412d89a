"""Invariants of the orthogonal-subspace constraint (docs/method.md §4.5), fp32 on CPU."""

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from asvd.method import ranks
from asvd.method.constraint import FrozenSubspace, OrthogonalSubspace
from asvd.method.svd import thin_svd


class TwoLayer(torch.nn.Module):
    """A tiny model with a tall, a wide and a square target plus non-target parameters."""

    def __init__(self, d_in=12, d_hidden=20, d_out=12):
        super().__init__()
        self.up = torch.nn.Linear(d_in, d_hidden)
        self.square = torch.nn.Linear(d_hidden, d_hidden, bias=False)
        self.down = torch.nn.Linear(d_hidden, d_out)
        self.norm = torch.nn.LayerNorm(d_out)

    def forward(self, x):
        return self.norm(self.down(torch.relu(self.square(torch.relu(self.up(x))))))


TARGETS = [r"^up$", r"^square$", r"^down$"]


def max_abs(tensor):
    return float(tensor.abs().max()) if tensor.numel() else 0.0


def train_steps(model, constraint=None, steps=30, seed=0, weight_decay=0.1, lr=1e-2):
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    if constraint is not None:
        constraint.wrap(optimizer)
    for _ in range(steps):
        x = torch.randn(16, 12)
        loss = (model(x) - torch.sin(x)).pow(2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model


def test_two_sided_preserves_frozen_triplets_under_adamw_with_weight_decay():
    torch.manual_seed(0)
    model = TwoLayer()
    before = copy.deepcopy(model)
    constraint = OrthogonalSubspace(model, TARGETS, ranks.Uniform(unfreeze=0.4))
    assert constraint.max_violation() < 5e-6  # fp32 SVD round-off only
    train_steps(model, constraint, steps=50)
    assert constraint.max_violation() <= 1e-5
    for name in ("up", "square", "down"):
        # the weights did move, inside the allowed subspace
        assert not torch.allclose(getattr(model, name).weight, getattr(before, name).weight)
        sub = constraint.subspaces[name]
        W = getattr(model, name).weight.detach()
        assert torch.allclose(sub.U.T @ W, sub.S[:, None] * sub.V.T, atol=1e-5)
        assert torch.allclose(W @ sub.V, sub.U * sub.S, atol=1e-5)


def test_without_reanchoring_adam_and_weight_decay_leak():
    """The re-anchoring step is what keeps the constraint exact (guards against removing it)."""
    torch.manual_seed(0)
    model = TwoLayer()
    constraint = OrthogonalSubspace(model, TARGETS, ranks.Uniform(unfreeze=0.4))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    optimizer.register_step_pre_hook(lambda *_: constraint.project_gradients())
    for _ in range(50):
        x = torch.randn(16, 12)
        (model(x) - torch.sin(x)).pow(2).mean().backward()
        optimizer.step()
        optimizer.zero_grad()
    assert constraint.max_violation() > 1e-3


def test_trainable_part_receives_nonzero_gradients():
    torch.manual_seed(0)
    model = TwoLayer()
    constraint = OrthogonalSubspace(model, TARGETS, ranks.Uniform(unfreeze=0.3))
    x = torch.randn(16, 12)
    model(x).pow(2).mean().backward()
    constraint.project_gradients()
    for name in ("up", "square", "down"):
        grad = getattr(model, name).weight.grad
        assert grad.abs().max() > 0
        sub = constraint.subspaces[name]
        assert (sub.U.T @ grad).abs().max() < 1e-6
        assert (grad @ sub.V).abs().max() < 1e-6


def test_k_zero_everywhere_reproduces_plain_training_bit_for_bit():
    torch.manual_seed(0)
    plain = TwoLayer()
    constrained = copy.deepcopy(plain)
    train_steps(plain)
    constraint = OrthogonalSubspace(constrained, TARGETS, ranks.Uniform(unfreeze=1.0))
    assert constraint.frozen_ranks() == {"up": 0, "square": 0, "down": 0}
    train_steps(constrained, constraint)
    for a, b in zip(plain.state_dict().values(), constrained.state_dict().values()):
        assert torch.equal(a, b)


def test_non_target_parameters_train_exactly_as_plain_fine_tuning_would_first_step():
    """One step: the constraint touches only target weights (biases, norms move identically)."""
    torch.manual_seed(0)
    plain = TwoLayer()
    constrained = copy.deepcopy(plain)
    train_steps(plain, steps=1)
    train_steps(constrained, OrthogonalSubspace(constrained, TARGETS, ranks.Uniform(0.5)), steps=1)
    for name in ("up.bias", "down.bias", "norm.weight", "norm.bias"):
        assert torch.equal(plain.state_dict()[name], constrained.state_dict()[name])
    assert not torch.equal(plain.square.weight, constrained.square.weight)


def test_paper_block_keeps_only_the_high_high_block():
    torch.manual_seed(0)
    model = TwoLayer()
    W0 = model.square.weight.detach().clone()
    constraint = OrthogonalSubspace(model, [r"^square$"], ranks.Uniform(0.5), projection="paper_block")
    train_steps(model, constraint, steps=40)
    sub = constraint.subspaces["square"]
    delta = model.square.weight.detach() - W0
    assert (sub.U.T @ delta @ sub.V).abs().max() < 1e-5
    # the cross terms are not constrained by this form, so they do move
    assert (sub.U.T @ delta).abs().max() > 1e-4
    assert constraint.max_violation() <= 1e-5


def test_precomputed_svd_is_used_as_given():
    torch.manual_seed(0)
    model = TwoLayer()
    svd = {name: thin_svd(getattr(model, name).weight) for name in ("up", "square", "down")}
    a = OrthogonalSubspace(model, TARGETS, ranks.Uniform(0.5), svd=svd)
    b = OrthogonalSubspace(model, TARGETS, ranks.Uniform(0.5))
    for name in a.subspaces:
        assert torch.allclose(a.subspaces[name].anchor(), b.subspaces[name].anchor(), atol=1e-5)


def test_a_precomputed_svd_that_does_not_fit_is_refused_naming_the_target():
    torch.manual_seed(0)
    model, other = TwoLayer(), TwoLayer()
    own = {name: thin_svd(getattr(model, name).weight) for name in ("up", "square", "down")}
    foreign = {name: thin_svd(getattr(other, name).weight) for name in ("up", "square", "down")}
    cases = {
        "another model's": ({**own, "square": foreign["square"]}, r"svd\['square'\].*another model"),
        "transposed": ({**own, "up": (own["up"][2].T, own["up"][1], own["up"][0].T)},
                       r"svd\['up'\]: shapes"),
        "missing": ({k: v for k, v in own.items() if k != "down"}, r"no \(U, S, Vh\) for target 'down'"),
        "not a triplet": ({**own, "up": own["up"][0]}, r"svd\['up'\]: expected a \(U, S, Vh\)"),
    }
    for svd, message in cases.values():
        with pytest.raises(ValueError, match=message):
            OrthogonalSubspace(model, TARGETS, ranks.Uniform(0.5), svd=svd)


def test_a_target_the_user_froze_stays_bit_for_bit():
    torch.manual_seed(0)
    model = TwoLayer()
    model.square.weight.requires_grad_(False)
    frozen = model.square.weight.detach().clone()
    train_steps(model, OrthogonalSubspace(model, TARGETS, ranks.Uniform(0.5)), steps=5)
    assert torch.equal(model.square.weight, frozen)


def test_a_target_pattern_that_is_no_regex_is_named():
    with pytest.raises(ValueError, match=r"target_modules: '\(up' is not a regular expression"):
        OrthogonalSubspace(TwoLayer(), ["(up"])


def test_unknown_projection_is_rejected():
    with pytest.raises(ValueError, match="projection"):
        OrthogonalSubspace(TwoLayer(), TARGETS, projection="one_sided")


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(2, 24),
    n=st.integers(2, 24),
    k_fraction=st.floats(0.0, 1.0),
    projection=st.sampled_from(["two_sided", "paper_block"]),
    seed=st.integers(0, 2**16),
)
def test_projection_satisfies_the_constraint_for_any_shape(m, n, k_fraction, projection, seed):
    generator = torch.Generator().manual_seed(seed)
    W = torch.randn(m, n, generator=generator)
    G = torch.randn(m, n, generator=generator)
    r = min(m, n)
    k = ranks.clamp_rank(int(k_fraction * r), (m, n))
    U, S, Vh = thin_svd(W)
    sub = FrozenSubspace(torch.nn.Parameter(W.clone()), U[:, :k], S[:k], Vh[:k].T)
    P = sub.project(G, projection)
    if projection == "two_sided":
        assert max_abs(sub.U.T @ P) < 1e-4
        assert max_abs(P @ sub.V) < 1e-4
    else:
        assert max_abs(sub.U.T @ P @ sub.V) < 1e-4
    # projecting twice changes nothing (it is a projector)
    assert torch.allclose(sub.project(P, projection), P, atol=1e-4)
    # a step inside the allowed set, then re-anchoring, leaves the frozen triplets exact
    with torch.no_grad():
        sub.weight += 0.1 * P
        sub.weight.copy_(sub.project(sub.weight, projection) + sub.anchor())
    assert sub.violation(projection) <= 1e-5


def test_update_projection_is_exact_and_equals_projecting_the_optimizer_step():
    torch.manual_seed(0)
    model = TwoLayer()
    constraint = OrthogonalSubspace(model, TARGETS, ranks.Uniform(0.5), acts_on="update")
    train_steps(model, constraint, steps=50)
    assert constraint.max_violation() <= 1e-5
    # one more step by hand: the result is W_old + P(D), D the unconstrained AdamW update
    plain = copy.deepcopy(model)
    old = model.square.weight.detach().clone()
    train_steps(plain, steps=1, seed=7)
    train_steps(model, constraint, steps=1, seed=7)
    sub = constraint.subspaces["square"]
    expected = old + sub.project(plain.square.weight.detach() - old, "two_sided")
    assert torch.allclose(model.square.weight, expected, atol=1e-6)


def test_update_and_gradient_projection_differ_in_the_optimizer_moments():
    torch.manual_seed(0)
    a = TwoLayer()
    b = copy.deepcopy(a)
    train_steps(a, OrthogonalSubspace(a, TARGETS, ranks.Uniform(0.5), acts_on="gradient"), steps=5)
    train_steps(b, OrthogonalSubspace(b, TARGETS, ranks.Uniform(0.5), acts_on="update"), steps=5)
    assert not torch.allclose(a.square.weight, b.square.weight, atol=1e-6)
    with pytest.raises(ValueError, match="acts_on"):
        OrthogonalSubspace(a, TARGETS, acts_on="elsewhere")


class Stack(torch.nn.Module):
    """Five same-shape targets and one of another shape: two batched groups."""

    def __init__(self):
        super().__init__()
        self.blocks = torch.nn.ModuleList(torch.nn.Linear(10, 10) for _ in range(5))
        self.head = torch.nn.Linear(10, 6)

    def forward(self, x):
        for block in self.blocks:
            x = torch.tanh(block(x))
        return self.head(x)


def train_stack(model, constraint, steps=20):
    torch.manual_seed(1)
    optimizer = constraint.wrap(torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1))
    for _ in range(steps):
        x = torch.randn(8, 10)
        model(x).pow(2).mean().backward()
        optimizer.step()
        optimizer.zero_grad()


def test_same_shape_targets_share_one_batched_group_and_chunking_changes_nothing(monkeypatch):
    torch.manual_seed(0)
    whole = Stack()
    chunked = copy.deepcopy(whole)
    targets = [r"blocks\.\d$", r"^head$"]
    batched = OrthogonalSubspace(whole, targets, ranks.Uniform(0.5))
    assert sorted(len(group.weights) for group in batched.groups) == [1, 5]
    monkeypatch.setattr("asvd.method.constraint.BATCH_ELEMENTS", 2 * 10 * 10)
    small = OrthogonalSubspace(chunked, targets, ranks.Uniform(0.5))
    assert sorted(len(group.weights) for group in small.groups) == [1, 1, 2, 2]
    train_stack(whole, batched)
    train_stack(chunked, small)
    for a, b in zip(whole.parameters(), chunked.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    assert batched.max_violation() <= 1e-5


def test_a_target_without_gradient_is_skipped_and_the_rest_of_its_group_projected():
    torch.manual_seed(0)
    model = Stack()
    constraint = OrthogonalSubspace(model, [r"blocks\.\d$"], ranks.Uniform(0.5))
    x = torch.randn(8, 10)
    model.head(torch.tanh(model.blocks[1](x))).pow(2).mean().backward()  # only block 1 is used
    constraint.project_gradients()
    assert all(model.blocks[i].weight.grad is None for i in (0, 2, 3, 4))
    sub = constraint.subspaces["blocks.1"]
    assert (sub.U.T @ model.blocks[1].weight.grad).abs().max() < 1e-6
    assert model.blocks[1].weight.grad.abs().max() > 0


def test_bfloat16_weights_are_projected_in_fp32_and_stay_within_their_precision():
    torch.manual_seed(0)
    model = TwoLayer().to(torch.bfloat16)
    constraint = OrthogonalSubspace(model, TARGETS, ranks.Uniform(0.5))
    optimizer = constraint.wrap(torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1))
    for _ in range(10):
        x = torch.randn(16, 12, dtype=torch.bfloat16)
        model(x).float().pow(2).mean().backward()
        optimizer.step()
        optimizer.zero_grad()
    assert constraint.subspaces["square"].U.dtype == torch.float32
    # bf16 keeps 8 bits of mantissa: the frozen block is exact up to that rounding
    assert constraint.max_violation() <= 2e-2


def test_complements_are_stored_where_cheaper_and_train_exactly_like_the_frozen_bases():
    torch.manual_seed(0)
    a = TwoLayer()
    b = copy.deepcopy(a)
    with_complements = OrthogonalSubspace(a, TARGETS, ranks.Uniform(0.2))  # k = 80 % of r
    bases_only = OrthogonalSubspace(b, TARGETS, ranks.Uniform(0.2))
    sides = {id(g.weights[0]): (g.left is not None, g.right is not None)
             for g in with_complements.groups}
    assert sides[id(a.square.weight)] == (True, True)  # 20 x 20
    assert sides[id(a.up.weight)] == (False, True)  # 20 x 12: only V's basis is complete
    assert sides[id(a.down.weight)] == (True, False)  # 12 x 20: only U's
    for group in bases_only.groups:
        group.left = group.right = None
    train_steps(a, with_complements)
    train_steps(b, bases_only)
    for x, y in zip(a.parameters(), b.parameters()):
        assert torch.allclose(x, y, atol=1e-5)
    assert with_complements.max_violation() <= 1e-5
    # at 40 % frozen the frozen bases are the smaller side: no complements
    assert all(g.left is None and g.right is None
               for g in OrthogonalSubspace(TwoLayer(), TARGETS, ranks.Uniform(0.6)).groups)


@settings(max_examples=60, deadline=None)
@given(m=st.integers(2, 16), n=st.integers(2, 16), k_fraction=st.floats(0.0, 1.0),
       anchored=st.booleans(), sides=st.sampled_from([(True, False), (False, True), (True, True)]),
       rows=st.integers(1, 16), seed=st.integers(0, 2**16))
def test_every_complement_form_equals_the_frozen_basis_form(m, n, k_fraction, anchored, sides,
                                                           rows, seed):
    """Each side's complement where its basis is complete, alone or with the other's; and a
    block of rows with U^T X given (FSDP's shards) on the right complement."""
    from asvd.method.constraint import remove_frozen

    generator = torch.Generator().manual_seed(seed)
    W, X = torch.randn(m, n, generator=generator), torch.randn(m, n, generator=generator)
    k = max(1, ranks.clamp_rank(int(k_fraction * min(m, n)), (m, n)))
    U, S, Vh = thin_svd(W)
    left = U if sides[0] and m <= n else None  # complete bases, the frozen columns first
    right = Vh.T if sides[1] and n <= m else None
    S_k = S[:k] if anchored else None
    expected = remove_frozen(X.clone(), U[:, :k], Vh[:k].T, S_k, "two_sided")
    got = remove_frozen(X.clone(), U[:, :k], Vh[:k].T, S_k, "two_sided", left, right)
    assert torch.allclose(got, expected, atol=1e-4)
    block = slice(0, min(rows, m))  # a row shard: no left complement, U^T X summed elsewhere
    sharded = remove_frozen(X[block].clone(), U[block, :k], Vh[:k].T, S_k, "two_sided", None,
                            right, UtX=U[:, :k].T @ X)
    assert torch.allclose(sharded, expected[block], atol=1e-4)


@pytest.mark.parametrize("shape", [(512, 512), (2048, 512), (512, 2048), (128, 256)])
@pytest.mark.parametrize("acts_on", ["gradient", "update"])
def test_the_chosen_projection_gets_cheaper_as_more_is_frozen(shape, acts_on):
    from asvd.method.constraint import complement_sides, projection_flops

    def step(fraction):
        k = int(fraction * min(shape))
        sides = complement_sides(*shape, k, "two_sided", acts_on)
        flops = projection_flops(*shape, k, *sides, anchored=True)
        if acts_on == "gradient":
            flops += projection_flops(*shape, k, *sides, anchored=False)
        basis = projection_flops(*shape, k, False, False, True) * (2 if acts_on == "gradient" else 1)
        assert flops <= basis  # never dearer than the frozen bases alone
        return flops

    costs = [step(fraction) for fraction in (0.5, 0.6, 0.7, 0.8, 0.9)]
    assert costs == sorted(costs, reverse=True), costs


def test_projection_flops_counts_what_the_products_multiply():
    """The cost model against its products written out, for the right complement of a tall
    matrix: X C (m n (n-k)), U^T Z and U (U^T Z) (m k (n-k) each), [Z, U S][C, V]^T (m n n)."""
    from asvd.method.constraint import projection_flops

    m, n, k = 40, 10, 7
    assert projection_flops(m, n, k, False, True, anchored=True) == 2 * (
        m * n * (n - k) + 2 * m * k * (n - k) + m * n * n)
    assert projection_flops(m, n, k, False, True, anchored=False) == 2 * (
        m * n * (n - k) + 2 * m * k * (n - k) + m * n * (n - k))
    assert projection_flops(m, n, k, False, False, anchored=True) == 8 * m * n * k
