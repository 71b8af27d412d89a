"""Faults lose nothing: a full disk while writing a checkpoint leaves the previous one intact and
says so."""

import errno
import os
import subprocess
from pathlib import Path

import pytest
import torch

from asvd.io import atomic_path, remove_with_emptied_folders
from asvd.train.models import build_word_tokenizer, load_checkpoint, save_checkpoint
from conftest import random_llama

WORDS = ["map one to red", "map two to blue"]


def checkpoint_files(path: Path) -> dict[str, bytes]:
    return {str(f.relative_to(path)): f.read_bytes() for f in sorted(path.rglob("*")) if f.is_file()}


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_a_full_disk_while_saving_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    """A writer that fills the disk halfway through the weights (patched: portable)."""
    tokenizer = build_word_tokenizer(WORDS)
    save_checkpoint(random_llama(tokenizer), tokenizer, tmp_path / "model")
    before = checkpoint_files(tmp_path / "model")
    model = random_llama(tokenizer, hidden_size=64)

    def fills_the_disk(directory, **kwargs):
        (Path(directory) / "model.safetensors").write_bytes(b"\0" * 1000)  # a partial file
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(model, "save_pretrained", fills_the_disk)
    with pytest.raises(OSError, match=r"disk full while writing .*model \(.* MiB free") as error:
        save_checkpoint(model, tokenizer, tmp_path / "model")
    assert error.value.errno == errno.ENOSPC and "previous model is unchanged" in str(error.value)
    assert checkpoint_files(tmp_path / "model") == before
    assert leftovers(tmp_path) == []
    load_checkpoint(tmp_path / "model")  # still loads


def test_other_write_errors_pass_unchanged(tmp_path):
    with pytest.raises(PermissionError), atomic_path(tmp_path / "out.json"):
        raise PermissionError(errno.EACCES, "denied")
    assert list(tmp_path.iterdir()) == []


def test_a_removed_state_takes_the_folders_it_leaves_empty_and_no_other(tmp_path):
    finished = tmp_path / "resume" / "asvd" / "order1" / "seed0" / "step1" / "train_state.pt"
    running = tmp_path / "resume" / "asvd" / "order1" / "seed1" / "step1" / "train_state.pt"
    for state in (finished, running):
        state.parent.mkdir(parents=True)
        state.write_bytes(b"state")
    remove_with_emptied_folders(finished, tmp_path)
    assert not (tmp_path / "resume" / "asvd" / "order1" / "seed0").exists()
    assert running.read_bytes() == b"state"  # another job's state and its folders stay
    remove_with_emptied_folders(running, tmp_path)
    assert list(tmp_path.iterdir()) == []  # every emptied folder up to ``keep``, which stays
    remove_with_emptied_folders(running, tmp_path)  # already gone: nothing to do
    elsewhere = tmp_path / "scratch" / "train_state.pt"  # shares only "/" with the outputs
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(b"state")
    remove_with_emptied_folders(elsewhere, "/")
    assert not elsewhere.exists() and (tmp_path / "scratch").is_dir()


def test_a_write_beside_a_folder_just_removed_as_empty_makes_it_again(tmp_path, monkeypatch):
    """Another job may prune an emptied resume folder between a writer's mkdir and its temporary."""
    import tempfile

    target, real_mkdtemp, calls = tmp_path / "a" / "state.pt", tempfile.mkdtemp, []

    def racing_mkdtemp(**kwargs):
        if not calls:
            calls.append(1)
            (tmp_path / "a").rmdir()
        return real_mkdtemp(**kwargs)

    monkeypatch.setattr(tempfile, "mkdtemp", racing_mkdtemp)
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"state")
    assert target.read_bytes() == b"state" and calls


