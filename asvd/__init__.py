"""asvd: continual learning of language models with Adaptive SVD / OSFT, as a reproducible pipeline.

The library: :class:`OrthogonalSubspace` (the constraint), :mod:`ranks` (the rank rules),
:func:`find_targets` (which matrices a method constrains) and :func:`importance_scores` (what
the paper's adaptive rule measures on the previous task's samples). Heavy imports (torch,
transformers) happen on first use, so ``python -m asvd metrics`` starts fast; every subpackage
(``asvd.method``, ``asvd.train``, ...) is reachable as an attribute the same way.
"""

import importlib

__all__ = ["OrthogonalSubspace", "find_targets", "importance_scores", "ranks"]
__version__ = "0.1.0"

_EXPORTS = {
    "OrthogonalSubspace": "asvd.method.constraint",
    "find_targets": "asvd.method.targets",
    "importance_scores": "asvd.method.importance",
}
_SUBPACKAGES = {"analysis", "baselines", "cost", "data", "evaluation", "method", "pipeline", "train"}


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name == "ranks":
        return importlib.import_module("asvd.method.ranks")
    if name in _SUBPACKAGES:
        return importlib.import_module(f"asvd.{name}")
    raise AttributeError(f"module 'asvd' has no attribute {name!r}")
