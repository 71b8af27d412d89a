"""Summary tables and figures, on small runs the tests write themselves."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import save_file

from asvd.analysis.figures import (
    _spread,
    aa_per_order,
    learnability_retention,
    plot_aa_bwt,
    plot_aa_per_order,
    plot_accuracy_matrices,
    plot_frozen_ranks,
    plot_general_retention,
    plot_importance_ratios,
    plot_learnability_retention,
    plot_method_matrices,
    plot_premise,
    plot_singular_spectra,
    plot_subspace_overlap,
    plot_task_curves,
    plot_tradeoff,
    plot_training_curves,
    premise_shares,
    rule_limits,
    tradeoff_points,
)
from asvd.analysis.metrics import write_accuracy_csv
from asvd.analysis.subspaces import overlap_table
from asvd.analysis.tables import load_runs, write_summary_tables
from asvd.train_log import TaskLog
from conftest import html_table_rows, task_log

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PDF_MAGIC = b"%PDF"
TASKS = ["dbpedia", "amazon", "yahoo"]
TARGETS = [f"encoder.block.{i}.layer.0.SelfAttention.q" for i in (0, 1, 2, 10)]


def premise_of(earlier: float, new: float) -> dict:
    """A premise measurement over TASKS: every earlier task's input share ``earlier`` (block 1:
    ``earlier - 0.1``), the new task's ``new``; the headline as the measuring code writes it."""
    def shares(value):
        blocks = {"encoder.block.0": {"input": value, "output": 1.0},
                  "encoder.block.1": {"input": value - 0.1, "output": 1.0}}
        return {"input": value - 0.05, "output": 1.0, "blocks": blocks}
    steps = [{"index": i, "task": task, "subspace": "frozen",
              "shares": {seen: shares(new if seen == task else earlier) for seen in TASKS[:i]}}
             for i, task in enumerate(TASKS, start=1)]
    return {"samples": 4, "subspace_of": "own", "steps": steps,
            "earlier_input_share": earlier - 0.05, "new_input_share": new - 0.05,
            "earlier_output_share": 1.0, "new_output_share": 1.0}


def write_summary(path: Path, method: str, order: str, seed: int, aa: float, **extra) -> Path:
    summary = {
        "method": method, "order": order, "seed": seed,
        "aa": aa, "bwt": -aa / 10, "fwt": None, "forgetting": aa / 10,
        "learning_accuracy": aa + 5, "micro_accuracy": aa + 1,
        "general": {"base": 40.0, "per_step": [38.0, 36.0, aa / 2],
                    "final": aa / 2, "retention": 100 * (aa / 2) / 40},
        "ranked": {"aa": aa + 10, "bwt": -aa / 20, "fwt": None, "forgetting": aa / 20,
                   "learning_accuracy": aa + 12, "base_accuracy": 30.0},
        "answers_in_options": {"base": 20.0, "final": 90.0 + seed},
        "premise": premise_of(0.9 + seed / 100, 0.6),
        "tuning": {"lr": 3.5e-4 * seed, "trr": 0.8, "task": TASKS[0], "trials": 8},
        "tasks": TASKS,
    } | extra  # fmt: skip
    path.write_text(json.dumps(summary))
    return path


@pytest.fixture
def summaries(tmp_path) -> list[Path]:
    """zeta_sub (2 orders x 2 seeds) listed before alpha (1 order, 1 seed)."""
    runs = [
        ("zeta_sub", "order1", 1, 70.0), ("zeta_sub", "order1", 2, 72.0),
        ("zeta_sub", "order2", 1, 60.0), ("zeta_sub", "order2", 2, 64.0),
        ("alpha", "order1", 1, 50.0),
    ]  # fmt: skip
    return [write_summary(tmp_path / f"summary{i}.json", *run) for i, run in enumerate(runs)]


def assert_png_and_pdf(png: Path, pdf: Path) -> None:
    assert png.read_bytes().startswith(PNG_MAGIC) and png.stat().st_size > 5000
    assert pdf.read_bytes().startswith(PDF_MAGIC) and pdf.stat().st_size > 1000
    assert not list(png.parent.glob(".*.tmp"))


def outputs(tmp_path: Path, name: str) -> tuple[Path, Path]:
    return tmp_path / "fig" / f"{name}.png", tmp_path / "fig" / f"{name}.pdf"