@pytest.fixture
def small_tmpfs(tmp_path):
    """A real 1 MiB file system (root only)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_really_full_disk_keeps_the_previous_checkpoint(small_tmpfs):
    """A checkpoint that fits, then one about twice the file system's size."""
    tokenizer = build_word_tokenizer(WORDS)
    save_checkpoint(random_llama(tokenizer, hidden_size=16, layers=1), tokenizer, small_tmpfs / "model")
    before = checkpoint_files(small_tmpfs / "model")
    large = random_llama(tokenizer, hidden_size=256, layers=2)  # about 2 MB of fp32 weights
    with pytest.raises(OSError, match="disk full while writing") as error:
        save_checkpoint(large, tokenizer, small_tmpfs / "model")
    assert error.value.errno == errno.ENOSPC
    assert checkpoint_files(small_tmpfs / "model") == before
    assert leftovers(small_tmpfs) == []


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "delete"])
def test_a_damaged_checkpoint_is_detected_moved_aside_and_never_used(tmp_path, damage):
    tokenizer = build_word_tokenizer(WORDS)
    save_checkpoint(random_llama(tokenizer), tokenizer, tmp_path / "model")
    weights = tmp_path / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    if damage == "flip a byte":
        data[len(data) // 2] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif damage == "truncate":
        weights.write_bytes(bytes(data[: len(data) // 3]))
    else:
        weights.unlink()
    with pytest.raises(ValueError, match=r"model\.safetensors: content does not match its recorded sha256"):
        load_checkpoint(tmp_path / "model")
    assert not (tmp_path / "model").exists()  # a later stage cannot pick it up
    assert (tmp_path / "model.corrupt-1" / "sha256sums.txt").is_file()  # kept for inspection
    save_checkpoint(random_llama(tokenizer), tokenizer, tmp_path / "model")
    load_checkpoint(tmp_path / "model")  # a recomputed one is used


def test_checksums_cover_every_file_and_verify_with_sha256sum(tmp_path):
    tokenizer = build_word_tokenizer(WORDS)
    save_checkpoint(random_llama(tokenizer), tokenizer, tmp_path / "model")
    listed = {line.split("  ", 1)[1] for line in (tmp_path / "model" / "sha256sums.txt").read_text().splitlines()}
    files = {p.relative_to(tmp_path / "model").as_posix() for p in (tmp_path / "model").rglob("*")
             if p.is_file() and p.name != "sha256sums.txt"}
    assert listed == files and "model.safetensors" in listed
    if subprocess.run(["which", "sha256sum"], capture_output=True).returncode == 0:
        subprocess.run(["sha256sum", "--quiet", "-c", "sha256sums.txt"], cwd=tmp_path / "model", check=True)


def test_what_a_killed_writer_left_is_removed_by_the_next_write(tmp_path):
    from asvd.io import atomic_dir, write_json

    (tmp_path / ".summary.json.a1b2.tmp").write_text("{half")  # SIGKILL before the rename
    (tmp_path / ".model.x9.tmp").mkdir()
    (tmp_path / ".model.x9.tmp.old").mkdir()
    (tmp_path / ".other.json.c3.tmp").write_text("{")  # another output's: left alone
    write_json(tmp_path / "summary.json", {"aa": 1})
    with atomic_dir(tmp_path / "model") as tmp:
        (tmp / "weights").write_text("w")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.json.c3.tmp", "model", "summary.json"]


@pytest.mark.parametrize("umask", [0o022, 0o007, 0o077])
def test_outputs_and_checkpoints_take_the_modes_the_umask_gives(tmp_path, umask):
    """Results on a shared cluster are as readable as the user's umask makes files: not the
    private 0700 of a temporary folder nor the 0600 safetensors gives its files."""
    from asvd.io import atomic_dir, write_json
    from asvd.method.svd import compute_svd, save_svd

    old = os.umask(umask)
    try:
        write_json(tmp_path / "summary.json", {"aa": 1})
        tokenizer = build_word_tokenizer(WORDS)
        save_checkpoint(random_llama(tokenizer), tokenizer, tmp_path / "model")
        save_svd(tmp_path / "svd.safetensors", compute_svd({"w": torch.eye(3)}, progress=False), "stamp")
    finally:
        os.umask(old)
    for path in [tmp_path / "summary.json", tmp_path / "svd.safetensors", tmp_path / "model",
                 *(tmp_path / "model").iterdir()]:
        expected = (0o777 if path.is_dir() else 0o666) & ~umask
        assert path.stat().st_mode & 0o777 == expected, (path.name, oct(path.stat().st_mode))
    outside = tmp_path.parent / f"{tmp_path.name}-user-file"
    outside.write_text("mine")
    os.chmod(outside, 0o600)
    with atomic_dir(tmp_path / "linked") as tmp:  # a link in an output is never followed
        (tmp / "link").symlink_to(outside)
    assert outside.stat().st_mode & 0o777 == 0o600


def test_a_rebuilt_svd_cache_is_byte_identical(tmp_path):
    """Its metadata is one key (safetensors writes several in a random order)."""
    from asvd.method.svd import compute_svd, read_stamp, save_svd

    svd = compute_svd({"a": torch.arange(12.0).reshape(3, 4), "b": torch.eye(3)}, progress=False)
    written = set()
    for attempt in range(6):
        save_svd(tmp_path / "svd.safetensors", svd, "stamp")
        written.add((tmp_path / "svd.safetensors").read_bytes())
    assert len(written) == 1 and read_stamp(tmp_path / "svd.safetensors") == "stamp"
