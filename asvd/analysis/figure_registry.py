"""Every figure a study draws, in one registry: name -> what it reads, how it is drawn, what its
caption says and which public targets draw it.

Adding a figure is a plot function in :mod:`asvd.analysis.figures` and one entry in
``FIGURES``; the workflow's figure rules (one per public target, defined once) ask this module
for a figure's inputs (:func:`figure_inputs`), caption (:func:`caption`) and the names a target
makes (:func:`figure_outputs`). Holding the plot functions themselves, it imports matplotlib
and pandas when the Snakefile is read (0.8 s here, against 0.06 s for a registry of names): the
price of declaring each figure in one place. An input function gets the study
(:class:`asvd.pipeline.study.Study`) and the methods a figure shows, and returns the files
shaped as its plot function takes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from asvd.analysis import figures
from asvd.pipeline.layout import FIGURE_FORMATS, TRAIN_LOG


# ---------------------------------------------------------------- what a figure reads
def matrices(study, methods: Sequence[str], references: bool) -> dict:
    """Each method's accuracy matrix per order (first seed), published runs' as methods."""
    data = {method: study.matrices(method) for method in methods}
    return {**data, **(study.reference_matrices() if references else {})}


def method_matrices(study, methods: Sequence[str], references: bool) -> dict:
    """One method's accuracy matrix per order (first seed), by order."""
    (method,) = methods
    return study.matrices(method)


def summaries(study, methods: Sequence[str], references: bool) -> list[str]:
    """Every run's summary (all orders and seeds), published runs' after them."""
    return study.run_summaries(methods) + (study.reference_summaries() if references else [])


def train_logs(study, methods: Sequence[str], references: bool) -> dict:
    """The representative run's training logs, steps 1..T."""
    return {method: study.representative_steps(method, TRAIN_LOG, with_base=False)
            for method in methods}


def train_logs_per_order(study, methods: Sequence[str], references: bool) -> dict:
    """Each method's training logs, steps 1..T, per order (first seed), labelled ``order N``."""
    return {method: {label: study.step_paths(run, TRAIN_LOG)
                     for label, run in study.first_seed_runs(method).items()}
            for method in methods}


def svd_caches(study, methods: Sequence[str], references: bool) -> dict:
    """The representative run's SVD caches: the base model's, then after each step."""
    return {method: study.representative_steps(method, study.svd_cache(method), with_base=True)
            for method in methods}


def runs(study, methods: Sequence[str], references: bool) -> dict:
    """Task t froze directions of checkpoint t-1: caches 0..T-1 beside logs 1..T."""
    return {method: {"svd_caches": svd_caches(study, [method], False)[method][:-1],
                     "train_logs": train_logs(study, [method], False)[method]}
            for method in methods}


# ---------------------------------------------------------------- which methods it shows
def every(study, method: str) -> bool:
    return True


def constrained(study, method: str) -> bool:
    return study.methods[method].constrained


def measures_importance(study, method: str) -> bool:
    return study.methods[method].uses_importance


def measures_premise(study, method: str) -> bool:
    return study.measures_premise(method)


# ---------------------------------------------------------------- extra plot arguments
def no_arguments(name: str, options: Mapping) -> tuple:
    return ()


def spectra_targets(name: str, options: Mapping) -> tuple:
    """How many targets the spectra show (config ``figures.spectra_targets``)."""
    return (options["spectra_targets"],)


@dataclass(frozen=True)
class FigureSpec:
    """One figure.

    ``plot`` draws it as ``plot(data, *arguments(name, options), out_png, out_pdf)`` from what
    ``inputs`` returns; ``caption`` is its text in the report. ``shows``: which methods of a
    target it draws (one none qualifies for is not drawn). ``scopes``: the public targets that
    draw it (``study``: all_figures, ``comparison``: all_baselines over every method,
    ``ablation``: all_ablations, ``tradeoff``: all_tradeoff). ``references``: published runs
    join it; ``needs_general``: drawn only where the benchmark has a general-ability set.
    """

    plot: Callable[..., None]
    inputs: Callable[[Any, Sequence[str], bool], Any]
    caption: str
    shows: Callable[[Any, str], bool] = every
    scopes: tuple[str, ...] = ("study",)
    references: bool = False
    needs_general: bool = False
    arguments: Callable[[str, Mapping], tuple] = no_arguments