# --------------------------------------------------------------------------- tables


def test_summary_tables(tmp_path, summaries):
    out = [tmp_path / "tables" / f"results.{ext}" for ext in ("csv", "md", "tex", "html")]
    write_summary_tables(summaries, *out)
    table = pd.read_csv(out[0])
    assert list(zip(table["method"], table["order"])) == [
        ("zeta_sub", "order1"), ("zeta_sub", "order2"), ("zeta_sub", "average"),
        ("alpha", "order1"), ("alpha", "average"),
    ]  # fmt: skip
    rows = table.set_index(["method", "order"])
    assert rows.loc[("zeta_sub", "order1"), "aa_mean"] == pytest.approx(71.0)
    assert rows.loc[("zeta_sub", "order1"), "aa_std"] == pytest.approx(np.sqrt(2))
    assert rows.loc[("zeta_sub", "order1"), "n"] == 2
    # average = mean of the order means (71, 62); std = their spread
    assert rows.loc[("zeta_sub", "average"), "aa_mean"] == pytest.approx(66.5)
    assert rows.loc[("zeta_sub", "average"), "aa_std"] == pytest.approx(np.std([71, 62], ddof=1))
    assert rows.loc[("zeta_sub", "order2"), "general_retention_mean"] == pytest.approx(77.5)
    assert np.isnan(rows.loc[("alpha", "order1"), "aa_std"])
    assert np.isnan(rows.loc[("alpha", "order1"), "fwt_mean"])
    # the premise's headline: earlier tasks' input share in V_h (seeds 1, 2: 0.86, 0.87), new 0.55
    assert rows.loc[("zeta_sub", "order1"), "premise_earlier_input_share_mean"] == pytest.approx(0.865)
    assert rows.loc[("zeta_sub", "order1"), "premise_new_input_share_mean"] == pytest.approx(0.55)

    assert rows.loc[("zeta_sub", "order1"), "tuning_lr_mean"] == pytest.approx(5.25e-4)
    # option ranking beside exact match: ranked AA (aa + 10), share of listed answers (90 + seed)
    assert rows.loc[("zeta_sub", "order1"), "ranked_aa_mean"] == pytest.approx(81.0)
    assert rows.loc[("zeta_sub", "order2"), "answers_in_options_final_mean"] == pytest.approx(91.5)

    markdown = out[1].read_text()
    assert "| zeta_sub | order1  |   2 | 71.00 ± 1.41" in markdown
    assert "| 0.000525 ± 0.000247 | 0.80 ± 0.00" in markdown  # a learning rate keeps its digits
    assert "| 0.86 ± 0.01 " in markdown  # the premise share's std is not printed finer than it
    assert "| alpha    | order1  |   1 | 50.00        |" in markdown
    assert "Gen. retention" in markdown and "Earlier in V_h" in markdown and "–" in markdown
    assert "AA (ranked)" in markdown and "In options" in markdown

    latex = out[2].read_text()
    assert r"zeta\_sub & order1 & 2 & 71.00 $\pm$ 1.41" in latex
    assert "\\begin{tabular}" in latex and " -- " in latex


def test_summary_table_html_shows_the_markdown_cells_on_a_self_contained_page(tmp_path, summaries):
    out = [tmp_path / f"summary.{ext}" for ext in ("csv", "md", "tex", "html")]
    write_summary_tables(summaries, *out)
    page = out[3].read_text(encoding="utf-8")
    header, *rows = html_table_rows(page)
    assert header[:5] == ["Method", "Order", "n", "AA", "BWT"] and "Earlier in V_h" in header
    assert [row[:2] for row in rows] == [["zeta_sub", "order1"], ["zeta_sub", "order2"],
                                         ["zeta_sub", "average"], ["alpha", "order1"],
                                         ["alpha", "average"]]
    assert rows[0][:5] == ["zeta_sub", "order1", "2", "71.00 ± 1.41", "-7.10 ± 0.14"]
    assert rows[2][header.index("AA")] == "66.50 ± 6.36"  # the average over the order means
    assert rows[0][header.index("Tuned lr")] == "0.000525 ± 0.000247"
    assert rows[3][:4] == ["alpha", "order1", "1", "50.00"]  # one seed: no std
    assert rows[3][header.index("FWT")] == "–"
    # a page of its own: the report shows it inline in a frame, offline
    assert '<meta charset="utf-8">' in page and "<style>" in page
    assert not re.search(r"\b(src|href)=|@import|url\(", page)


