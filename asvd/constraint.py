"""The orthogonal-subspace constraint with W itself as the trainable parameter (METHOD.md s4).

For each target weight W = U S V^T the top-k triplets (U_h, S_h, V_h) are frozen. After backward
the gradient is projected away from them; after every optimizer step the frozen block is
re-anchored exactly, which also cancels weight decay and Adam's elementwise leakage. Only U_h,
S_h, V_h are stored: no factorised copy of W, no extra optimizer state.
"""

from __future__ import annotations

from dataclasses import dataclass
import os
from typing import Mapping, Sequence

import torch

from asvd.models import find_targets
from asvd.ranks import Uniform
from asvd.svd import cached_svd, thin_svd

PROJECTIONS = ("two_sided", "paper_block")
PROJECT_POINTS = ("gradient", "update")


@dataclass
class FrozenSubspace:
    """The frozen singular triplets of one target: U (m x k), S (k), V (n x k), fp32."""

    weight: torch.nn.Parameter
    U: torch.Tensor
    S: torch.Tensor
    V: torch.Tensor

    def project(self, matrix: torch.Tensor, projection: str) -> torch.Tensor:
        """The component of ``matrix`` that an update is allowed to have."""
        U, V = self.U, self.V
        if projection == "two_sided":
            matrix = matrix - U @ (U.T @ matrix)
            return matrix - (matrix @ V) @ V.T
        return matrix - U @ ((U.T @ matrix) @ V) @ V.T

    def anchor(self) -> torch.Tensor:
        """U_h S_h V_h^T: the part of W that must never change."""
        return (self.U * self.S) @ self.V.T

    def violation(self, projection: str) -> float:
        """Relative violation of the frozen triplets by the current weight."""
        W = self.weight.detach().float()
        norm = torch.linalg.vector_norm(self.S).clamp_min(torch.finfo(torch.float32).tiny)
        if projection == "two_sided":
            left = torch.linalg.matrix_norm(self.U.T @ W - self.S[:, None] * self.V.T)
            right = torch.linalg.matrix_norm(W @ self.V - self.U * self.S)
            return float(torch.maximum(left, right) / norm)
        block = self.U.T @ W @ self.V - torch.diag(self.S)
        return float(torch.linalg.matrix_norm(block) / norm)


class OrthogonalSubspace:
    """Constrain full fine-tuning of ``model`` to stay orthogonal to each target's top-k subspace.

    ``svd`` is optional: a mapping of target names to precomputed ``(U, S, Vh)``, or the path of
    an SVD cache file (used only if its weight hash matches ``model``, else recomputed);
    ``importance`` maps target names to importance scores for rules that need them.
    ``project`` says where the constraint acts: ``gradient`` (default; the optimizer's moments see
    only allowed directions, then re-anchoring) or ``update`` (re-anchoring alone, which projects
    the optimizer's whole update, weight decay included, as Adam-NSCL does: half the cost, and
    equally exact because W_old already satisfies the constraint: P(W_old + D) + A = W_old + P(D)).
    Use :meth:`wrap` on the optimizer; the training loop stays unchanged.
    """

    def __init__(self, model: torch.nn.Module, targets: str | Sequence[str] = "auto",
                 rank_rule=Uniform(unfreeze=0.25), projection: str = "two_sided",
                 svd: Mapping[str, tuple] | str | os.PathLike | None = None,
                 importance: Mapping[str, float] | None = None, project: str = "gradient"):
        if projection not in PROJECTIONS:
            raise ValueError(f"projection: {projection!r} not in {PROJECTIONS}")
        if project not in PROJECT_POINTS:
            raise ValueError(f"project: {project!r} not in {PROJECT_POINTS}")
        self.projection = projection
        self.project = project
        modules = find_targets(model, targets)
        self.shapes = {name: tuple(m.weight.shape) for name, m in modules.items()}
        self.ranks = rank_rule.frozen_ranks(self.shapes, importance)
        if isinstance(svd, (str, os.PathLike)):
            svd = cached_svd(svd, model, modules)
        self.subspaces: dict[str, FrozenSubspace] = {}
        for name, module in modules.items():
            k = self.ranks[name]
            if k == 0:
                continue  # unconstrained: behaves exactly like plain fine-tuning
            U, S, Vh = svd[name] if svd is not None else thin_svd(module.weight)
            device = module.weight.device
            self.subspaces[name] = FrozenSubspace(
                weight=module.weight,
                U=U[:, :k].to(device, torch.float32).contiguous(),
                S=S[:k].to(device, torch.float32).contiguous(),
                V=Vh[:k].T.to(device, torch.float32).contiguous(),
            )
        self._handles: list = []

    def frozen_ranks(self) -> dict[str, int]:
        return dict(self.ranks)

    @torch.no_grad()
    def project_gradients(self) -> None:
        """Remove the gradient components that would move the frozen triplets."""
        for sub in self.subspaces.values():
            grad = sub.weight.grad
            if grad is not None:
                grad.copy_(sub.project(grad.float(), self.projection))

    @torch.no_grad()
    def reanchor(self) -> None:
        """Restore the frozen block exactly: W <- W - Q(W) + U_h S_h V_h^T.

        W - Q(W) is the allowed component of W under either projection form, so one formula
        serves both; cached (U_h, S_h, V_h) from the SVD of W0 make Q(W0) = U_h S_h V_h^T.
        """
        for sub in self.subspaces.values():
            W = sub.weight.float()
            sub.weight.copy_(sub.project(W, self.projection) + sub.anchor())

    def max_violation(self) -> float:
        return max((sub.violation(self.projection) for sub in self.subspaces.values()), default=0.0)

    def violations(self) -> dict[str, float]:
        return {name: sub.violation(self.projection) for name, sub in self.subspaces.items()}

    def wrap(self, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        """Project before (``project="gradient"``) and re-anchor after every ``optimizer.step()``."""
        if self.project == "gradient":
            self._handles.append(optimizer.register_step_pre_hook(lambda *_: self.project_gradients()))
        self._handles.append(optimizer.register_step_post_hook(lambda *_: self.reanchor()))
        return optimizer

    def remove(self) -> None:
        """Detach from the optimizer (the weights keep whatever they were trained to)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
