"""Metrics, accuracy-matrix CSV format, run summaries, O-LoRA results and the ``metrics`` CLI."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from asvd.analysis.metrics import (
    accuracy_matrix,
    cl_metrics,
    collect_run,
    metric_notes,
    read_accuracy_csv,
    read_olora_results,
    summarise_run,
    write_accuracy_csv,
)
from asvd.cli import main
from conftest import write_olora_run

REPO = Path(__file__).resolve().parents[1]
OLORA_RESULTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "olora_results"
TASKS = ["a", "b", "c"]

# Worked example. Rows: base, after a, after b, after c; columns a, b, c.
#   AA  = (60 + 85 + 95) / 3                     = 80
#   LA  = (80 + 90 + 95) / 3                     = 88.33
#   BWT = ((60 - 80) + (85 - 90)) / 2            = -12.5
#   FWT = ((25 - 20) + (40 - 30)) / 2            = 7.5
#   Forgetting = ((max(80, 85) - 60) + (max(25, 90) - 85)) / 2 = (25 + 5) / 2 = 15
# Forgetting differs from -BWT because task a peaked after b, not right after a.
WORKED = [
    [10.0, 20.0, 30.0],
    [80.0, 25.0, 35.0],
    [85.0, 90.0, 40.0],
    [60.0, 85.0, 95.0],
]
WORKED_METRICS = {"aa": 80.0, "bwt": -12.5, "fwt": 7.5, "forgetting": 15.0}


def make_matrix(rows: list[list[float]], tasks: list[str] = TASKS, base: bool = True):
    labels = ["base", *tasks] if base else list(tasks)
    return pd.DataFrame(rows, index=pd.Index(labels, name="after"), columns=tasks)


def make_eval(accuracies: dict[str, float], total: int = 200) -> dict:
    """An eval.json-shaped dict whose correct counts match the accuracies."""
    return {
        "scores": {
            name: {"metric": "exact_match", "score": acc, "correct": round(acc * total / 100),
                   "total": total, "unanswerable": 0}
            for name, acc in accuracies.items()
        }
    }


def worked_evals(general: list[float] = (40.0, 39.0, 37.0, 30.0)) -> tuple[dict, list[dict]]:
    evals = [
        make_eval({**dict(zip(TASKS, row)), "general": gen}) for row, gen in zip(WORKED, general)
    ]
    return evals[0], evals[1:]


# --------------------------------------------------------------------------- cl_metrics


def test_worked_example():
    metrics = cl_metrics(make_matrix(WORKED))
    for key, value in WORKED_METRICS.items():
        assert metrics[key] == pytest.approx(value)
    assert metrics["learning_accuracy"] == pytest.approx(265 / 3)


def test_forgetting_ignores_base_row():
    """The max in forgetting runs over rows 1..T-1 (Chaudhry), never the base model."""
    rows = [row[:] for row in WORKED]
    rows[0][0] = 99.0
    assert cl_metrics(make_matrix(rows))["forgetting"] == pytest.approx(15.0)


def test_single_task_leaves_transfer_undefined():
    metrics = cl_metrics(make_matrix([[10.0], [70.0]], tasks=["a"]))
    assert metrics == {
        "aa": 70.0, "bwt": None, "fwt": None, "forgetting": None, "learning_accuracy": 70.0,
    }  # fmt: skip


def test_without_base_row_fwt_is_none():
    metrics = cl_metrics(make_matrix(WORKED[1:], base=False))
    assert metrics["fwt"] is None
    assert metrics["aa"] == pytest.approx(80.0)
    assert metrics["bwt"] == pytest.approx(-12.5)
    assert metrics["forgetting"] == pytest.approx(15.0)


def test_rows_must_follow_tasks():
    matrix = make_matrix(WORKED).iloc[[0, 2, 1, 3]]
    with pytest.raises(ValueError, match="do not match"):
        cl_metrics(matrix)


square = st.integers(min_value=1, max_value=6).flatmap(
    lambda t: arrays(np.float64, (t + 1, t), elements=st.floats(0, 100))
)


@settings(max_examples=40, deadline=None)
@given(square)
def test_forgetting_bounds_negative_bwt(values):
    """max_i R[i][j] >= R[j][j], so forgetting >= -BWT for every matrix."""
    tasks = [f"t{j}" for j in range(values.shape[1])]
    metrics = cl_metrics(make_matrix(values.tolist(), tasks))
    if len(tasks) > 1:
        assert metrics["forgetting"] >= -metrics["bwt"] - 1e-9


def test_forgetting_max_stops_before_the_last_row():
    """Task a improves at the last step (60 -> 95): its forgetting is max(80, 85) - 95 = -10, not
    0 as a max over rows 1..T (the last row included) would give; b: 90 - 85 = 5."""
    rows = [[20.0, 20.0, 30.0], [80.0, 25.0, 35.0], [85.0, 90.0, 40.0], [95.0, 85.0, 95.0]]
    assert cl_metrics(make_matrix(rows))["forgetting"] == pytest.approx((-10.0 + 5.0) / 2)


@settings(max_examples=60, deadline=None)
@given(square)
def test_every_metric_equals_its_definition_written_out(values):
    """AA, LA, BWT, FWT and forgetting against loops over the cells, docs/benchmarks.md §5's formulas."""
    base, steps = values[0], values[1:]
    count = steps.shape[0]
    tasks = [f"t{j}" for j in range(count)]
    metrics = cl_metrics(make_matrix(values.tolist(), tasks))
    assert metrics["aa"] == pytest.approx(sum(steps[-1][j] for j in range(count)) / count)
    assert metrics["learning_accuracy"] == pytest.approx(sum(steps[j][j] for j in range(count)) / count)
    if count == 1:
        return
    earlier = range(count - 1)
    assert metrics["bwt"] == pytest.approx(sum(steps[-1][j] - steps[j][j] for j in earlier) / (count - 1))
    assert metrics["fwt"] == pytest.approx(
        sum(steps[j - 1][j] - base[j] for j in range(1, count)) / (count - 1))
    assert metrics["forgetting"] == pytest.approx(
        sum(max(steps[i][j] for i in range(count - 1)) - steps[-1][j] for j in earlier) / (count - 1))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 100), min_size=2, max_size=6))