def test_summary_tables_name_bad_summary(tmp_path, summaries):
    bad = write_summary(tmp_path / "bad.json", "m", "order1", 1, 50.0)
    bad.write_text(json.dumps({k: v for k, v in json.loads(bad.read_text()).items() if k != "bwt"}))
    out = [tmp_path / f"t.{ext}" for ext in ("csv", "md", "tex", "html")]
    with pytest.raises(ValueError, match=r"bad\.json: summary lacks 'bwt'"):
        write_summary_tables([*summaries, bad], *out)


# --------------------------------------------------------------------------- figures from R


def write_matrix(path: Path, shift: float) -> Path:
    rows = [
        [10.0, 20.0, 30.0],
        [95.0, 25.0, 35.0],
        [80.0, 60.0, 40.0],
        [70.0, 55.0, 75.0],
    ]
    matrix = pd.DataFrame(
        np.clip(np.array(rows) + shift, 0, 100),
        index=pd.Index(["base", *TASKS], name="after"),
        columns=TASKS,
    )
    write_accuracy_csv(matrix, path)
    return path


def test_plot_accuracy_matrices(tmp_path):
    csvs = {f"order{i}": write_matrix(tmp_path / f"R{i}.csv", 3.0 * i) for i in (1, 2)}
    png, pdf = outputs(tmp_path, "matrices")
    plot_accuracy_matrices(csvs, "asvd", png, pdf)
    assert_png_and_pdf(png, pdf)


@pytest.mark.parametrize("plot", [plot_task_curves, plot_method_matrices])
def test_method_by_order_grids_with_a_missing_run(tmp_path, plot):
    csvs = {
        "asvd": {o: write_matrix(tmp_path / f"a{o}.csv", 0.0) for o in ("order1", "order2")},
        "seqft": {"order1": write_matrix(tmp_path / "s.csv", -10.0)},
    }
    png, pdf = outputs(tmp_path, plot.__name__)
    plot(csvs, png, pdf)
    assert_png_and_pdf(png, pdf)


# --------------------------------------------------------------------------- figures from summaries


def test_aa_per_order_has_seed_spread_per_method_and_order(tmp_path, summaries):
    stats = aa_per_order(load_runs(summaries))
    assert stats.loc[("zeta_sub", "order1")].tolist() == pytest.approx([71.0, np.std([70, 72], ddof=1), 2])
    assert stats.loc[("alpha", "order1"), "std"] == 0.0  # one seed: no spread, not NaN
    png, pdf = outputs(tmp_path, "aa_per_order")
    plot_aa_per_order(summaries, png, pdf)
    assert_png_and_pdf(png, pdf)


def test_learnability_retention_marks_the_pareto_front(tmp_path):
    # (learning, bwt): a dominates c; b trades learning for retention; d equals a (both stay)
    points = {"a": (90.0, -20.0), "b": (60.0, -2.0), "c": (80.0, -30.0), "d": (90.0, -20.0)}
    paths = [write_summary(tmp_path / f"{m}.json", m, "order1", 0, 50.0, learning_accuracy=la, bwt=bwt)
             for m, (la, bwt) in points.items()]
    paths.append(write_summary(tmp_path / "mtl.json", "mtl", "order1", 0, 95.0,
                               learning_accuracy=None, bwt=None))  # no sequence: not a point
    front = learnability_retention(load_runs(paths))["pareto"].to_dict()
    assert front == {"a": True, "b": True, "c": False, "d": True}
    png, pdf = outputs(tmp_path, "learn_retain")
    plot_learnability_retention(paths, png, pdf)
    assert_png_and_pdf(png, pdf)


def test_plot_aa_bwt(tmp_path, summaries):
    png, pdf = outputs(tmp_path, "aa_bwt")
    plot_aa_bwt(summaries, png, pdf)
    assert_png_and_pdf(png, pdf)


def test_plot_general_retention(tmp_path, summaries):
    png, pdf = outputs(tmp_path, "general")
    plot_general_retention(summaries, png, pdf)
    assert_png_and_pdf(png, pdf)


