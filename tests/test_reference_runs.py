"""Published runs beside this study's (config ``reference_runs``): summaries, tables, figures."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from asvd.analysis.figures import (
    plot_aa_bwt,
    plot_learnability_retention,
    plot_method_matrices,
    plot_task_curves,
)
from asvd.analysis.metrics import read_accuracy_csv, write_accuracy_csv
from asvd.analysis.reference_runs import collect_reference_run, load_reference_matrix, source_files
from asvd.analysis.tables import write_summary_tables
from conftest import shared_dir, write_olora_run

PUBLISHED = ["dbpedia", "amazon", "yahoo"]
# O-LoRA-style log: step k scores the k tasks seen so far. By hand:
#   AA = (60 + 70 + 90) / 3 = 73.33; LA = (98 + 80 + 90) / 3 = 89.33
#   BWT = ((60 - 98) + (70 - 80)) / 2 = -24; forgetting = ((98 - 60) + (80 - 70)) / 2 = 24
ROWS = [[98.0], [90.0, 80.0], [60.0, 70.0, 90.0]]


def test_an_olora_run_directory_becomes_a_matrix_and_a_summary(tmp_path):
    run = write_olora_run(tmp_path / "run", ROWS, PUBLISHED)
    matrix_csv, summary_json = tmp_path / "out" / "R.csv", tmp_path / "out" / "summary.json"
    summary = collect_reference_run(run, "olora_published", 1, matrix_csv, summary_json)
    assert json.loads(summary_json.read_text()) == summary
    assert summary["method"] == "olora_published" and summary["order"] == 1 and summary["seed"] is None
    assert summary["aa"] == pytest.approx(220 / 3) and summary["learning_accuracy"] == pytest.approx(268 / 3)
    assert summary["bwt"] == pytest.approx(-24.0) and summary["forgetting"] == pytest.approx(24.0)
    assert summary["fwt"] is None and any(note.startswith("fwt is null") for note in summary["notes"])
    matrix = read_accuracy_csv(matrix_csv, partial=True)
    assert list(matrix.index) == PUBLISHED and math.isnan(matrix.loc["dbpedia", "amazon"])
    assert source_files(run) == sorted(run.glob("outputs/*/all_results.json"))


def test_a_partial_csv_is_a_reference_run_too(tmp_path):
    matrix = pd.DataFrame([[float("nan")] * 2, [80.0, float("nan")], [70.0, 90.0]],
                          index=pd.Index(["base", "a", "b"], name="after"), columns=["a", "b"])
    write_accuracy_csv(matrix, tmp_path / "R.csv", partial=True)
    summary = collect_reference_run(tmp_path / "R.csv", "paper", 2, tmp_path / "o.csv", tmp_path / "s.json")
    assert summary["aa"] == pytest.approx(80.0) and summary["bwt"] == pytest.approx(-10.0)
    assert summary["fwt"] is None  # an empty base row is no base row


@pytest.mark.parametrize("make, message", [
    (lambda root: root / "nowhere", "no such file or directory"),
    (lambda root: root, "outputs/<k>-<task>/all_results.json"),
])
def test_a_bad_source_is_named(tmp_path, make, message):
    with pytest.raises(ValueError, match=message) as info:
        load_reference_matrix(make(tmp_path))
    assert str(tmp_path) in str(info.value)


def write_study_run(tmp_path: Path, method: str, aa: float) -> tuple[Path, Path]:
    tasks = ["alpha", "beta"]
    matrix = pd.DataFrame([[30.0, 20.0], [90.0, 25.0], [aa, 88.0]],
                          index=pd.Index(["base", *tasks], name="after"), columns=tasks)
    write_accuracy_csv(matrix, tmp_path / f"{method}.csv")
    summary = {"method": method, "order": 1, "seed": 0, "aa": (aa + 88) / 2, "bwt": aa - 90,
               "fwt": 5.0, "forgetting": 90 - aa, "learning_accuracy": 89.0, "micro_accuracy": 70.0,
               "general": None, "ranked": None, "answers_in_options": None, "premise": None,
               "tuning": None, "tasks": tasks}
    (tmp_path / f"{method}.json").write_text(json.dumps(summary))
    return tmp_path / f"{method}.csv", tmp_path / f"{method}.json"


def test_tables_and_figures_take_a_reference_beside_the_methods(tmp_path):
    ours_csv, ours_json = write_study_run(tmp_path, "asvd", 80.0)
    run = write_olora_run(tmp_path / "run", ROWS, PUBLISHED)
    collect_reference_run(run, "olora_published", 1, tmp_path / "ref.csv", tmp_path / "ref.json")
    tables = [tmp_path / f"summary.{ext}" for ext in ("csv", "md", "tex", "html")]
    stats = write_summary_tables([ours_json, tmp_path / "ref.json"], *tables)
    reference = stats[(stats["method"] == "olora_published") & (stats["order"] == "1")].iloc[0]
    assert reference["n"] == 1 and reference["aa_mean"] == pytest.approx(220 / 3)
    assert math.isnan(reference["fwt_mean"])
    assert "| olora_published | 1       |   1 | 73.33" in tables[1].read_text()
    matrices = {"asvd": {"order 1": ours_csv}, "olora_published": {"order 1": tmp_path / "ref.csv"}}
    for plot in (plot_task_curves, plot_method_matrices):
        png, pdf = tmp_path / f"{plot.__name__}.png", tmp_path / f"{plot.__name__}.pdf"
        plot(matrices, png, pdf)
        assert png.stat().st_size > 5000 and pdf.stat().st_size > 1000
    for plot in (plot_aa_bwt, plot_learnability_retention):
        png, pdf = tmp_path / f"{plot.__name__}.png", tmp_path / f"{plot.__name__}.pdf"
        plot([ours_json, tmp_path / "ref.json"], png, pdf)
        assert png.stat().st_size > 5000


@pytest.mark.parametrize("run, aa, bwt", [
    ("order1_olora", 78.37, -1.18), ("order1_seqft", 67.77, -14.50), ("order1_seqlora", 62.88, -29.21),
])
def test_the_published_order1_runs_as_references(tmp_path, run, aa, bwt):
    shared = shared_dir()
    if shared is None or not (shared / "data" / "olora_results" / run).is_dir():
        pytest.skip("../shared/data/olora_results not present")
    summary = collect_reference_run(shared / "data" / "olora_results" / run, run, 1,
                                    tmp_path / "R.csv", tmp_path / "s.json")
    assert (round(summary["aa"], 2), round(summary["bwt"], 2)) == (aa, bwt)