def test_constant_rows_have_no_transfer(row):
    """A model that never changes neither forgets nor transfers."""
    tasks = [f"t{j}" for j in range(len(row))]
    metrics = cl_metrics(make_matrix([row] * (len(row) + 1), tasks))
    assert metrics["bwt"] == pytest.approx(0.0, abs=1e-9)
    assert metrics["fwt"] == pytest.approx(0.0, abs=1e-9)
    assert metrics["forgetting"] == pytest.approx(0.0, abs=1e-9)
    assert metrics["aa"] == pytest.approx(float(np.mean(row)))
    assert metrics["learning_accuracy"] == pytest.approx(float(np.mean(row)))


# --------------------------------------------------------------------------- matrix from evals


def test_accuracy_matrix_from_evals():
    base, steps = worked_evals()
    matrix = accuracy_matrix(base, steps, TASKS)
    pd.testing.assert_frame_equal(matrix, make_matrix(WORKED))


def test_accuracy_matrix_names_missing_task_and_eval():
    base, steps = worked_evals()
    del steps[1]["scores"]["c"]
    with pytest.raises(ValueError, match=r"eval after task 'b'.*'c'"):
        accuracy_matrix(base, steps, TASKS)


def test_accuracy_matrix_needs_one_eval_per_task():
    base, steps = worked_evals()
    with pytest.raises(ValueError, match="3 tasks but 2 step evals"):
        accuracy_matrix(base, steps[:2], TASKS)


def test_summarise_run():
    base, steps = worked_evals()
    matrix, summary = summarise_run(base, steps, TASKS, {"method": "m", "order": "o1", "seed": 1})
    assert summary["method"] == "m" and summary["seed"] == 1
    assert summary["tasks"] == TASKS
    assert summary["aa"] == pytest.approx(80.0)
    # final row 60/85/95 % of 200 samples each: (120 + 170 + 190) / 600
    assert summary["micro_accuracy"] == pytest.approx(80.0)
    assert summary["general"] == {
        "base": 40.0, "per_step": [39.0, 37.0, 30.0], "final": 30.0, "retention": 75.0,
    }  # fmt: skip