def test_general_retention_rejects_mixed_lengths(tmp_path, summaries):
    longer = write_summary(
        tmp_path / "long.json", "alpha", "order4", 1, 50.0,
        general={"base": 40.0, "per_step": [1.0] * 5, "final": 1.0, "retention": 2.5},
    )  # fmt: skip
    with pytest.raises(ValueError, match="alpha: runs have different numbers of steps"):
        plot_general_retention([*summaries, longer], *outputs(tmp_path, "general"))


# --------------------------------------------------------------------------- training internals


def write_train_logs(directory: Path, frozen_per_step: list[int]) -> list[Path]:
    directory.mkdir()
    paths = []
    for step, (task, frozen) in enumerate(zip(TASKS, frozen_per_step), start=1):
        log = task_log(task, step, frozen_ranks={t: frozen * (i + 1) for i, t in enumerate(TARGETS)},
                       ranks={t: 16 for t in TARGETS}, max_violation=1e-6)
        paths.append(directory / f"train_{step}.json")
        paths[-1].write_text(json.dumps(log))
    return paths


def test_plot_frozen_ranks_skips_unconstrained(tmp_path):
    logs = {
        "asvd": write_train_logs(tmp_path / "asvd", [0, 2, 3]),
        "seqft": write_train_logs(tmp_path / "seqft", [0, 0, 0]),
    }
    png, pdf = outputs(tmp_path, "ranks")
    plot_frozen_ranks(logs, png, pdf)
    assert_png_and_pdf(png, pdf)


def test_plot_frozen_ranks_nothing_frozen(tmp_path):
    png, pdf = outputs(tmp_path, "ranks_none")
    plot_frozen_ranks({"seqft": write_train_logs(tmp_path / "s", [0, 0, 0])}, png, pdf)
    assert png.read_bytes().startswith(PNG_MAGIC)


def test_plot_training_curves_draws_every_step_of_the_sequence_in_its_tasks_colour(tmp_path, monkeypatch):
    from asvd.analysis import figures

    losses = {"alpha": [3.0, 2.0, 1.0, 0.5], "beta": [4.0, 1.0, 0.25, 0.125]}
    logs = {}
    for method in ("asvd", "seqft"):
        (tmp_path / method).mkdir()
        logs[method] = {"order 1": []}
        for step, (task, loss) in enumerate(losses.items(), start=1):
            path = tmp_path / method / f"step{step}.json"
            path.write_text(json.dumps(task_log(task, step, loss=loss, steps=len(loss))))
            logs[method]["order 1"].append(path)
        logs[method]["order 2"] = logs[method]["order 1"][::-1]
    drawn = []
    monkeypatch.setattr(figures, "save_figure", lambda fig, png, pdf: drawn.append(fig))
    plot_training_curves(logs, *outputs(tmp_path, "curves"))
    axes = {ax.get_title(): ax for ax in drawn[0].axes}
    assert set(axes) == {"asvd · order 1", "seqft · order 1", "asvd · order 2", "seqft · order 2"}
    raw = [line for line in axes["seqft · order 2"].lines if line.get_alpha() == 0.25]
    assert [list(line.get_xdata()) for line in raw] == [[1, 2, 3, 4], [5, 6, 7, 8]]
    assert [list(line.get_ydata()) for line in raw] == [losses["beta"], losses["alpha"]]
    assert raw[0].get_color() != raw[1].get_color()
    assert axes["seqft · order 2"].get_yscale() == "log"
    monkeypatch.undo()
    plot_training_curves(logs, *outputs(tmp_path, "curves"))  # the real save
    assert_png_and_pdf(*outputs(tmp_path, "curves"))


def test_running_mean_worked_case():
    from asvd.analysis.figures import _smoothed

    assert _smoothed(np.array([4.0, 2.0, 0.0, 6.0]), 2).tolist() == [4.0, 3.0, 1.0, 3.0]


def write_svd_caches(directory: Path, n_checkpoints: int) -> list[Path]:
    directory.mkdir()
    rng = np.random.default_rng(0)
    paths = []
    for step in range(n_checkpoints):
        tensors = {}
        for target in TARGETS:
            values = np.sort(rng.random(16).astype(np.float32) * 10 / (step + 1))[::-1]
            tensors |= {
                f"{target}.U": np.eye(4, dtype=np.float32),
                f"{target}.S": np.ascontiguousarray(values),
                f"{target}.Vh": np.eye(4, dtype=np.float32),
            }
        paths.append(directory / f"svd_{step}.safetensors")
        save_file(tensors, str(paths[-1]))
    return paths


