"""Raw task data from where users keep it: O-LoRA's CL_Benchmark directory, the Hugging Face hub
or a TRACE directory.

The first two return the same raw form, ``{"sentence": str, "label": str}`` per example, sampled
with a seed and balanced over classes; TRACE's records are ``{"prompt", "answer"}`` (open-ended,
sampled without classes). :mod:`asvd.data.prepare` turns them into prepared records. Problems are
reported with the file and record number before anything is written.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

from asvd.data.tasks import Task

UNANSWERABLE = "-"  # MNLI's test file labels 131 items "-": kept, never matchable, counted


def _read_json_array(path: Path) -> list:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: invalid JSON at line {err.lineno} column {err.colno}: {err.msg}") from err
    except RecursionError:
        raise ValueError(f"{path}: JSON nested too deeply to be a list of records") from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON array")
    return data


def _read_records(path: Path, keys: tuple[str, ...]) -> list[dict]:
    """A non-empty JSON array of records with a string under each of ``keys``, nothing else kept."""
    records = _read_json_array(path)
    if not records:
        raise ValueError(f"{path}: empty split")
    shape = ", ".join(f'"{k}": str' for k in keys)
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise ValueError(f"{path}: record {number} is not {{{shape}}}")
        for key in keys:
            value = record.get(key)
            if not isinstance(value, str):
                raise ValueError(f"{path}: record {number} has {key!r} = {value!r}, not a string "
                                 f"(records are {{{shape}}})")
            if not value.strip():
                raise ValueError(f"{path}: record {number} has an empty {key!r}")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError(f"{path}: record {number} has a lone surrogate in {key!r} "
                                 "(an unpaired \\ud800-\\udfff escape), not text") from None
    return [{k: record[k] for k in keys} for record in records]


def olora_labels(root: str | Path, task: Task) -> list[str]:
    """The task's labels in its ``labels.json`` order (the order O-LoRA's prompts list them)."""
    labels_path = Path(root) / task.olora_path / "labels.json"
    labels = _read_json_array(labels_path)
    if sorted(labels) != sorted(task.labels):
        raise ValueError(f"{labels_path}: labels {labels} are not the label set of {task.name} "
                         f"{list(task.labels)}")
    return labels


def balanced_sample(records: Sequence[dict], per_class: int | None, seed: int) -> list[dict]:
    """Up to ``per_class`` records of every label (all if None), seeded, in a seeded order.

    Unanswerable records (label "-") are subsampled in the proportion the answerable ones were,
    so a capped test set keeps the original share of them.
    """
    rng = random.Random(seed)
    by_label: dict[str, list[dict]] = {}
    for record in records:
        by_label.setdefault(record["label"], []).append(record)
    unanswerable = by_label.pop(UNANSWERABLE, [])
    chosen = []
    for label in sorted(by_label):
        group = by_label[label]
        chosen.extend(group if per_class is None or len(group) <= per_class
                      else rng.sample(group, per_class))
    answerable = sum(map(len, by_label.values()))
    keep = round(len(unanswerable) * len(chosen) / answerable) if answerable else 0
    chosen.extend(rng.sample(unanswerable, keep))
    rng.shuffle(chosen)
    return chosen


def check_classes(records: Sequence[dict], where: str) -> None:
    """A classification split needs at least two answerable classes to mean anything."""
    classes = {r["label"] for r in records} - {UNANSWERABLE}
    if len(classes) < 2:
        raise ValueError(f"{where}: only {len(classes)} class ({sorted(classes)}); a task needs >= 2")


def olora_examples(root: str | Path, task: Task, split: str, per_class: int | None,
                   seed: int) -> list[dict]:
    records, _ = read_olora_split(root, task, split)
    check_classes(records, str(Path(root) / task.olora_path / f"{split}.json"))
    return balanced_sample(records, per_class, seed)


def read_olora_split(root: str | Path, task: Task, split: str) -> tuple[list[dict], list[str]]:
    """One split of one task from an O-LoRA ``CL_Benchmark`` directory, checked record by record.

    Returns the records and the task's label list from its ``labels.json``, which must hold the
    task's label set (in any order).
    """
    folder = Path(root) / task.olora_path
    labels = olora_labels(root, task)
    path = folder / f"{split}.json"
    records = _read_records(path, ("sentence", "label"))
    allowed = set(labels) | {UNANSWERABLE}
    for number, record in enumerate(records, start=1):
        if record["label"] not in allowed:
            raise ValueError(f"{path}: record {number} has label {record['label']!r}, not in "
                             f"{labels}")
    return records, labels


def olora_general_split(root: str | Path, task: Task) -> str:
    """The split a general-ability task is drawn from: ``train``, or ``test`` where a
    CL_Benchmark copy ships only that (the shared subset's dbpedia)."""
    folder = Path(root) / task.olora_path
    return "train" if (folder / "train.json").exists() or not (folder / "test.json").exists() else "test"


def held_out_split(examples: Sequence[dict], train_per_class: int, test_per_class: int
                   ) -> tuple[list[dict], list[dict]]:
    """Disjoint train/test parts of one seeded, balanced sample, class by class.

    Each class gives ``test_per_class`` examples to the test part and up to ``train_per_class``
    of the rest to training; a class too small for both keeps at least three quarters for
    training.
    The sample's order is kept, so the split is as seeded as the sample.
    """
    sizes = Counter(example["label"] for example in examples)
    held = {label: min(test_per_class, max(size - train_per_class, size // 4))
            for label, size in sizes.items()}
    seen: Counter = Counter()
    train, test = [], []
    for example in examples:
        rank = seen[example["label"]]
        seen[example["label"]] += 1
        if rank < held[example["label"]]:
            test.append(example)
        elif rank < held[example["label"]] + train_per_class:
            train.append(example)
    return train, test


def hub_examples(task: Task, split: str, per_class: int | None, seed: int,
                 load_dataset: Callable | None = None, overrides: Mapping | None = None) -> list[dict]:
    """One split of one task from the Hugging Face hub, formatted like O-LoRA's sentences.

    ``overrides`` may replace any field of the task's :class:`asvd.data.tasks.HubSource` (e.g. a mirror's
    ``path``); ``load_dataset`` defaults to :func:`datasets.load_dataset` (tests pass a fake).
    """
    source = replace(task.hub, **(overrides or {}))
    if load_dataset is None:
        from datasets import load_dataset
    split_name = source.train_split if split == "train" else source.test_split
    where = f"hub dataset {source.path}" + (f"/{source.name}" if source.name else "") + f" [{split_name}]"
    dataset = load_dataset(source.path, source.name, split=split_name)
    records = []
    for number, row in enumerate(dataset, start=1):
        label_id = row[source.label_field]
        if not isinstance(label_id, int) or not 0 <= label_id < len(source.labels):
            if label_id == -1:
                continue  # hidden test labels (GLUE test splits)
            raise ValueError(f"{where}: record {number} has label {label_id!r}, expected 0.."
                             f"{len(source.labels) - 1}")
        try:
            sentence = source.text.format(**row)
        except KeyError as err:
            raise ValueError(f"{where}: record {number} lacks field {err} used by the text format "
                             f"{source.text!r}") from err
        records.append({"sentence": sentence, "label": source.labels[label_id]})
    if not records:
        raise ValueError(f"{where}: empty split")
    check_classes(records, where)
    return balanced_sample(records, per_class, seed)


def read_trace_split(root: str | Path, task: str, split: str) -> list[dict]:
    """One split (``train``/``eval``/``test``) of one TRACE task: ``<root>/<task>/<split>.json``,
    a JSON array of ``{"prompt": str, "answer": str}``, checked record by record."""
    path = Path(root) / task / f"{split}.json"
    return _read_records(path, ("prompt", "answer"))


def trace_examples(root: str | Path, task: str, split: str, limit: int | None, seed: int) -> list[dict]:
    """Up to ``limit`` records of a TRACE split (all if None), a seeded sample in file order."""
    records = read_trace_split(root, task, split)
    if limit is None or len(records) <= limit:
        return records
    keep = sorted(random.Random(seed).sample(range(len(records)), limit))
    return [records[i] for i in keep]