def test_option_ranking_summarised_from_its_own_matrix():
    """``ranked`` holds the CL metrics of the ranked scores (not of exact match), ``answers_in_options``
    the base and final model's mean share of listed answers; None unless every eval ranked every task."""
    base, steps = worked_evals()
    for row, eval_ in enumerate([base, *steps]):
        for column, task in enumerate(TASKS):
            eval_["scores"][task].update(ranked=90.0 - 10 * column + row, in_options=50.0 + 10 * row)
    _, summary = summarise_run(base, steps, TASKS, {})
    assert summary["ranked"]["aa"] == pytest.approx(3 + (90 + 80 + 70) / 3)
    assert summary["ranked"]["learning_accuracy"] == pytest.approx((91 + 82 + 73) / 3)
    assert summary["ranked"]["bwt"] == pytest.approx(((93 - 91) + (83 - 82)) / 2)
    assert summary["ranked"]["base_accuracy"] == pytest.approx(80.0)
    assert summary["aa"] == pytest.approx(80.0)  # exact match untouched
    assert summary["answers_in_options"] == {"base": 50.0, "final": 80.0}
    del steps[1]["scores"]["b"]["ranked"]
    _, summary = summarise_run(base, steps, TASKS, {})
    assert summary["ranked"] is None and summary["answers_in_options"] is None


def test_truncated_prompts_are_summed_over_the_run_s_tasks():
    base, steps = worked_evals()
    assert summarise_run(base, steps, TASKS, {})[1]["truncated_prompts"] is None  # not counted
    for count, task in enumerate(TASKS):
        steps[-1]["scores"][task]["truncated"] = count
    assert summarise_run(base, steps, TASKS, {})[1]["truncated_prompts"] == 0 + 1 + 2


def test_micro_accuracy_pools_samples():
    base, steps = worked_evals()
    steps[-1]["scores"]["a"].update(correct=0, total=600)  # a big task with nothing right
    _, summary = summarise_run(base, steps, TASKS, {})
    assert summary["micro_accuracy"] == pytest.approx(100 * (170 + 190) / 1000)


def test_retention_none_when_base_is_zero():
    base, steps = worked_evals(general=[0.0, 1.0, 2.0, 3.0])
    assert summarise_run(base, steps, TASKS, {})[1]["general"]["retention"] is None


def written_evals(directory) -> list:
    """The worked example's base and step evals as eval.json files under ``directory``."""
    base, steps = worked_evals()
    paths = []
    for name, eval_ in zip(["base", *TASKS], [base, *steps]):
        paths.append(directory / name / "eval.json")
        paths[-1].parent.mkdir()
        paths[-1].write_text(json.dumps(eval_))
    return paths


def test_collect_run_writes_outputs(tmp_path):
    paths = written_evals(tmp_path)
    matrix_csv, summary_json = tmp_path / "out" / "R.csv", tmp_path / "out" / "summary.json"
    collect_run(paths[0], paths[1:], TASKS, matrix_csv, summary_json, {"method": "m"})
    pd.testing.assert_frame_equal(read_accuracy_csv(matrix_csv), make_matrix(WORKED))
    summary = json.loads(summary_json.read_text())
    assert summary["method"] == "m" and summary["bwt"] == pytest.approx(-12.5)
    assert sorted(p.name for p in matrix_csv.parent.iterdir()) == ["R.csv", "summary.json"]
    assert summary["premise"] is None and summary["tuning"] is None  # neither measured nor tuned
    assert summary["base_accuracy"] == pytest.approx(make_matrix(WORKED).loc["base"].mean())