def test_plot_singular_spectra(tmp_path):
    caches = {m: write_svd_caches(tmp_path / m, 4) for m in ("asvd", "seqft")}
    png, pdf = outputs(tmp_path, "spectra")
    plot_singular_spectra(caches, 2, png, pdf)
    assert_png_and_pdf(png, pdf)


def test_singular_spectra_missing_target(tmp_path):
    caches = {"asvd": write_svd_caches(tmp_path / "asvd", 2)}
    with pytest.raises(ValueError, match=r"svd_0\.safetensors: no singular values for \['nope'\]"):
        plot_singular_spectra(caches, ["nope"], *outputs(tmp_path, "spectra"))


def test_spread_picks_evenly():
    names = [f"block.{i}" for i in range(10)]
    assert _spread(names, 3) == ["block.0", "block.4", "block.9"]
    assert _spread(names[:2], 5) == names[:2]


def write_importance_logs(directory: Path) -> list[Path]:
    """Train logs of an importance rule: step 1 unconstrained (no importance), steps 2-3 scored."""
    paths = write_train_logs(directory, [0, 2, 3])
    for step, path in enumerate(paths[1:], start=2):
        log = json.loads(path.read_text())
        blocks = {"encoder.block.0": 0.9, "encoder.block.1": 0.5 + 0.1 * step}
        mean = sum(blocks.values()) / 2
        log |= {"granularity": "block", "mrr": 0.1, "trr": 0.8, "importance": blocks,
                "retention_ratio": {b: 0.1 + v / mean * 0.7 for b, v in blocks.items()}}
        path.write_text(json.dumps(log))
    return paths


def test_plot_importance_ratios(tmp_path):
    png, pdf = outputs(tmp_path, "importance")
    plot_importance_ratios({"asvd": write_importance_logs(tmp_path / "asvd")}, png, pdf)
    assert_png_and_pdf(png, pdf)


def test_rule_limits_name_clamped_targets_and_mrr_units_per_step(tmp_path):
    paths = write_importance_logs(tmp_path / "asvd")
    logs = [json.loads(path.read_text()) for path in paths[1:]]
    logs[0] |= {"clamped_targets": [TARGETS[0], TARGETS[1]], "unimportant_units": []}
    logs[1] |= {"clamped_targets": [TARGETS[1]], "unimportant_units": ["encoder.block.1"]}
    assert rule_limits([TaskLog.from_record(log) for log in logs]) == {"encoder.block.0": " [clamped 1@2]",
                                 "encoder.block.1": " [clamped 1@2; clamped 1@3; mrr@3]"}
    png, pdf = outputs(tmp_path, "importance")
    for path, log in zip(paths[1:], logs):
        path.write_text(json.dumps(log))
    plot_importance_ratios({"asvd": paths}, png, pdf)
    assert_png_and_pdf(png, pdf)


def test_premise_shares_line_up_tasks_by_how_far_back_they_were_trained(tmp_path):
    summary = write_summary(tmp_path / "s.json", "asvd", "order1", 0, 50.0)
    table = premise_shares([summary, write_summary(tmp_path / "n.json", "seqft", "order1", 0,
                                                   50.0, premise=None)])
    assert set(table["method"]) == {"asvd"}  # a run without a premise is left out
    assert sorted(set(table["step"])) == [2, 3]  # step 1 has no earlier task
    everything = table[table["unit"] == "all targets"].set_index(["step", "series"])["share"]
    assert everything.to_dict() == pytest.approx({
        (2, "1 back"): 0.85, (2, "new task"): 0.55,
        (3, "2 back"): 0.85, (3, "1 back"): 0.85, (3, "new task"): 0.55})
    block = table[(table["unit"] == "encoder.block.1") & (table["series"] == "new task")]
    assert block["share"].tolist() == pytest.approx([0.5, 0.5])


def test_plot_premise(tmp_path, summaries):
    png, pdf = outputs(tmp_path, "premise")
    plot_premise(summaries, png, pdf)
    assert_png_and_pdf(png, pdf)


