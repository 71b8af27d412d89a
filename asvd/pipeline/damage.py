"""Damaged results are found before anything uses them, moved aside, and so rebuilt.

Every output is written atomically (:mod:`asvd.io`), so a result that is truncated, emptied,
stripped of its checksum file or replaced by something of the wrong kind was damaged after it
was written: by a disk, a person or another tool. The workflow sweeps its results folder
whenever it starts (dry runs included): each damaged result is renamed ``<name>.corrupt-<n>``
(kept, never used) and logged; the workflow then asks for it as a target, so Snakemake rebuilds
it (a missing intermediate alone would not make Snakemake rerun anything) and, the new file being
newer, everything made from it. The checks here are structural and cheap (headers, trailers, parses, the
checksum file's listing); a checkpoint's content hashes are checked in full when a stage loads it
(:func:`asvd.io.verify_checksums`), and an SVD cache's weight stamp when training reads it.
"""

from __future__ import annotations

import csv
import json
import os
import struct
from pathlib import Path
from typing import Callable, Collection

from asvd.io import CHECKSUMS, move_aside

CHECKPOINT_DIR = "model"  # every checkpoint the workflow writes is a directory of this name
# folders that hold no result a later stage reads: job logs, Snakemake benchmarks, resume states
NOT_SWEPT = {"logs", "benchmarks", "resume"}
_PNG_MAGIC, _PNG_END = b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"


def _checkpoint(path: Path) -> str | None:
    if not path.is_dir():
        return "a file where a checkpoint directory belongs"
    if not any(path.iterdir()):
        return "an empty checkpoint directory"
    listing = path / CHECKSUMS
    if not listing.is_file():
        return f"a checkpoint without its {CHECKSUMS} (its weights cannot be verified)"
    for line in listing.read_text(encoding="utf-8", errors="replace").splitlines():
        expected, sep, name = line.partition("  ")
        if not sep or len(expected) != 64:
            return f"{CHECKSUMS} line {line[:60]!r} is not '<sha256>  <file>'"
        if not (path / name).is_file():
            return f"{name} listed in {CHECKSUMS} is missing"
    return None


def _safetensors(path: Path) -> str | None:
    """The 8-byte header length, the JSON header and the size its offsets imply."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            return f"{size} bytes, shorter than a safetensors header"
        (length,) = struct.unpack("<Q", head)
        if length > size - 8:
            return f"header of {length} bytes in a file of {size}"
        try:
            header = json.loads(handle.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            return f"unreadable safetensors header ({err})"
    ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
    if 8 + length + max(ends, default=0) != size:
        return f"{size} bytes where its header describes {8 + length + max(ends, default=0)}"
    return None


def _json(path: Path) -> str | None:
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        return f"not valid JSON ({err})"
    return None


def _jsonl(path: Path) -> str | None:
    """Records are written whole, one per line: a truncation leaves a last line cut short."""
    text = path.read_text(encoding="utf-8", errors="strict")
    if not text.strip():
        return "no records"
    if not text.endswith("\n"):
        return "the last record is cut short (no final newline)"
    try:
        json.loads(text.rstrip("\n").rsplit("\n", 1)[-1])
    except json.JSONDecodeError as err:
        return f"the last record is not valid JSON ({err})"
    return None


def _csv(path: Path) -> str | None:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.reader(handle) if row]
    if not rows:
        return "empty (not even a header)"
    widths = {len(row) for row in rows}
    return None if len(widths) == 1 else f"rows of {sorted(widths)} fields (cut short?)"


def _text(path: Path) -> str | None:
    return None if path.read_text(encoding="utf-8").strip() else "empty"


def _png(path: Path) -> str | None:
    data = path.read_bytes()
    return None if data.startswith(_PNG_MAGIC) and data.endswith(_PNG_END) else "not a whole PNG"


def _pdf(path: Path) -> str | None:
    with open(path, "rb") as handle:
        start = handle.read(5)
        handle.seek(max(0, path.stat().st_size - 1024))
        tail = handle.read()
    return None if start == b"%PDF-" and b"%%EOF" in tail else "not a whole PDF"


_FILE_CHECKS: dict[str, Callable[[Path], str | None]] = {
    ".safetensors": _safetensors, ".json": _json, ".jsonl": _jsonl, ".csv": _csv,
    ".md": _text, ".tex": _text, ".html": _text, ".png": _png, ".pdf": _pdf,
}


def damage(path: str | os.PathLike) -> str | None:
    """Why the result at ``path`` cannot be used, or None if it looks whole."""
    path = Path(path)
    try:
        if path.name == CHECKPOINT_DIR:
            return _checkpoint(path)
        if path.is_dir():
            return None
        check = _FILE_CHECKS.get(path.suffix)
        return check(path) if check else None
    except UnicodeDecodeError as err:
        return f"not UTF-8 text ({err.reason} at byte {err.start})"
    except (OSError, ValueError, KeyError, TypeError, IndexError) as err:
        return f"unreadable ({err})"


def _results(folder: Path, top: bool = True):
    """Every result under ``folder``: checkpoint directories whole, other files one by one;
    temporaries (dot names), what was already moved aside, the top-level NOT_SWEPT folders and
    symbolic links (a link leads out of the study: what is behind it is not its to move) are
    skipped."""
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or ".corrupt-" in entry.name or (top and entry.name in NOT_SWEPT):
            continue
        if entry.is_symlink():
            continue
        if entry.name == CHECKPOINT_DIR or not entry.is_dir():
            yield entry
        else:
            yield from _results(entry, top=False)


def sweep(root: str | os.PathLike, owned: Collection[str] | None = None) -> list[tuple[str, str]]:
    """Move every damaged result under an experiment's folder ``root`` aside; per result moved,
    its path and a line saying what, why and where to. With ``owned`` (the study's declared
    outputs, as paths under ``root``) nothing else is checked or moved."""
    root = Path(root)
    if not root.is_dir():
        return []
    moved = []
    for path in _results(root):
        if owned is not None and str(path) not in owned:
            continue
        reason = damage(path)
        if reason is not None:
            aside = move_aside(path)
            moved.append((str(path), f"{path}: {reason}; moved to {aside.name}, to be rebuilt"))
    return moved


def check_readable(path: str | os.PathLike) -> None:
    """Refuse a damaged result where a stage reads it, naming the file."""
    reason = damage(path)
    if reason is not None:
        raise ValueError(f"{path}: {reason}; run the workflow again, which moves it aside and "
                         "rebuilds it")