def test_collect_run_records_the_premise_and_what_the_run_took_of_its_tuning(tmp_path):
    paths = written_evals(tmp_path)
    premise, tuning = tmp_path / "premise.json", tmp_path / "tuning.json"
    premise.write_text(json.dumps({"earlier_input_share": 0.9, "steps": []}))
    tuning.write_text(json.dumps({"task": "a", "trials": 8, "choice": {"lr": 1e-3, "trr": 0.5}}))
    out = tmp_path / "out"
    full = collect_run(paths[0], paths[1:], TASKS, out / "R.csv", out / "s.json", {},
                       premise_json=premise, tuning_json=tuning)
    assert full["premise"] == {"earlier_input_share": 0.9, "steps": []}
    assert full["tuning"] == {"lr": 1e-3, "trr": 0.5, "lr_scale": 1.0, "task": "a", "trials": 8}
    lr_only = collect_run(paths[0], paths[1:], TASKS, out / "R.csv", out / "s.json", {},
                          tuning_json=tuning, tuned_keys=["lr"])
    assert lr_only["tuning"] == {"lr": 1e-3, "trr": None, "lr_scale": 1.0, "task": "a", "trials": 8}
    scaled = collect_run(paths[0], paths[1:], TASKS, out / "R.csv", out / "s.json", {},
                         tuning_json=tuning, lr_scale=4.0)  # a trade-off variant: what it trained
    assert scaled["tuning"]["lr"] == pytest.approx(4e-3) and scaled["tuning"]["lr_scale"] == 4.0


def test_collect_run_names_bad_file(tmp_path):
    base, steps = worked_evals()
    del base["scores"]["b"]
    paths = [tmp_path / f"{i}.json" for i in range(4)]
    for path, eval_ in zip(paths, [base, *steps]):
        path.write_text(json.dumps(eval_))
    with pytest.raises(ValueError, match=r"0\.json: no score for 'b'"):
        collect_run(paths[0], paths[1:], TASKS, tmp_path / "R.csv", tmp_path / "s.json", {})


# --------------------------------------------------------------------------- CSV format