def test_plot_premise_without_any_measurement_is_refused(tmp_path):
    summary = write_summary(tmp_path / "s.json", "seqft", "order1", 0, 50.0, premise=None)
    with pytest.raises(ValueError, match="no premise measured in 1 run summaries"):
        plot_premise([summary], *outputs(tmp_path, "premise"))


def test_importance_ratios_without_any_importance_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"no importance in the train logs of \['osft'\]"):
        plot_importance_ratios({"osft": write_train_logs(tmp_path / "o", [1, 2, 3])},
                               *outputs(tmp_path, "importance"))


def _orthonormal(columns: list[list[float]]) -> np.ndarray:
    return np.ascontiguousarray(np.array(columns, dtype=np.float32).T)


def test_overlap_of_successive_frozen_subspaces_worked_case(tmp_path):
    """Task 1 freezes the first two columns of checkpoint 0, task 2 the frozen columns of
    checkpoint 1: kept whole (1); one direction kept and the other half inside (0.75); released
    (0); nothing to keep (NaN)."""
    e = np.eye(4, dtype=np.float32)
    half = np.stack([e[0], (e[1] + e[2]) / np.sqrt(2), (e[1] - e[2]) / np.sqrt(2), e[3]], axis=1)
    caches = []
    for step, bases in enumerate([{t: e for t in "abcd"}, {"a": e, "b": e, "c": e, "d": half}]):
        tensors = {}
        for target, U in bases.items():
            tensors |= {f"{target}.U": np.ascontiguousarray(U), f"{target}.S": np.ones(4, np.float32),
                        f"{target}.Vh": e}
        caches.append(tmp_path / f"svd{step}.safetensors")
        save_file(tensors, str(caches[-1]))
    logs = []
    for step, frozen in enumerate([{"a": 2, "b": 2, "c": 0, "d": 2}, {"a": 3, "b": 0, "c": 2, "d": 2}], 1):
        logs.append(tmp_path / f"log{step}.json")
        logs[-1].write_text(json.dumps(task_log(f"t{step}", step, frozen_ranks=frozen,
                                                ranks={t: 4 for t in frozen})))
    table = overlap_table(caches, logs)
    assert list(table.columns) == ["1->2"]
    assert table["1->2"].to_dict() == pytest.approx({"a": 1.0, "b": 0.0, "c": np.nan, "d": 0.75},
                                                    nan_ok=True)
    with pytest.raises(ValueError, match="2 tasks need the SVD caches of checkpoints 0..1, got 1"):
        overlap_table(caches[:1], logs)
    png, pdf = outputs(tmp_path, "overlap")
    plot_subspace_overlap({"asvd": {"svd_caches": caches, "train_logs": logs}}, png, pdf)
    assert_png_and_pdf(png, pdf)


def test_tradeoff_points_join_each_method_with_its_learning_rate_variants(tmp_path):
    def run(name, method, seed, learning, bwt):
        return write_summary(tmp_path / f"{name}.json", method, "order1", seed, 50.0,
                             learning_accuracy=learning, bwt=bwt, base_accuracy=25.0)
    paths = [run("a", "asvd", 0, 40.0, -5.0), run("b", "asvd", 1, 50.0, -15.0),
             run("c", "asvd_lrx4", 0, 95.0, -60.0), run("d", "seqft", 0, 100.0, -75.0),
             run("e", "asvd_lrx2", 0, 65.0, -28.0), run("f", "seqft_lrx0p5", 0, 25.0, 0.0)]
    points = tradeoff_points(paths)
    assert list(zip(points["family"], points["scale"])) == [
        ("asvd", 1.0), ("asvd", 2.0), ("asvd", 4.0), ("seqft", 0.5), ("seqft", 1.0)]
    first = points.iloc[0]
    assert (first["learning"], first["bwt"], first["runs"]) == (45.0, -10.0, 2)
    assert first["learning_std"] == pytest.approx(np.std([40, 50], ddof=1))
    # 10 points forgotten for 20 learned above the base model's 25
    assert first["forgetting_per_point"] == pytest.approx(0.5)
    assert points.iloc[2]["forgetting_per_point"] == pytest.approx(60 / 70)
    assert np.isnan(points.iloc[3]["forgetting_per_point"])  # nothing learned above the base
    png, pdf = outputs(tmp_path, "tradeoff")
    plot_tradeoff(paths, png, pdf)
    assert_png_and_pdf(png, pdf)
