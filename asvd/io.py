"""Atomic file output and small readers shared by every stage.

Every output of the pipeline is written to a temporary sibling and renamed into place, so a
killed job never leaves a partial file that a later stage (or Snakemake) would take as complete.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator


@contextlib.contextmanager
def _named_disk_full(target: Path) -> Iterator[None]:
    """Turn a full disk into an error that says which output and how much room is left."""
    try:
        yield
    except Exception as err:
        # safetensors' writer reports the OS error as a SafetensorError carrying its text
        full = (err.errno in (errno.ENOSPC, errno.EDQUOT) if isinstance(err, OSError)
                else "No space left on device" in str(err))
        if not full:
            raise
        free = shutil.disk_usage(target.parent).free / 2**20
        raise OSError(errno.ENOSPC if not isinstance(err, OSError) else err.errno, f"disk full while writing {target} ({free:.1f} MiB free on its "
                                 f"file system); nothing of it was kept and any previous {target.name} "
                                 f"is unchanged") from err


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _follow_umask(path: Path) -> None:
    """Give ``path`` (and all under it) the modes a plain ``open`` or ``mkdir`` would: temporary
    folders are private (0700) and some writers (safetensors) make private files (0600), which
    would hide a shared cluster's results from the rest of the group. Links are left alone."""
    mask = _current_umask()
    if not path.is_dir() or path.is_symlink():
        if not path.is_symlink():
            os.chmod(path, 0o666 & ~mask)
        return
    for folder, _, files in os.walk(path):  # does not descend into linked folders
        os.chmod(folder, 0o777 & ~mask)
        for name in files:
            if not (Path(folder) / name).is_symlink():
                os.chmod(Path(folder) / name, 0o666 & ~mask)


def _private_folder_beside(target: Path) -> Path:
    """A new private folder in ``target``'s parent, which is made first, and made again should
    another job remove it as empty in between (:func:`remove_with_emptied_folders`)."""
    attempts = 3
    while True:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            return Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        except FileNotFoundError:
            attempts -= 1
            if not attempts:
                raise


def remove_with_emptied_folders(path: str | os.PathLike, keep: str | os.PathLike) -> None:
    """Delete the file ``path``, then each folder between it and ``keep`` that this leaves
    empty: a finished job's resume state leaves no empty folders behind. A folder that still
    holds something (another job's state) stays, and so does everything above it."""
    path, keep = Path(path).absolute(), Path(keep).absolute()
    path.unlink(missing_ok=True)
    if keep == Path(keep.anchor):  # nothing shared but the file system's root: no folder is ours
        return
    for folder in path.parents:
        if keep not in folder.parents:
            return
        try:
            folder.rmdir()
        except FileNotFoundError:  # another job removed it as empty: its parent may be too
            continue
        except OSError:  # not empty
            return


def _sweep(target: Path) -> None:
    """Remove what a killed writer of ``target`` left (its temporaries; one job at a time
    writes an output, so none of them is in use)."""
    for stale in target.parent.glob(f".{glob.escape(target.name)}.*.tmp*"):
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path (in a private folder beside ``path``); rename it onto ``path`` only
    on success."""
    target = Path(path)
    _sweep(target)
    # the file is made in a private folder beside ``path``: a writer's own temporaries (safetensors
    # writes ``.tmp`` and six random characters beside the file it is given, then renames it) stay
    # inside it, so a killed job's are swept with it by ``_sweep`` on the rerun
    tmp_dir = _private_folder_beside(target)
    tmp_path = tmp_dir / target.name
    try:
        with _named_disk_full(target):
            yield tmp_path
        _follow_umask(tmp_path)
        os.replace(tmp_path, target)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; move it onto ``path`` only on success.

    A previous ``path`` is moved aside before the swap and deleted after it, so at every moment
    one complete version exists.
    """
    target = Path(path)
    _sweep(target)
    tmp_path = _private_folder_beside(target)
    old = tmp_path.with_name(tmp_path.name + ".old")
    try:
        with _named_disk_full(target):
            yield tmp_path
        _follow_umask(tmp_path)
        if target.exists():
            os.replace(target, old)
        os.replace(tmp_path, target)
    finally:
        for leftover in (tmp_path, old):
            if leftover.exists():
                shutil.rmtree(leftover)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> None:
    write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    records = []
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{line_no}: not valid JSON ({err})") from err
    return records


def sha256_bytes(chunks: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """Content hash of a file, read in 16 MiB blocks (checkpoints are gigabytes)."""
    with open(path, "rb") as handle:
        return sha256_bytes(iter(lambda: handle.read(1 << 24), b""))


CHECKSUMS = "sha256sums.txt"  # `sha256sum -c sha256sums.txt` verifies a directory by hand too


def write_checksums(directory: str | os.PathLike) -> None:
    """Record the hash of every file under ``directory`` in its CHECKSUMS file."""
    root = Path(directory)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != CHECKSUMS)
    lines = "".join(f"{file_sha256(p)}  {p.relative_to(root).as_posix()}\n" for p in files)
    (root / CHECKSUMS).write_text(lines, encoding="utf-8")


def move_aside(path: str | os.PathLike) -> Path:
    """Rename a damaged file or directory to ``<name>.corrupt-<n>`` (the first free n): kept for
    inspection, never used again, and missing for the workflow, which recomputes it."""
    path = Path(path)
    n = 1
    while (aside := path.with_name(f"{path.name}.corrupt-{n}")).exists():
        n += 1
    os.replace(path, aside)
    return aside


def verify_checksums(directory: str | os.PathLike) -> None:
    """Check a directory against its CHECKSUMS file (a directory without one is not checked).

    A changed, truncated or missing file moves the directory aside (kept, renamed
    ``<name>.corrupt-<n>``) so that it is never used again and the workflow recomputes it on its
    next run, and raises an error naming the file.
    """
    root = Path(directory)
    listing = root / CHECKSUMS
    if not listing.is_file():
        return
    for line in listing.read_text(encoding="utf-8").splitlines():
        expected, name = line.split("  ", 1)
        path = root / name
        actual = file_sha256(path) if path.is_file() else "missing"
        if actual != expected:
            aside = move_aside(root)
            raise ValueError(f"{path}: content does not match its recorded sha256 ({expected[:12]}..., "
                             f"now {actual[:12]}...); moved the directory to {aside} and will not use it: "
                             f"run the workflow again to recompute it")


def read_extra_tensors(checkpoint: str | os.PathLike, name: str) -> dict:
    """The tensors a checkpoint stores beside its weights in file ``name`` (a method's state,
    e.g. EWC's Fisher; empty when a checkpoint has none, e.g. the base model), as torch tensors."""
    from safetensors.torch import load_file

    path = Path(checkpoint) / name
    return load_file(path) if path.is_file() else {}
