"""The figures a study draws, in one registry: name -> plot function, the data it reads, the
methods it shows and where else it is drawn.

The workflow reads it to know which figures to make and which files each one needs; the drawing
code reads it to know which function draws a name. Adding a figure is a plot function in
:mod:`asvd.analysis.figures` and an entry here. No plotting library is imported, so the
Snakefile can read this while it is parsed.
"""

from __future__ import annotations

from dataclasses import dataclass

DATA = ("matrices", "summaries", "train_logs", "runs", "svd_caches")
METHODS = ("all", "constrained", "importance", "premise")


@dataclass(frozen=True)
class FigureSpec:
    """One figure.

    ``plot``: the function of :mod:`asvd.analysis.figures` that draws it, called as
    ``plot(data, [extra,] out_png, out_pdf)``. ``data``: what it reads, per method --
    accuracy matrices, run summaries, training logs, the SVD caches and logs of each step
    (``runs``) or the SVD caches alone. ``methods``: which of the study's methods it shows
    (every one, the constrained ones, those whose rank rule measures importance, those whose
    runs measure the premise); a figure none of them qualifies for is not drawn. ``comparison``: also drawn over every method
    (``all_baselines``); ``ablation``: also over the retention ablation's variants;
    ``study``: drawn for the study itself (``all_figures``); ``tradeoff``: also over the
    learning-rate variants of the trade-off (``all_tradeoff``);
    ``references``: published reference runs join it; ``needs_general``: only when the benchmark
    has a general-ability set. ``extra``: a second argument the function takes (``method``
    for a per-method figure, ``spectra_targets`` for the spectra).
    """

    plot: str
    data: str
    methods: str = "all"
    comparison: bool = False
    ablation: bool = False
    tradeoff: bool = False
    study: bool = True
    references: bool = False
    needs_general: bool = False
    extra: str | None = None

    def __post_init__(self):
        if self.data not in DATA or self.methods not in METHODS:
            raise ValueError(f"figure {self.plot}: data {self.data!r} / methods {self.methods!r}")


FIGURES: dict[str, FigureSpec] = {
    "task_curves": FigureSpec("plot_task_curves", "matrices", comparison=True, references=True),
    "accuracy_matrices": FigureSpec("plot_method_matrices", "matrices", comparison=True,
                                    references=True),
    "aa_bwt": FigureSpec("plot_aa_bwt", "summaries", comparison=True, ablation=True,
                         references=True),
    "aa_per_order": FigureSpec("plot_aa_per_order", "summaries", comparison=True, references=True),
    "learnability_retention": FigureSpec("plot_learnability_retention", "summaries",
                                         comparison=True, ablation=True, tradeoff=True,
                                         references=True),
    # published logs do not measure general ability
    "general_retention": FigureSpec("plot_general_retention", "summaries", comparison=True,
                                    needs_general=True),
    "singular_spectra": FigureSpec("plot_singular_spectra", "svd_caches", extra="spectra_targets"),
    "frozen_ranks": FigureSpec("plot_frozen_ranks", "train_logs", methods="constrained"),
    "subspace_overlap": FigureSpec("plot_subspace_overlap", "runs", methods="constrained"),
    "importance_ratios": FigureSpec("plot_importance_ratios", "train_logs", methods="importance"),
    "premise": FigureSpec("plot_premise", "summaries", methods="premise", comparison=True,
                          ablation=True, tradeoff=True),
    # only over the trade-off's variants: the study runs each method at one learning rate
    "tradeoff": FigureSpec("plot_tradeoff", "summaries", tradeoff=True, study=False),
}
# One heatmap per method of the study: ``accuracy_matrix_<method>``.
PER_METHOD_PREFIX = "accuracy_matrix_"
PER_METHOD = FigureSpec("plot_accuracy_matrices", "matrices", extra="method")


def figure_spec(name: str) -> FigureSpec:
    """The spec of figure ``name`` (a registry entry or a per-method heatmap)."""
    if name.startswith(PER_METHOD_PREFIX):
        return PER_METHOD
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r} (known: {sorted(FIGURES)} and "
                         f"{PER_METHOD_PREFIX}<method>)")
    return FIGURES[name]