FIGURES: dict[str, FigureSpec] = {
    "task_curves": FigureSpec(
        figures.plot_task_curves, matrices,
        ('Accuracy of every task after each training step; rows are task orders, columns methods. '
            'A star marks the step that trains the task; a falling line after it is forgetting.'),
        scopes=("study", "comparison"), references=True),
    "accuracy_matrices": FigureSpec(
        figures.plot_method_matrices, matrices,
        ("Every method's accuracy matrices on one page (rows: methods, columns: task orders). Row "
            'i of a matrix is the model after training step i, column j the task; below the diagonal '
            'is retention, on it learning.'),
        scopes=("study", "comparison"), references=True),
    "training_curves": FigureSpec(
        figures.plot_training_curves, train_logs_per_order,
        ('Training loss at every optimizer step over the whole sequence (first seed; rows are task '
            'orders, columns methods), each task in its colour, light for each step and dark for a '
            'running mean, dotted lines where the next task begins; log scale. A loss that stays high'
            ' is a task the method did not learn; a jump at a boundary is the new task starting.'),
        scopes=("study", "comparison")),
    "aa_bwt": FigureSpec(
        figures.plot_aa_bwt, summaries,
        ('Average accuracy (AA) and backward transfer (BWT) per method, mean and standard '
            'deviation over all runs (orders and seeds). Where the tasks list their options, hatched '
            'bars beside them score each answer by option ranking (the listed option the model finds '
            'most likely): a ranked AA well above the exact-match AA means the model still knows '
            "earlier tasks but answers them in another task's words."),
        scopes=("study", "comparison", "ablation"), references=True),
    "aa_per_order": FigureSpec(
        figures.plot_aa_per_order, summaries,
        ('AA per method, one bar per task order; error bars are the standard deviation over seeds.'),
        scopes=("study", "comparison"), references=True),
    "learnability_retention": FigureSpec(
        figures.plot_learnability_retention, summaries,
        ('One point per method: how well it learns each new task (mean of R[t][t]) against how '
            'much it forgets (BWT). Up and to the right is better.'),
        scopes=("study", "comparison", "ablation", "tradeoff"),
        references=True),
    # published logs do not measure general ability
    "general_retention": FigureSpec(
        figures.plot_general_retention, summaries,
        ('Accuracy on the general-ability mixture from the base model through each training step, '
            'mean over runs.'),
        scopes=("study", "comparison"),
        needs_general=True),
    "singular_spectra": FigureSpec(
        figures.plot_singular_spectra, svd_caches,
        ('Singular values (log scale) of evenly spaced target matrices in the base model and after'
            ' each task; rows are methods, columns targets. A constrained method keeps the top of '
            'each spectrum in place.'),
        arguments=spectra_targets),
    "frozen_ranks": FigureSpec(
        figures.plot_frozen_ranks, train_logs,
        ("Fraction k/r of each target matrix's rank kept frozen at every step (rows: targets, "
            'columns: task steps), one panel per constrained method.'),
        shows=constrained),
    "subspace_overlap": FigureSpec(
        figures.plot_subspace_overlap, runs,
        ("For every target, the share of task t's frozen singular subspace that task t+1 keeps "
            'frozen (||U_t^T U_t+1||^2 / k_t). Below 1, the next task releases directions that '
            'protected an earlier one.'),
        shows=constrained),
    "importance_ratios": FigureSpec(
        figures.plot_importance_ratios, train_logs,
        ('What the adaptive rank rule measured before each task: the importance I of every unit (a'
            " transformer block's input/output cosine, or a target's under granularity matrix) on the"
            " previous task's samples, and the retention ratio r = mrr + I/mean(I)(trr - mrr) that "
            'sets the frozen fraction of its targets.'),
        shows=measures_importance),
    "premise": FigureSpec(
        figures.plot_premise, summaries,
        ("The method's premise, measured: at each task step t (x axis), the share of a task's "
            'input energy that each target receives in its frozen right subspace V_h (mean over '
            'targets; first column all targets, then per block; rows are methods, mean and standard '
            "deviation over runs). An update leaves a target's output unchanged on inputs inside V_h,"
            ' so earlier tasks (coloured, by how many steps back they were trained) are protected in '
            'as much as their line is near 1, while the new task (black, dashed) learns through what '
            'its inputs put outside. The premise holds where the earlier lines stand clearly above '
            "the new one; where they coincide, the new task's update reaches earlier tasks' inputs as"
            ' much as its own. An unconstrained method is measured against the subspace the reference'
            " method's rule would have frozen."),
        shows=measures_premise,
        scopes=("study", "comparison", "ablation", "tradeoff")),
    # only over the trade-off's variants: the study runs each method at one learning rate
    "tradeoff": FigureSpec(
        figures.plot_tradeoff, summaries,
        ('The learning-retention trade-off: each method at its tuned learning rate (x1) and at the'
            " trade-off's multiples of it, one line per method and one marker per multiple, mean and "
            'standard deviation over orders and seeds. Left, x: backward transfer (BWT, how much of '
            'earlier tasks is kept), y: mean accuracy on a task right after training it. Right: '
            "forgetting per point learned, -BWT / (learning - the base model's accuracy), at each "
            'multiple. A method buys retention with learning where its line runs down to the right; '
            'it beats another only where it lies above and to the right of it.'),
        scopes=("tradeoff",)),
}
# One heatmap per method of the study: ``accuracy_matrix_<method>``.
PER_METHOD_PREFIX = "accuracy_matrix_"
PER_METHOD = FigureSpec(
    figures.plot_accuracy_matrices, method_matrices,
    "Accuracy matrix R of method **{method}**, one per task order: row i is the model after "
    "training step i, column j task j (scores in %).",
    arguments=lambda name, options: (name.removeprefix(PER_METHOD_PREFIX),))


