"""The orthogonal-subspace constraint with W itself as the trainable parameter (docs/method.md §4).

For each target weight W = U S V^T the top-k triplets (U_h, S_h, V_h) are frozen. After backward
the gradient is projected away from them; after every optimizer step the frozen block is
re-anchored exactly, which also cancels weight decay and Adam's elementwise leakage. Stored per
target: U_h, S_h, V_h (the anchor needs them) and, on a side whose SVD basis is complete, the
complement basis where it makes a step cheaper (the cost then falls as more is frozen;
docs/method.md §4.6); no factorised copy of W, no extra optimizer state. Small targets of one
shape and frozen rank are stacked so that one batched matmul serves them all.
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass
from functools import partial
from typing import Callable, Mapping, Sequence

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor, Shard

from asvd.method.ranks import Uniform
from asvd.method.svd import cached_svd, thin_svd
from asvd.method.targets import find_targets

PROJECTIONS = ("two_sided", "paper_block")
ACTS_ON = ("gradient", "update")
STATE_FORMAT = "asvd-constraint-v1"
# Most matrix elements stacked into one batched product. Stacking pays where per-matrix overhead
# dominates (small matrices, GPU launches); a matrix this large or larger is projected alone, in
# place, where the stacking copies would cost more than they save (measured on CPU: 128^2 x 16
# stacked 1.3 ms vs 2.2 ms looped; 768^2 x 24 stacked 250 ms vs 208 ms looped).
BATCH_ELEMENTS = 1 << 19


def remove_frozen(X: torch.Tensor, U: torch.Tensor, V: torch.Tensor, S: torch.Tensor | None,
                  projection: str, left: torch.Tensor | None = None,
                  right: torch.Tensor | None = None, UtX: torch.Tensor | None = None) -> torch.Tensor:
    """X <- X - (Q(X) - U S V^T) in place, for one matrix or a stack of them (fp32).

    Q is the frozen part of X: U U^T X + X V V^T - U U^T X V V^T (``two_sided``) or
    U U^T X V V^T (``paper_block``). With ``S=None`` this projects a gradient onto the allowed
    set; with S it also restores the frozen block exactly (re-anchoring). With the frozen bases
    alone it takes about 8 m n k flops. ``left``/``right`` are the complete bases of a side where
    the SVD gives one (square m x m or n x n, the frozen columns U or V first, then their
    complement C with C C^T = I - U U^T), passed where :func:`projection_flops` finds the
    complement cheaper (two_sided only).
    ``UtX``, if given, is U^T X computed elsewhere: X and U may then be a block of rows of the
    whole (FSDP's row shards), because every other product is row-local.
    """
    if projection == "two_sided" and (left is not None or right is not None):
        return _two_sided_with_complements(X, U, V, S, left, right, UtX)
    if projection == "two_sided":
        left_part = U.mT @ X if UtX is None else UtX.clone()  # U^T X: (k, n)
        right_part = X @ V  # X V: (m, k)
        left_part -= (left_part @ V) @ V.mT  # U^T X (I - V V^T): the cross term counted once
        if S is not None:
            right_part -= U * S.unsqueeze(-2)
        _add_product(X, U, left_part, alpha=-1.0)
        _add_product(X, right_part, V.mT, alpha=-1.0)
    else:
        block = (U.mT @ X if UtX is None else UtX) @ V
        if S is not None:
            block -= torch.diag_embed(S)
        _add_product(X, U @ block, V.mT, alpha=-1.0)
    return X


def _two_sided_with_complements(X, U, V, S, left, right, UtX=None):
    """(I - U U^T) X (I - V V^T) [+ U S V^T] into X, the complement sides first.

    A complement C turns its side's projector into C C^T, so X is first reduced to C^T X or X C
    (d - k wide); the other side's frozen basis then acts on that small matrix, and one product
    expands it back, the anchor U S V^T joining that product as k more inner columns. The cost
    falls as more is frozen (:func:`projection_flops`).
    """
    k = U.shape[-1]
    Z = X @ right[..., k:] if right is not None else X  # (m, n') with n' = n - k or n
    if left is not None:
        Z = left[..., k:].mT @ Z  # (m - k, n')
    else:  # right is not None, so Z is new; U^T Z = (U^T X) C_V from a shared U^T X (FSDP)
        _add_product(Z, U, U.mT @ Z if UtX is None else UtX @ right[..., k:], alpha=-1.0)
    if right is not None:  # expand: [U S, C_U Z] [V, C_V]^T, or C_U Z C_V^T
        Z = left[..., k:] @ Z if left is not None else Z  # (m, n - k)
        if S is None:
            _product_into(X, Z, right[..., k:].mT)
        else:
            _product_into(X, torch.cat([U * S.unsqueeze(-2), Z], -1), right.mT)
        return X
    _add_product(Z, Z @ V, V.mT, alpha=-1.0)  # the right side by its frozen basis
    if S is None:  # expand: [U, C_U] [S V^T; Z], or C_U Z
        _product_into(X, left[..., k:], Z)
    else:
        _product_into(X, left, torch.cat([S.unsqueeze(-1) * V.mT, Z], -2))
    return X


def projection_flops(m: int, n: int, k: int, left: bool, right: bool, anchored: bool) -> int:
    """Flops (2 per multiply-add) of one two-sided projection of an m x n matrix with k frozen,
    with the complement on the sides flagged (:func:`_two_sided_with_complements`, else the
    frozen bases alone); ``anchored`` adds U S V^T (re-anchoring)."""
    if not (left or right):
        return 8 * m * n * k
    rows, cols = (m - k if left else m), (n - k if right else n)
    flops = 2 * m * n * cols if right else 0  # X C_V
    flops += 2 * rows * m * cols if left else 4 * m * k * cols  # C_U^T Z, or Z - U U^T Z
    if not right:
        flops += 4 * rows * n * k  # Z - Z V V^T
    inner = (cols if right else rows) + (k if anchored else 0)
    if left and right:
        flops += 2 * m * rows * cols  # C_U Z
    return flops + 2 * m * n * inner  # the expanding product


def step_flops(m: int, n: int, k: int, sides: tuple[bool, bool], acts_on: str) -> int:
    """Flops of one optimizer step's projections: the re-anchoring, and with
    ``acts_on="gradient"`` the gradient's as well."""
    gradient = projection_flops(m, n, k, *sides, anchored=False) if acts_on == "gradient" else 0
    return gradient + projection_flops(m, n, k, *sides, anchored=True)


def complement_sides(m: int, n: int, k: int, projection: str, acts_on: str) -> tuple[bool, bool]:
    """Which complements (left, right) make a step's projections cheapest (:func:`step_flops`).
    A side has a complement only where its SVD basis is complete (its dimension is the rank)."""
    if projection != "two_sided":
        return False, False
    options = [(left, right) for left in (False, m <= n) for right in (False, n <= m)]
    return min(dict.fromkeys(options), key=lambda sides: step_flops(m, n, k, sides, acts_on))


def _local_rows(tensor: torch.Tensor) -> tuple[torch.Tensor, slice | None]:
    """A tensor's block held by this process and the rows of the whole it covers: the tensor
    itself (None), or this process's row shard of an FSDP2 parameter or gradient."""
    if not isinstance(tensor, DTensor):
        return tensor, None
    if tuple(tensor.placements) != (Shard(0),):
        raise ValueError(f"constraint: only row-sharded (FSDP2 Shard(0)) weights are supported, "
                         f"got placements {tensor.placements}")
    local = tensor.to_local()  # a view: in-place changes reach the parameter
    chunk = -(-tensor.shape[0] // tensor.device_mesh.size())  # torch.chunk's split
    start = min(tensor.device_mesh.get_local_rank() * chunk, tensor.shape[0])
    return local, slice(start, start + local.shape[0])


def _whole(tensor: torch.Tensor) -> torch.Tensor:
    """The full matrix of a possibly sharded tensor (a collective call for a DTensor)."""
    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def _add_product(X: torch.Tensor, A: torch.Tensor, B: torch.Tensor, alpha: float) -> None:
    """X += alpha A @ B, fused and in place, for a matrix or a stack."""
    if X.dim() == 3:
        X.baddbmm_(A, B, alpha=alpha)
    else:
        X.addmm_(A, B, alpha=alpha)


def _product_into(X: torch.Tensor, A: torch.Tensor, B: torch.Tensor) -> None:
    """X <- A @ B without a temporary of X's size, for a matrix or a stack."""
    (torch.bmm if X.dim() == 3 else torch.mm)(A, B, out=X)


def checked_triplet(name: str, triplet, weight: torch.Tensor, tolerance: float = 1e-2) -> tuple:
    """``triplet`` if it is a thin SVD ``(U, S, Vh)`` of ``weight``, else a ValueError naming the
    target: a missing entry, wrong shapes, or a product U S Vh that differs from the weight (a
    decomposition of another model or checkpoint) would otherwise freeze the wrong subspace and
    let the first step move the weight. Compared on 4 seeded random probes (O(mn), not a full
    product); ``tolerance`` (relative) leaves room for a bf16 weight's rounding."""
    if triplet is None:
        raise ValueError(f"svd: no (U, S, Vh) for target {name!r}")
    try:
        U, S, Vh = triplet
    except (TypeError, ValueError):
        raise ValueError(f"svd[{name!r}]: expected a (U, S, Vh) triplet, got "
                         f"{type(triplet).__name__}") from None
    W = _whole(weight.detach()).float()
    m, n = W.shape
    r = min(m, n)
    shapes = tuple(tuple(t.shape) for t in (U, S, Vh))
    if shapes != ((m, r), (r,), (r, n)):
        raise ValueError(f"svd[{name!r}]: shapes U {shapes[0]}, S {shapes[1]}, Vh {shapes[2]} do "
                         f"not decompose its {m} x {n} weight (expected {(m, r)}, {(r,)}, {(r, n)})")
    probes = torch.randn(n, 4, generator=torch.Generator().manual_seed(0)).to(W.device)
    exact = W @ probes
    product = U.to(W.device).float() @ (S.to(W.device).float()[:, None] * (Vh.to(W.device).float() @ probes))
    error = float(torch.linalg.matrix_norm(product - exact) /
                  torch.linalg.matrix_norm(exact).clamp_min(torch.finfo(torch.float32).tiny))
    if error > tolerance:
        raise ValueError(f"svd[{name!r}]: U S Vh differs from the target's weight by {error:.3g} "
                         "(relative): a decomposition of another model or checkpoint")
    return U, S, Vh


def _stored_bases(triplet: tuple, k: int, sides: tuple[bool, bool]) -> tuple:
    """What a target keeps of its SVD ``(U, S, Vh)``: each side's k frozen columns, or its
    complete basis where :func:`complement_sides` uses the complement, and S_h."""
    U, S, Vh = triplet
    return (U if sides[0] else U[:, :k]), S[:k], (Vh.T if sides[1] else Vh[:k].T)


def _saved_ranks(state: Mapping, shapes: Mapping[str, tuple]) -> dict[str, int]:
    """Every target's frozen k as a saved state holds it (0 where it constrained nothing)."""
    if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
        raise ValueError(f"state: not an OrthogonalSubspace state_dict ({STATE_FORMAT})")
    unknown = sorted(set(state["targets"]) - set(shapes))
    if unknown:
        raise ValueError(f"state: constrains {unknown[:5]}, which are not targets of this model")
    return {name: int(state["targets"][name]["k"]) if name in state["targets"] else 0
            for name in shapes}


def _referent(reference: weakref.ref | None):
    """What a weak reference still points to (None for none)."""
    return reference() if reference is not None else None


def _resume_tolerance(dtype: torch.dtype) -> float:
    """How far a re-anchored weight of ``dtype`` may sit from its frozen triplets: fp32
    round-off, or 4 ulp where the weight is stored in lower precision."""
    return max(1e-4, 4 * torch.finfo(dtype).eps)


@dataclass
class FrozenSubspace:
    """The frozen singular triplets of one target: U (m x k), S (k), V (n x k), fp32."""

    weight: torch.nn.Parameter
    U: torch.Tensor
    S: torch.Tensor
    V: torch.Tensor

    def project(self, matrix: torch.Tensor, projection: str) -> torch.Tensor:
        """The component of ``matrix`` that an update is allowed to have."""
        return remove_frozen(matrix.float().clone(), self.U, self.V, None, projection)

    def anchor(self) -> torch.Tensor:
        """U_h S_h V_h^T: the part of W that must never change."""
        return (self.U * self.S) @ self.V.T

    def violation(self, projection: str) -> float:
        """Relative violation of the frozen triplets by the current weight."""
        W = _whole(self.weight.detach()).float()
        norm = torch.linalg.vector_norm(self.S).clamp_min(torch.finfo(torch.float32).tiny)
        if projection == "two_sided":
            left = torch.linalg.matrix_norm(self.U.T @ W - self.S[:, None] * self.V.T)
            right = torch.linalg.matrix_norm(W @ self.V - self.U * self.S)
            return float(torch.maximum(left, right) / norm)
        block = self.U.T @ W @ self.V - torch.diag(self.S)
        return float(torch.linalg.matrix_norm(block) / norm)


@dataclass
class FrozenGroup:
    """Targets of one shape and frozen rank, their bases stacked: U (B,m,k), S (B,k), V (B,n,k).

    ``left``/``right`` (B,m,m)/(B,n,n) hold the complete bases of a side, U or V their first k
    columns (views), where the complement is cheaper.
    """

    names: list[str]
    weights: list[torch.nn.Parameter]
    U: torch.Tensor
    S: torch.Tensor
    V: torch.Tensor
    left: torch.Tensor | None = None
    right: torch.Tensor | None = None

    def _blocks(self, tensor_of: Callable[[torch.nn.Parameter], torch.Tensor | None]):
        """(members present, their local blocks, the rows the blocks cover or None)."""
        present = [i for i, weight in enumerate(self.weights) if tensor_of(weight) is not None]
        blocks = [_local_rows(tensor_of(self.weights[i])) for i in present]
        return present, [block for block, _ in blocks], blocks[0][1] if blocks else None

    @torch.no_grad()
    def partial_left(self, tensor_of: Callable[[torch.nn.Parameter], torch.Tensor | None]
                     ) -> torch.Tensor | None:
        """This process's share of U^T X over its row shards (the shares sum to U^T X), or None
        when the members are whole matrices."""
        present, tensors, rows = self._blocks(tensor_of)
        if rows is None:
            return None
        return self.U[present][:, rows].mT @ torch.stack([t.float() for t in tensors])

    @torch.no_grad()
    def apply(self, tensor_of: Callable[[torch.nn.Parameter], torch.Tensor | None],
              anchored: bool, projection: str, UtX: torch.Tensor | None = None) -> None:
        """Run :func:`remove_frozen` on ``tensor_of(weight)`` for every member, batched.

        Row-sharded members need ``UtX``, the summed :meth:`partial_left` of every process.
        """
        present, tensors, rows = self._blocks(tensor_of)
        if not present:
            return
        factors = [self.U, self.S, self.V, self.left, self.right]
        if len(present) < len(self.weights):
            factors = [None if f is None else f[present] for f in factors]
        U, S, V, left, right = factors
        if rows is not None:  # this shard's rows of U; the left complement would need its own sum
            U, left = U[:, rows], None
        if len(tensors) == 1 and tensors[0].dtype == torch.float32:
            remove_frozen(tensors[0], U[0], V[0], S[0] if anchored else None, projection,
                          None if left is None else left[0], None if right is None else right[0],
                          None if UtX is None else UtX[0])
            return
        stacked = remove_frozen(torch.stack([t.float() for t in tensors]), U, V,
                                S if anchored else None, projection, left, right, UtX)
        for tensor, result in zip(tensors, stacked.unbind(0)):
            tensor.copy_(result)

    @torch.no_grad()
    def project_member(self, index: int, gradient: torch.Tensor, projection: str) -> None:
        """Project one member's whole gradient in place (the backward hook's work)."""
        work = gradient if gradient.dtype == torch.float32 else gradient.float()
        remove_frozen(work, self.U[index], self.V[index], None, projection,
                      None if self.left is None else self.left[index],
                      None if self.right is None else self.right[index])
        if work is not gradient:
            gradient.copy_(work)


class OrthogonalSubspace:
    """Constrain full fine-tuning of ``model`` to stay orthogonal to each target's top-k subspace.

    ``svd`` is optional: a mapping of target names to precomputed ``(U, S, Vh)``, or the path of
    an SVD cache file (used only if its weight hash matches ``model``, else recomputed);
    ``importance`` maps target names to importance scores for rules that need them.
    ``acts_on`` says where the constraint acts: ``gradient`` (default; the optimizer's moments see
    only allowed directions, then re-anchoring) or ``update`` (re-anchoring alone, which projects
    the optimizer's whole update, weight decay included, as Adam-NSCL does: half the cost, and
    equally exact because W_old already satisfies the constraint: P(W_old + D) + A = W_old + P(D)).
    ``rank_rule`` defaults to ``Uniform(unfreeze=0.25)``. ``state``, a :meth:`state_dict` saved
    mid-task, resumes with the subspace and ranks frozen then (no SVD, no rank rule; its
    bases are checked against the weights, :meth:`load_state_dict`).
    Use :meth:`wrap` on the optimizer; the training loop stays unchanged.
    """

    def __init__(self, model: torch.nn.Module, targets: str | Sequence[str] = "auto",
                 rank_rule=None, projection: str = "two_sided",
                 svd: Mapping[str, tuple] | str | os.PathLike | None = None,
                 importance: Mapping[str, float] | None = None, acts_on: str = "gradient",
                 state: Mapping | None = None):
        if projection not in PROJECTIONS:
            raise ValueError(f"projection: {projection!r} not in {PROJECTIONS}")
        if acts_on not in ACTS_ON:
            raise ValueError(f"acts_on: {acts_on!r} not in {ACTS_ON}")
        if state is not None and (svd, rank_rule, importance) != (None, None, None):
            raise ValueError("state: pass it alone, without svd, rank_rule or importance "
                             "(it holds the frozen bases and ranks)")
        self.projection = projection
        self.acts_on = acts_on
        modules = find_targets(model, targets)
        self.shapes = {name: tuple(m.weight.shape) for name, m in modules.items()}
        # none where the ranks come from a saved state
        self.rank_rule = Uniform(unfreeze=0.25) if rank_rule is None and state is None else rank_rule
        self.importance = importance
        self.ranks = (_saved_ranks(state, self.shapes) if state is not None
                      else self.rank_rule.frozen_ranks(self.shapes, importance))
        if isinstance(svd, (str, os.PathLike)):
            svd = cached_svd(svd, model, modules)  # its stamp already ties it to these weights
        elif svd is not None:
            svd = {name: checked_triplet(name, svd.get(name), modules[name].weight)
                   for name in modules if self.ranks[name] > 0}
        saved = self._checked_state(state, {n: m.weight for n, m in modules.items()}) if state else None
        members: dict[tuple, list[str]] = {}
        for name, module in modules.items():
            if self.ranks[name] > 0:  # k = 0: unconstrained, exactly plain fine-tuning
                weight = module.weight
                members.setdefault((self.shapes[name], self.ranks[name], weight.device), []).append(name)
        self.groups: list[FrozenGroup] = []
        self.subspaces: dict[str, FrozenSubspace] = {}
        for ((m, n), k, device), names in members.items():
            sides = complement_sides(m, n, k, projection, acts_on)
            per_batch = max(1, BATCH_ELEMENTS // (m * n))
            for start in range(0, len(names), per_batch):
                chunk = names[start:start + per_batch]
                # each side's frozen basis, or the complete one (frozen columns first) to
                # take its complement from
                bases = [saved[name] if saved else
                         _stored_bases(svd[name] if svd is not None else thin_svd(modules[name].weight),
                                       k, sides)
                         for name in chunk]
                U_cols, S, V_cols = (torch.stack(part).to(device, torch.float32)
                                     for part in zip(*bases))
                group = FrozenGroup(
                    names=chunk,
                    weights=[modules[name].weight for name in chunk],
                    U=U_cols[..., :k],
                    S=S,
                    V=V_cols[..., :k],
                    left=U_cols if sides[0] else None,
                    right=V_cols if sides[1] else None,
                )
                self.groups.append(group)
                for i, name in enumerate(chunk):
                    self.subspaces[name] = FrozenSubspace(group.weights[i], group.U[i], group.S[i],
                                                          group.V[i])
        self._handles: list = []

    def frozen_ranks(self) -> dict[str, int]:
        return dict(self.ranks)

    def importance_report(self) -> dict:
        """What an importance-driven rule saw: granularity, importance and retention ratio per
        unit (block or target), the units it gave mrr (importance <= 0) and the targets it
        clamped to r - 1; empty for rules that use no importance."""
        if self.importance is None:
            return {}
        rule = self.rank_rule
        return {"granularity": rule.granularity, "mrr": rule.mrr, "trr": rule.trr,
                "importance": dict(self.importance),
                "retention_ratio": rule.retention_ratios(self.importance),
                "unimportant_units": rule.unimportant_units(self.importance),
                "clamped_targets": rule.clamped_targets(self.shapes, self.importance)}

    def project_gradients(self) -> None:
        """Remove the gradient components that would move the frozen triplets."""
        self._apply(lambda weight: weight.grad, anchored=False)

    def reanchor(self) -> None:
        """Restore the frozen block exactly: W <- W - Q(W) + U_h S_h V_h^T.

        W - Q(W) is the allowed component of W under either projection form, so one formula
        serves both; cached (U_h, S_h, V_h) from the SVD of W0 make Q(W0) = U_h S_h V_h^T.
        A target the user froze (``requires_grad=False``) is left bit for bit as it is.
        """
        self._apply(lambda weight: weight.data if weight.requires_grad else None, anchored=True)

    def _apply(self, tensor_of: Callable[[torch.nn.Parameter], torch.Tensor | None],
               anchored: bool) -> None:
        """Every group's projection. Row-sharded weights (FSDP2) first share their partial
        U^T X products in one all-reduce for all targets (docs/method.md §4.6); the rest is row-local."""
        products = [group.partial_left(tensor_of) for group in self.groups]
        shared = [product for product in products if product is not None]
        if shared:
            flat = torch.cat([product.flatten() for product in shared])
            dist.all_reduce(flat)
            for product, summed in zip(shared, flat.split([p.numel() for p in shared])):
                product.copy_(summed.view_as(product))
        for group, product in zip(self.groups, products):
            group.apply(tensor_of, anchored, self.projection, product)

    def rebind(self, model: torch.nn.Module) -> None:
        """Follow the model's current weight parameters (FSDP2 replaces them when it shards)."""
        modules = dict(model.named_modules())
        for group in self.groups:
            group.weights = [modules[name].weight for name in group.names]
        for name, subspace in self.subspaces.items():
            subspace.weight = modules[name].weight

    def state_dict(self) -> dict:
        """What resuming needs to freeze the same subspace once the weights have moved: per
        constrained target its frozen k, S_h and stored bases U, V (the frozen columns first;
        a side whose complement is used keeps its complete basis), and the settings they were
        built under. Tensors (shared with the constraint, as a module's state_dict shares its
        parameters), strings and ints: ``torch.save`` writes it, ``torch.load`` reads it back
        with ``weights_only=True``."""
        targets = {}
        for group in self.groups:
            for i, name in enumerate(group.names):
                targets[name] = {"k": self.ranks[name], "S": group.S[i],
                                 "U": (group.U if group.left is None else group.left)[i],
                                 "V": (group.V if group.right is None else group.right)[i]}
        return {"format": STATE_FORMAT, "projection": self.projection, "acts_on": self.acts_on,
                "targets": targets}

    @torch.no_grad()
    def load_state_dict(self, state: Mapping, tolerance: float | None = None) -> None:
        """Freeze the subspace a :meth:`state_dict` holds, checked first by what the constraint
        guarantees: the current weights still hold the saved frozen triplets (U_h^T W = S_h V_h^T
        and W V_h = U_h S_h; ``paper_block``: U_h^T W V_h = S_h) within ``tolerance``
        (relative; default 1e-4, or 4 ulp of a low-precision weight). A state of another model,
        checkpoint, rank rule or projection is a ValueError naming what differs."""
        weights = {name: weight for group in self.groups
                   for name, weight in zip(group.names, group.weights)}
        saved = self._checked_state(state, weights, tolerance)
        for group in self.groups:
            U_cols, S, V_cols = (torch.stack(part) for part in zip(*(saved[n] for n in group.names)))
            (group.U if group.left is None else group.left).copy_(U_cols)
            (group.V if group.right is None else group.right).copy_(V_cols)
            group.S.copy_(S)

    def _checked_state(self, state: Mapping, weights: Mapping[str, torch.nn.Parameter],
                       tolerance: float | None = None) -> dict[str, tuple]:
        """The saved (U, S, V) per constrained target of ``state``, after checking that it was
        built under these settings, for these targets and ranks, and that ``weights`` hold it."""
        _saved_ranks(state, self.shapes)  # its format and target names
        for key in ("projection", "acts_on"):
            if state[key] != getattr(self, key):
                raise ValueError(f"state: saved with {key}={state[key]!r}, this constraint has "
                                 f"{getattr(self, key)!r}")
        saved = state["targets"]
        constrained = {name for name, k in self.ranks.items() if k > 0}
        if set(saved) != constrained:
            differ = sorted(set(saved) ^ constrained)
            raise ValueError(f"state: its constrained targets differ from this model's: {differ[:5]}")
        bases = {}
        for name in sorted(constrained):
            k, (m, n) = self.ranks[name], self.shapes[name]
            entry = saved[name]
            if entry["k"] != k:
                raise ValueError(f"state[{name!r}]: froze k={entry['k']}, the rank rule gives {k}")
            left, right = complement_sides(m, n, k, self.projection, self.acts_on)
            expected = ((m, m if left else k), (k,), (n, n if right else k))
            U, S, V = (entry[part].detach() for part in ("U", "S", "V"))
            if tuple(tuple(t.shape) for t in (U, S, V)) != expected:
                raise ValueError(f"state[{name!r}]: bases of shapes {tuple(U.shape)}, {tuple(S.shape)}, "
                                 f"{tuple(V.shape)}, expected {expected}")
            weight = weights[name]
            frozen = FrozenSubspace(weight, *(t.to(weight.device, torch.float32)
                                              for t in (U[:, :k], S, V[:, :k])))
            bound = tolerance if tolerance is not None else _resume_tolerance(weight.dtype)
            violation = frozen.violation(self.projection)
            if not violation <= bound:
                raise ValueError(f"state[{name!r}]: the weight no longer holds the saved frozen "
                                 f"triplets (relative violation {violation:.3g} > {bound:.3g}): "
                                 "a state of another model or checkpoint")
            bases[name] = (U, S, V)
        return bases

    def max_violation(self) -> float:
        return max(self.violations().values(), default=0.0)

    def violations(self) -> dict[str, float]:
        return {name: sub.violation(self.projection) for name, sub in self.subspaces.items()}

    def wrap(self, optimizer: torch.optim.Optimizer,
             project_gradients: bool = True) -> torch.optim.Optimizer:
        """Project each target's gradient as backward produces it (``acts_on="gradient"``) and
        re-anchor after every ``optimizer.step()``; the training loop stays unchanged.

        The projection runs in a hook on each weight after its gradient is accumulated, so
        whatever a loop does between backward and the step - clipping (the Hugging Face
        Trainer's ``max_grad_norm``), logging the norm, unscaling - sees the allowed gradient
        only; clipping the raw gradient instead would shrink every step by the share of the norm
        that lay in frozen directions. Being linear, it commutes with gradient accumulation and
        with DDP's all-reduce (the hook runs before DDP takes the gradient). It acts on every
        backward until :meth:`remove`, so a gradient probe run meanwhile sees projected
        gradients too. A gradient no hook projected - set without backward (FSDP2's sharded
        ones) or replaced after it - is projected, batched, just before the step.
        ``project_gradients=False`` leaves the projection to the loop, which then calls
        :meth:`project_gradients` between backward and clipping (the pipeline's own loop: one
        batched product per group instead of one per target and micro-batch).
        """
        projected: dict[int, weakref.ref] = {}  # weight -> the gradient its hook projected
        if self.acts_on == "gradient" and project_gradients:
            for group in self.groups:
                for index, weight in enumerate(group.weights):
                    if weight.requires_grad and not isinstance(weight, DTensor):
                        self._handles.append(weight.register_post_accumulate_grad_hook(
                            partial(self._project_in_backward, group, index, projected)))
            self._handles.append(optimizer.register_step_pre_hook(lambda *_: self._apply(
                lambda weight: None if _referent(projected.get(id(weight))) is weight.grad else weight.grad,
                anchored=False)))

        def after_step(*_):
            self.reanchor()
            projected.clear()

        self._handles.append(optimizer.register_step_post_hook(after_step))
        return optimizer

    def _project_in_backward(self, group: FrozenGroup, index: int, projected: dict[int, weakref.ref],
                             weight: torch.nn.Parameter) -> None:
        if weight.grad is not None:
            group.project_member(index, weight.grad, self.projection)
            projected[id(weight)] = weakref.ref(weight.grad)  # not kept alive past zero_grad

    def remove(self) -> None:
        """Detach from the optimizer and the weights (which keep whatever they were trained to)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
