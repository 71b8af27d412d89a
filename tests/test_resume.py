"""A training job killed mid-task resumes from its saved state and ends with the same weights as
an uninterrupted run; a state saved for other inputs, or a damaged one, is never trusted."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from asvd.io import write_jsonl
from asvd.train.finetune import TaskInputs, TaskPosition, finetune_task
from asvd.train.models import build_word_tokenizer, save_checkpoint
from conftest import REPO, random_llama

RECORDS = [{"id": f"r{i}", "task": "t", "labels": None, "input": f"map {w} to", "target": a}
           for i, (w, a) in enumerate([("one", "red"), ("two", "blue"), ("three", "red"), ("four", "green")])]
SETTINGS = {"epochs": 60, "batch_size": 1, "lr": 1e-2, "max_source_length": 16, "checkpoint_every": 10}
# constrained, with dropout-free AdamW + weight decay: optimizer moments and the projection matter
METHOD = {"rank_rule": {"name": "uniform", "unfreeze": 0.5}, "target_modules": "auto"}


@pytest.fixture
def start(tmp_path):
    tokenizer = build_word_tokenizer([t for r in RECORDS for t in (r["input"], r["target"])])
    save_checkpoint(random_llama(tokenizer), tokenizer, tmp_path / "base")
    write_jsonl(tmp_path / "train.jsonl", RECORDS)
    return tmp_path


def run(root, name, settings=SETTINGS, resume=True):
    out = root / name
    return finetune_task(TaskInputs(root / "base", root / "train.jsonl"), TaskPosition("t", 1, 1), METHOD,
                         settings, 0, out / "model", out / "log.json",
                         resume_file=root / "state" / "train_state.pt" if resume else None)


def weights(root, name):
    return load_file(root / name / "model" / "model.safetensors")


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


class Crash(Exception):
    pass


def crash_at(monkeypatch, batch_number):
    """Make training raise inside its ``batch_number``-th batch (1-based); return the undo."""
    import asvd.train.loop as training

    real_trim, calls = training._trim, {"n": 0}

    def crashing_trim(batch, causal):
        calls["n"] += 1
        if calls["n"] == batch_number:
            raise Crash
        return real_trim(batch, causal)

    monkeypatch.setattr(training, "_trim", crashing_trim)
    return lambda: monkeypatch.setattr(training, "_trim", real_trim)


@pytest.mark.long(4)
def test_a_run_interrupted_after_a_saved_step_resumes_to_the_same_weights(start, monkeypatch):
    reference = run(start, "reference", resume=False)
    undo = crash_at(monkeypatch, 135)  # inside step 135, after step 130's state was saved
    with pytest.raises(Crash):
        run(start, "resumed")
    assert (start / "state" / "train_state.pt").is_file() and not (start / "resumed" / "model").exists()
    undo()
    resumed = run(start, "resumed")
    assert resumed["resumed_from_step"] == 130
    assert resumed["loss"] == reference["loss"]  # the curve before the crash came from the state
    assert_same_weights(weights(start, "resumed"), weights(start, "reference"))
    assert not (start / "state").exists()  # removed once the outputs exist, its folder with it


def test_a_sigkilled_training_job_resumes_to_the_same_weights(start):
    run(start, "reference", resume=False)
    script = (
        "import sys; sys.path.insert(0, {tests!r}); from test_resume import run; from pathlib import Path;"
        "run(Path({root!r}), 'killed')"
    ).format(tests=str(REPO / "tests"), root=str(start))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=start,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = start / "state" / "train_state.pt"
    deadline = time.monotonic() + 300
    while not state.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert state.exists(), "the job ended before saving any state"
    assert not (start / "killed" / "model").exists()
    resumed = run(start, "killed")
    assert resumed["resumed_from_step"] > 0
    assert_same_weights(weights(start, "killed"), weights(start, "reference"))


def test_a_state_saved_for_other_inputs_or_damaged_is_ignored(start, monkeypatch):
    state = start / "state" / "train_state.pt"
    settings = {**SETTINGS, "epochs": 5}  # 20 steps, states at 10
    run(start, "reference", settings, resume=False)
    for case in ("other lr", "data changed", "damaged"):
        undo = crash_at(monkeypatch, 15)
        with pytest.raises(Crash):
            run(start, case, settings)
        undo()
        assert state.is_file()
        if case == "other lr":
            result = run(start, case, {**settings, "lr": 5e-3})
        else:
            if case == "data changed":
                os.utime(start / "train.jsonl", ns=(1, 1))
            else:
                state.write_bytes(state.read_bytes()[:100])  # truncated
            result = run(start, case, settings)
            assert_same_weights(weights(start, case), weights(start, "reference"))
        assert result["resumed_from_step"] == 0, case


def test_a_diverging_run_stops_naming_step_and_examples_and_keeps_its_last_state(start):
    """A learning rate of 1e30 sends the weights to infinity: training stops before the update
    that would store non-finite weights, names where, writes no output and keeps the state."""
    settings = {**SETTINGS, "lr": 1e30, "checkpoint_every": 1}
    with pytest.raises(FloatingPointError) as error:
        run(start, "diverged", settings)
    message = str(error.value)
    step = int(message.split(" at step ")[1].split("/")[0])
    assert message.startswith("t (1/1): non-finite ") and "on examples ['r" in message
    assert step > 1 and "nothing was written" in message
    state = start / "state" / "train_state.pt"
    assert f"the state after step {step - 1} stays in {state}" in message
    assert not (start / "diverged").exists()
    saved = torch.load(state, weights_only=False)
    assert saved["step"] == step - 1
    assert all(torch.isfinite(value).all() for value in saved["model"].values())