def test_csv_round_trip_and_layout(tmp_path):
    path = tmp_path / "R.csv"
    matrix = make_matrix([[100 / 3, 0.0, 12.5], *WORKED[1:]])
    write_accuracy_csv(matrix, path)
    assert path.read_text().splitlines()[:2] == ["after,a,b,c", f"base,{100 / 3},0.0,12.5"]
    pd.testing.assert_frame_equal(read_accuracy_csv(path), matrix)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        ("task,a\nbase,1\na,2\n", "expected 'after'"),
        ("after,a,b\nbase,1,2\na,3\nb,4,5\n", r":3: 2 fields"),
        ("after,a\nbase,1\na,x\n", r":3: 'x' is not a number"),
        ("after,a,b\nbase,1,2\nb,3,4\na,5,6\n", "should be"),
        ("after,a\na,1\n", "should be"),
        ("after,a,a\nbase,1,2\na,3,4\na,5,6\n", "duplicate task"),
        ("after,a\nbase,1\na,150\n", r"\[0, 100\]"),
        ("after,a\nbase,1\na,nan\n", "finite"),
        ("after\nbase\n", "no task columns"),
    ],
)
def test_malformed_csv_is_rejected_naming_file(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        read_accuracy_csv(path)
    assert str(path) in str(info.value)


def test_write_rejects_bad_matrix(tmp_path):
    with pytest.raises(ValueError, match="should be"):
        write_accuracy_csv(make_matrix(WORKED[1:], base=False), tmp_path / "R.csv")
    assert not any(tmp_path.iterdir())


# --------------------------------------------------------------------------- O-LoRA results


def test_read_olora_results(tmp_path):
    write_olora_run(tmp_path, [row[:k] for k, row in enumerate(WORKED[1:], start=1)], TASKS)
    matrix = read_olora_results(tmp_path)
    assert list(matrix.index) == TASKS and list(matrix.columns) == TASKS
    assert math.isnan(matrix.loc["a", "b"]) and matrix.loc["b", "a"] == 85.0
    metrics = cl_metrics(matrix)
    assert metrics["fwt"] is None
    assert metrics["bwt"] == pytest.approx(-12.5)
    # with the unseen entries missing, task b's best before c is 90: forgetting (25 + 5) / 2
    assert metrics["forgetting"] == pytest.approx(15.0)


def test_olora_step_without_predictions_is_nan(tmp_path):
    write_olora_run(tmp_path, [[80.0], [85.0, 90.0], [60.0, 85.0, 95.0]], TASKS)
    (tmp_path / "outputs" / "2-b" / "all_results.json").write_text('{"epoch": 1.0}')
    matrix = read_olora_results(tmp_path)
    assert matrix.loc["b"].isna().all()
    assert cl_metrics(matrix)["aa"] == pytest.approx(80.0)
    assert cl_metrics(matrix)["bwt"] == pytest.approx(-20.0)  # task b's R[b][b] is unknown: left out
    assert cl_metrics(matrix)["learning_accuracy"] is None


def test_olora_missing_seen_task_is_an_error(tmp_path):
    write_olora_run(tmp_path, [[80.0], [90.0], [60.0, 85.0, 95.0]], TASKS)
    with pytest.raises(ValueError, match="2-b.*predict_exact_match_for_b"):
        read_olora_results(tmp_path)


def test_olora_step_gap_is_an_error(tmp_path):
    write_olora_run(tmp_path, [[80.0], [85.0, 90.0]], ["a", "b"])
    (tmp_path / "outputs" / "2-b").rename(tmp_path / "outputs" / "3-b")
    with pytest.raises(ValueError, match="not 1..T"):
        read_olora_results(tmp_path)


@pytest.mark.parametrize(
    ("run", "aa", "bwt"), [("order1_olora", 78.37, -1.18), ("order1_seqft", 67.77, -14.5)]
)
def test_olora_golden(run, aa, bwt):
    if not OLORA_RESULTS.is_dir():
        pytest.skip(f"{OLORA_RESULTS} not present")
    metrics = cl_metrics(read_olora_results(OLORA_RESULTS / run))
    assert round(metrics["aa"], 2) == aa
    assert round(metrics["bwt"], 2) == bwt


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def worked_csv(tmp_path) -> Path:
    path = tmp_path / "R.csv"
    write_accuracy_csv(make_matrix(WORKED), path)
    return path


def _env_with_repo() -> dict[str, str]:
    """Environment in which ``python -m asvd`` finds this checkout even if not installed."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def test_cli_subprocess(worked_csv):
    result = subprocess.run(
        [sys.executable, "-m", "asvd", "metrics", str(worked_csv)],
        cwd=REPO, env=_env_with_repo(), capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert set(metrics) == {"aa", "bwt", "fwt", "forgetting", "learning_accuracy"}
    for key, value in WORKED_METRICS.items():
        assert metrics[key] == pytest.approx(value)


def test_cli_main_missing_file(tmp_path, capsys):
    """Error paths go through main(): each ``python -m asvd`` start imports torch (seconds)."""
    missing = tmp_path / "missing.csv"
    assert main(["metrics", str(missing)]) == 2
    out, err = capsys.readouterr()
    assert str(missing) in err and out == ""


def test_cli_main(worked_csv, capsys):
    assert main(["metrics", str(worked_csv)]) == 0
    assert json.loads(capsys.readouterr().out)["forgetting"] == pytest.approx(15.0)


def test_cli_main_single_task_prints_null(tmp_path, capsys):
    path = tmp_path / "R.csv"
    path.write_text("after,a\nbase,10\na,70\n")
    assert main(["metrics", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["bwt"] is None


def test_cli_main_malformed_file(tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text("after,a\nbase,1\na,oops\n")
    assert main(["metrics", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "not a number" in err


def _bad_olora_run(tmp_path, case):
    """An O-LoRA run directory with one fault (the test's own files)."""
    run = tmp_path / "run"
    step_one = run / "outputs" / "1-a" / "all_results.json"
    if case == "one task in two steps":
        return write_olora_run(run, [[80.0], [70.0, 90.0]], ["a", "a"])
    write_olora_run(run, [[180.0 if case == "over 100" else 80.0], [85.0, 90.0]], ["a", "b"])
    if case == "null":
        step_one.write_text('{"predict_exact_match_for_a": null}')
    if case == "a list":
        step_one.write_text("[80.0]")
    if case == "fractions":
        for step, row in (("1-a", {"a": 0.8}), ("2-b", {"a": 0.85, "b": 0.9})):
            (run / "outputs" / step / "all_results.json").write_text(
                json.dumps({f"predict_exact_match_for_{t}": v for t, v in row.items()}))
    return run


@pytest.mark.parametrize(("case", "message"), [
    ("over 100", r"1-a/all_results.json: 'predict_exact_match_for_a' is 180.0, expected a percentage"),
    ("null", r"1-a/all_results.json: 'predict_exact_match_for_a' is None, expected a percentage"),
    ("a list", r"1-a/all_results.json: a JSON list, expected an object"),
    ("one task in two steps", r"task 'a' is trained at steps 1 and 2"),
    ("fractions", r"run: every accuracy is at most 1 \(largest 0.9\): these look like fractions"),
    ("output is a directory", r"cannot write .*out"),
])
def test_cli_import_olora_names_the_bad_input(tmp_path, capsys, case, message):
    out = tmp_path / "out"
    if case == "output is a directory":
        out.mkdir()
    run = _bad_olora_run(tmp_path, case)
    assert main(["import-olora", str(run), str(out)]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not out.exists() or out.is_dir()  # nothing written


@pytest.mark.parametrize(("text", "message"), [
    ("after,a,b\nbase,0.1,0.2\na,0.8,0.1\nb,0.7,0.9\n", r"at most 1 \(largest 0.9\)"),
    ("after,base,b\nbase,10,20\nbase,80,10\nb,70,90\n", r"a task named 'base'.*reserved"),
])
def test_cli_metrics_names_fractions_and_a_reserved_task_name(tmp_path, capsys, text, message):
    path = tmp_path / "R.csv"
    path.write_text(text)
    assert main(["metrics", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and re.search(message, err)


def test_cli_requires_subcommand(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


def test_own_models_matrix_scores_each_seen_task_by_its_own_model():
    base = make_eval({"a": 10.0, "b": 20.0})
    after_a = make_eval({"a": 90.0, "b": 30.0})
    after_b = make_eval({"a": 15.0, "b": 80.0})  # task b's model knows little of a
    matrix, summary = summarise_run(base, [after_a, after_b], ["a", "b"], {}, schedule="per_task")
    assert matrix.loc["b"].tolist() == [90.0, 80.0]  # a scored by a's own model
    assert matrix.loc["a"].tolist() == [90.0, 30.0]  # b not trained yet: a's model
    assert summary["bwt"] == 0.0 and summary["aa"] == 85.0
    assert summary["micro_accuracy"] == pytest.approx(85.0)
    sequential, _ = summarise_run(base, [after_a, after_b], ["a", "b"], {})
    assert sequential.loc["b", "a"] == 15.0


def test_a_joint_run_has_one_row_after_base_and_only_aa(tmp_path):
    base = make_eval({"a": 10.0, "b": 20.0})
    joint = make_eval({"a": 90.0, "b": 70.0})
    matrix, summary = summarise_run(base, [joint], ["a", "b"], {}, schedule="joint")
    assert list(matrix.index) == ["base", "joint"] and matrix.loc["joint"].tolist() == [90.0, 70.0]
    assert summary["aa"] == 80.0 and summary["micro_accuracy"] == pytest.approx(80.0)
    assert summary["bwt"] is None and summary["learning_accuracy"] is None
    write_accuracy_csv(matrix, tmp_path / "joint.csv")
    assert read_accuracy_csv(tmp_path / "joint.csv").equals(matrix)
    with pytest.raises(ValueError, match="2 tasks but 2 step evals"):
        summarise_run(base, [joint, joint], ["a", "b"], {}, schedule="joint")


@pytest.mark.parametrize("argv, named", [
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["metrics"], "the following arguments are required: matrix_csv"),
    (["metrics", "R.csv", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_cli_wrong_arguments_print_usage_and_exit_2(argv, named, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.startswith("usage: ") and named in err


def test_cli_wrong_arguments_from_the_shell_show_no_traceback():
    result = subprocess.run([sys.executable, "-m", "asvd", "metrics"], cwd=REPO, env=_env_with_repo(),
                            capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.startswith("usage: ")
    assert "Traceback" not in result.stderr and result.stdout == ""


# --------------------------------------------------------------------------- partial matrices


def olora_by_hand(run_dir: Path) -> tuple[list[str], dict[str, dict[str, float]]]:
    """The tasks and per-step scores of an O-LoRA run, read straight from its JSON files."""
    steps = sorted((run_dir / "outputs").iterdir(), key=lambda p: int(p.name.split("-")[0]))
    tasks = [p.name.split("-", 1)[1] for p in steps]
    scores = {}
    for task, step in zip(tasks, steps):
        results = json.loads((step / "all_results.json").read_text())
        scores[task] = {t: results[f"predict_exact_match_for_{t}"] for t in tasks
                        if f"predict_exact_match_for_{t}" in results}
    return tasks, scores


@pytest.mark.parametrize("run", ["order1_olora", "order1_seqft", "order1_seqlora"])
def test_published_olora_runs_import_to_csv_and_give_the_metrics_computed_by_hand(run, tmp_path,
                                                                                  capsys):
    if not OLORA_RESULTS.is_dir():
        pytest.skip(f"{OLORA_RESULTS} not present")
    csv_path = tmp_path / f"{run}.csv"
    assert main(["import-olora", str(OLORA_RESULTS / run), str(csv_path)]) == 0
    capsys.readouterr()
    assert main(["metrics", str(csv_path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    tasks, scores = olora_by_hand(OLORA_RESULTS / run)
    final = scores[tasks[-1]]
    assert printed["aa"] == pytest.approx(sum(final.values()) / len(tasks))
    kept = [t for t in tasks[:-1] if t in scores[t]]  # seqlora's step 3 logged nothing
    bwt = sum(final[t] - scores[t][t] for t in kept) / len(kept)
    assert printed["bwt"] == pytest.approx(bwt)
    assert printed["fwt"] is None and any("no base row" in note for note in printed["notes"])
    if run == "order1_seqlora":
        assert len(kept) == 2 and "bwt leaves out yahoo" in " ".join(printed["notes"])
        assert printed["learning_accuracy"] is None


def test_a_partial_csv_with_empty_cells_bom_and_crlf_is_read(tmp_path, capsys):
    path = tmp_path / "published.csv"
    path.write_bytes("\ufeffafter,a,b,c\r\na,80,,\r\nb,70,90,\r\nc,60,85,95\r\n".encode("utf-8"))
    matrix = read_accuracy_csv(path, partial=True)
    assert list(matrix.index) == TASKS and math.isnan(matrix.loc["a", "b"])
    with pytest.raises(ValueError, match=r":2: '' is not a number \(empty cells are allowed only"):
        read_accuracy_csv(path)  # the pipeline's own matrices stay complete
    assert main(["metrics", str(path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["aa"] == pytest.approx(80.0) and printed["bwt"] == pytest.approx(-12.5)
    assert printed["forgetting"] == pytest.approx(12.5)  # (80 - 60 + 90 - 85) / 2
    empty_base = tmp_path / "empty_base.csv"
    empty_base.write_text("after,a,b\nbase,,\na,80,\nb,60,90\n")
    assert main(["metrics", str(empty_base)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["fwt"] is None and printed["bwt"] == pytest.approx(-20.0)
    strict_bom = tmp_path / "strict.csv"
    strict_bom.write_bytes("\ufeffafter,a\r\nbase,10\r\na,70\r\n".encode("utf-8"))
    assert read_accuracy_csv(strict_bom).loc["a", "a"] == 70.0


def test_a_partial_matrix_names_what_each_null_metric_lacks():
    matrix = make_matrix([[80.0, np.nan, np.nan], [np.nan, np.nan, np.nan], [60.0, np.nan, 95.0]],
                         base=False)
    metrics, notes = cl_metrics(matrix), " | ".join(metric_notes(matrix))
    assert metrics["aa"] is None and "aa is null: missing R[c][b]" in notes
    assert metrics["learning_accuracy"] is None and "missing R[b][b]" in notes
    assert metrics["bwt"] == pytest.approx(-20.0) and "bwt leaves out b" in notes
    assert "forgetting leaves out b" in notes


def test_a_binary_or_non_utf8_matrix_file_is_named(tmp_path, capsys):
    path = tmp_path / "R.csv"
    path.write_bytes(b"\xff\xfe\x00\x01binary")
    assert main(["metrics", str(path)]) == 2
    assert f"{path}: not a UTF-8 text file" in capsys.readouterr().err


def test_import_olora_names_a_bad_run_directory(tmp_path, capsys):
    assert main(["import-olora", str(tmp_path / "nowhere"), str(tmp_path / "R.csv")]) == 2
    assert "cannot read O-LoRA results" in capsys.readouterr().err
    assert not (tmp_path / "R.csv").exists()
