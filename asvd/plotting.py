"""The house style every figure shares (the results' and the cost benchmark's): fonts, output
resolution, one colour per name, atomic PNG + PDF writes. Figures are built on
:class:`matplotlib.figure.Figure` directly (rendered by the Agg backend) rather than through
``pyplot``, so nothing here touches global backend state or leaks open figures.
"""

from __future__ import annotations

import functools
import os
from typing import Callable, Sequence, TypeVar

import matplotlib
from matplotlib.figure import Figure

from asvd.io import atomic_path

PathLike = str | os.PathLike
F = TypeVar("F", bound=Callable[..., None])

STYLE = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "figure.titlesize": 13,
    "savefig.dpi": 150,  # no bbox "tight": constrained layout already fits every label
    "pdf.fonttype": 42,  # embed TrueType so PDF text stays selectable and editable
}


def styled(plot: F) -> F:
    """Apply the house style to everything a plot function draws and saves."""

    @functools.wraps(plot)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return plot(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def save_figure(fig: Figure, out_png: PathLike, out_pdf: PathLike) -> None:
    """Write ``fig`` as PNG and PDF; the format is explicit because temp names end in .tmp."""
    for path, fmt in ((out_png, "png"), (out_pdf, "pdf")):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt)


def color_map(names: Sequence[str]) -> dict[str, tuple]:
    """One fixed colour per name, so a task has the same colour in every panel."""
    cmap = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}
