"""asvd: continual learning of language models with Adaptive SVD / OSFT, as a reproducible pipeline.

The library entry point is :class:`OrthogonalSubspace`; rank rules live in :mod:`asvd.method.ranks`.
Heavy imports (torch, transformers) happen on first use, so ``python -m asvd metrics`` starts fast.
"""

import importlib

__all__ = ["OrthogonalSubspace", "ranks"]
__version__ = "0.1.0"


def __getattr__(name):
    if name == "OrthogonalSubspace":
        return importlib.import_module("asvd.method.constraint").OrthogonalSubspace
    if name == "ranks":
        return importlib.import_module("asvd.method.ranks")
    raise AttributeError(f"module 'asvd' has no attribute {name!r}")