def figure_spec(name: str) -> FigureSpec:
    """The spec of figure ``name`` (a registry entry or a per-method heatmap)."""
    if name.startswith(PER_METHOD_PREFIX):
        return PER_METHOD
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r} (known: {sorted(FIGURES)} and "
                         f"{PER_METHOD_PREFIX}<method>)")
    return FIGURES[name]


def shown_methods(study, scope: str, name: str) -> list[str]:
    """The methods of target ``scope`` that figure ``name`` draws."""
    if name.startswith(PER_METHOD_PREFIX):
        return [name.removeprefix(PER_METHOD_PREFIX)]
    spec = figure_spec(name)
    return [method for method in study.scopes[scope].methods if spec.shows(study, method)]


def figure_names(study, scope: str) -> list[str]:
    """The figures target ``scope`` draws: the registry's that have methods to show, and in
    the study's own target a heatmap per method."""
    names = [name for name, spec in FIGURES.items()
             if scope in spec.scopes and (study.has_general or not spec.needs_general)
             and shown_methods(study, scope, name)]
    per_method = [f"{PER_METHOD_PREFIX}{method}" for method in study.scopes[scope].methods]
    return names + (per_method if scope == "study" else [])


def figure_outputs(study, scope: str) -> list[str]:
    folder = study.scopes[scope].folder
    return [study.layout.figure(folder, name, ext)
            for name in figure_names(study, scope) for ext in FIGURE_FORMATS]


def figure_inputs(study, scope: str, name: str) -> Any:
    """The files figure ``name`` of target ``scope`` draws, shaped as its plot function takes
    them (dicts keep the labels it needs)."""
    spec = figure_spec(name)
    return spec.inputs(study, shown_methods(study, scope, name), spec.references)


def flat_files(inputs: Any) -> list[str]:
    """Every path in an input structure: Snakemake needs a flat list."""
    if isinstance(inputs, Mapping):
        return [path for value in inputs.values() for path in flat_files(value)]
    if isinstance(inputs, (list, tuple)):
        return [path for value in inputs for path in flat_files(value)]
    return [inputs]


def caption(name: str) -> str:
    """Figure ``name``'s caption in the report."""
    return figure_spec(name).caption.format(method=name.removeprefix(PER_METHOD_PREFIX))


def draw(name: str, inputs: Any, out_png, out_pdf, options: Mapping) -> None:
    """Draw figure ``name`` from :func:`figure_inputs`' structure (``options``: config
    ``figures``)."""
    spec = figure_spec(name)
    spec.plot(inputs, *spec.arguments(name, options), out_png, out_pdf)
