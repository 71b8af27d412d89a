"""Damaged results are found by their structure, moved aside by the sweep, refused by readers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure
from safetensors.numpy import save_file

from asvd.io import write_checksums
from asvd.pipeline.damage import check_readable, damage, sweep


def whole_files(folder: Path) -> dict[str, Path]:
    """One whole result of every kind the sweep checks, as the stages write them."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"w.U": np.eye(3, dtype=np.float32), "w.S": np.ones(3, dtype=np.float32)},
              str(folder / "svd.safetensors"), metadata={"format": "asvd-svd-v1"})
    (folder / "eval.json").write_text(json.dumps({"scores": {"a": {"score": 50.0}}}, indent=2))
    (folder / "train.jsonl").write_text('{"id": 0, "input": "x"}\n{"id": 1, "input": "y"}\n')
    (folder / "accuracy_matrix.csv").write_text("after,a,b\nbase,1,2\na,3,4\nb,5,6\n")
    (folder / "summary.md").write_text("| a |\n|---|\n")
    figure = Figure(figsize=(2, 2))
    figure.subplots().plot([0, 1], [1, 0])
    figure.savefig(folder / "figure.png", format="png")
    figure.savefig(folder / "figure.pdf", format="pdf")
    model = folder / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes((folder / "svd.safetensors").read_bytes())
    write_checksums(model)
    return {path.name: path for path in folder.iterdir()}


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> dict[str, Path]:
    return whole_files(tmp_path_factory.mktemp("whole"))


def test_whole_results_pass(whole):
    assert {name: damage(path) for name, path in whole.items()} == dict.fromkeys(whole)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["svd.safetensors", "eval.json", "figure.png"]), cut=st.floats(0, 1))
def test_every_truncation_of_a_binary_or_json_result_is_damage(whole, tmp_path, name, cut):
    data = whole[name].read_bytes()
    cut_at = int(cut * (len(data) - 1))  # always strictly shorter
    truncated = tmp_path / name
    truncated.write_bytes(data[:cut_at])
    assert damage(truncated) is not None


@pytest.mark.parametrize("name, content, reason", [
    ("train.jsonl", '{"id": 0}\n{"id": 1, "inp', "cut short"),
    ("train.jsonl", "", "no records"),
    ("accuracy_matrix.csv", "after,a,b\nbase,1,2\na,3", "fields"),
    ("accuracy_matrix.csv", "", "empty"),
    ("summary.md", "", "empty"),
    ("summary.html", "", "empty"),
    ("figure.pdf", "%PDF-1.4\n1 0 obj", "not a whole PDF"),
    ("eval.json", b"\xff\xfe{}", "not UTF-8"),
])
def test_cut_or_empty_text_results_are_damage(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert reason in damage(path)


@pytest.mark.parametrize("harm, reason", [
    (lambda model: (model / "sha256sums.txt").unlink(), "without its sha256sums.txt"),
    (lambda model: (model / "config.json").unlink(), "config.json listed in sha256sums.txt is missing"),
    (lambda model: [p.unlink() for p in model.iterdir()], "empty checkpoint directory"),
])
def test_a_checkpoint_missing_its_listing_or_files_is_damage(tmp_path, harm, reason):
    model = whole_files(tmp_path)["model"]
    harm(model)
    assert reason in damage(model)


def test_a_file_where_a_checkpoint_directory_belongs_is_damage(tmp_path):
    (tmp_path / "model").write_text("not a directory")
    assert damage(tmp_path / "model") == "a file where a checkpoint directory belongs"


def test_sweep_moves_damage_aside_and_leaves_everything_else(tmp_path):
    root = tmp_path / "results" / "study"
    step = root / "seqft" / "order1" / "seed0" / "step1"
    files = whole_files(step)
    (files["model"] / "sha256sums.txt").unlink()
    files["svd.safetensors"].write_bytes(files["svd.safetensors"].read_bytes()[:-10])
    for skipped in (root / "logs" / "x.json", root / "resume" / "state.json", step / ".eval.json.tmp"):
        skipped.parent.mkdir(parents=True, exist_ok=True)
        skipped.write_text("{cut")
    moved = sweep(root)
    assert [path for path, _ in moved] == [str(step / "model"), str(step / "svd.safetensors")]
    assert all("to be rebuilt" in line for _, line in moved)
    assert (step / "model.corrupt-1").is_dir() and (step / "svd.safetensors.corrupt-1").is_file()
    assert not (step / "model").exists() and not (step / "svd.safetensors").exists()
    assert (root / "logs" / "x.json").exists() and (step / ".eval.json.tmp").exists()
    assert sweep(root) == []  # what was moved aside is not swept again
    assert sweep(tmp_path / "no such experiment") == []


def test_readers_refuse_a_damaged_file_naming_it(tmp_path):
    cache = tmp_path / "svd.safetensors"
    cache.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    with pytest.raises(ValueError, match=f"{cache}: .*run the workflow again"):
        check_readable(cache)


def test_the_sweep_never_follows_a_link_nor_touches_what_the_study_does_not_own(tmp_path):
    """A user's folder linked inside results/ and a file the study does not declare keep their
    names, even damaged; only a declared output is moved aside."""
    root = tmp_path / "results" / "study"
    step = root / "seqft" / "order1" / "seed0" / "step1"
    files = whole_files(step)
    files["svd.safetensors"].write_bytes(files["svd.safetensors"].read_bytes()[:-10])
    mine = tmp_path / "my_runs"
    (mine / "model").mkdir(parents=True)
    (mine / "summary.json").write_text("{cut")  # damaged by the sweep's measure
    (root / "linked").symlink_to(mine, target_is_directory=True)
    (root / "notes.json").write_text("{cut")  # the user's, not declared
    owned = {str(step / "svd.safetensors"), str(step / "model")}
    moved = sweep(root, owned=owned)
    assert [path for path, _ in moved] == [str(step / "svd.safetensors")]
    assert sorted(p.name for p in mine.iterdir()) == ["model", "summary.json"]
    assert (root / "notes.json").exists() and (root / "linked").is_symlink()
    sweep(root)  # without a declared set every result is checked, but still no link followed
    assert sorted(p.name for p in mine.iterdir()) == ["model", "summary.json"]
