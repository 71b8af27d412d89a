"""asvd.analysis.figure_registry: every figure declared once (inputs, plot, caption, targets);
a toy figure added as docs/architecture.md shows is drawn through the public path."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.figure import Figure
from test_tables_figures import write_summary

from asvd.analysis import figure_registry, figures
from asvd.analysis.figure_registry import (
    FIGURES,
    FigureSpec,
    caption,
    draw,
    figure_inputs,
    figure_names,
    figure_outputs,
    flat_files,
    summaries,
)
from asvd.analysis.tables import load_runs
from asvd.pipeline.study import Study
from asvd.plotting import save_figure, styled
from conftest import DEFAULT_CONFIG, REPO, load_yaml


def study_of(**overrides) -> Study:
    config = load_yaml(DEFAULT_CONFIG)
    config.update(overrides)
    return Study(config, REPO)


@styled
def plot_final_accuracy(summary_jsons, out_png, out_pdf) -> None:
    """docs/architecture.md's worked example, as written there."""
    runs = load_runs(summary_jsons)
    fig = Figure(figsize=(5, 3), layout="constrained")
    runs.groupby("method")["aa"].mean().plot.bar(ax=fig.subplots())
    save_figure(fig, out_png, out_pdf)


def test_every_entry_is_complete():
    scopes = set(study_of().scopes)
    for name, spec in FIGURES.items():
        assert spec.plot.__module__ == figures.__name__, name
        assert len(spec.caption) > 40 and set(spec.scopes) <= scopes, name
        assert callable(spec.inputs) and callable(spec.shows), name


def test_a_toy_figure_is_drawn_through_the_public_path(tmp_path, monkeypatch):
    monkeypatch.setitem(FIGURES, "final_accuracy", FigureSpec(
        plot_final_accuracy, summaries, "Mean accuracy after the last step, per method.",
        scopes=("study", "comparison")))
    study = study_of(run={"methods": ["seqft", "asvd"], "orders": [1], "seeds": [0, 1]})
    assert "final_accuracy" in figure_names(study, "study")
    assert "results/default/baselines/figures/final_accuracy.pdf" in figure_outputs(study, "comparison")
    inputs = figure_inputs(study, "study", "final_accuracy")
    assert inputs == study.run_summaries()  # the study's runs, all seeds
    monkeypatch.chdir(tmp_path)
    for i, path in enumerate(inputs):
        Path(path).parent.mkdir(parents=True)
        write_summary(Path(path), path.split("/")[2], "order1", i, aa=40.0 + i)
    draw("final_accuracy", inputs, tmp_path / "f.png", tmp_path / "f.pdf", {})
    assert (tmp_path / "f.png").stat().st_size > 5000 and (tmp_path / "f.pdf").exists()
    assert caption("final_accuracy").startswith("Mean accuracy")


def test_a_figure_shows_only_qualifying_methods_and_needs_one():
    study = study_of(run={"methods": ["seqft", "asvd"], "orders": [1, 2], "seeds": [0]})
    assert list(figure_inputs(study, "study", "frozen_ranks")) == ["asvd"]  # constrained only
    unconstrained = study_of(run={"methods": ["seqft"], "orders": [1], "seeds": [0]})
    names = figure_names(unconstrained, "study")
    assert "frozen_ranks" not in names and "subspace_overlap" not in names
    assert "tradeoff" not in names and "tradeoff" in figure_names(study, "tradeoff")
    assert "accuracy_matrix_seqft" in names
    assert "accuracy_matrix_seqft" not in figure_names(study, "comparison")


def test_inputs_are_shaped_as_the_plot_functions_take_them():
    study = study_of(run={"methods": ["asvd"], "orders": [1, 2], "seeds": [0, 1]})
    matrices = figure_inputs(study, "study", "accuracy_matrix_asvd")
    assert matrices == {"order 1": "results/default/asvd/order1/seed0/accuracy_matrix.csv",
                        "order 2": "results/default/asvd/order2/seed0/accuracy_matrix.csv"}
    assert figure_inputs(study, "study", "accuracy_matrices") == {"asvd": matrices}
    runs = figure_inputs(study, "study", "subspace_overlap")["asvd"]
    assert len(runs["svd_caches"]) == len(runs["train_logs"]) == 4
    assert runs["svd_caches"][0] == f"results/default/base/{study.svd_cache('asvd')}"
    assert len(flat_files(runs)) == 8
    spectra = figure_inputs(study, "study", "singular_spectra")["asvd"]
    assert len(spectra) == 5  # the base, then each step


def test_per_method_caption_names_its_method_and_unknown_names_are_refused():
    assert "**asvd**" in caption("accuracy_matrix_asvd")
    with pytest.raises(ValueError, match="unknown figure 'nope'"):
        figure_registry.figure_spec("nope")
