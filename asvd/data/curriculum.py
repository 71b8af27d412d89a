"""Teaching a base model to answer with one of the options its prompt lists.

A model instruction-tuned on a mixture of tasks learns each task's label words; asked a new task,
it answers the mixture's words, never the new task's options. Two additions to the mixture's
training part address that (``benchmark.general``), each making "copy a listed option" the only
way to lower the loss on its records:

- ``copy_records``: "which option appears in the text?" records: 2-4 option words, a text of
  filler words with the answer among them, the answer as target. The easiest form of reading the
  options.
- ``renamed_share``: that share of the mixture's records get new label words (drawn per record,
  every task's, COPA's A/B too, so no constant answer remains to fall back on), in the option
  line and the target alike, the options shuffled.

New names are drawn from the words of the mixture's own texts (lowercase, 4-10 letters, no task's
label word, no filler): thousands of them, so the answers cannot be learned as one small set of
words. A fixed pool of 65 nouns was (2026-12-05): the base then answered pool words to every
prompt of every task. ``FILLERS`` are function words, never names, so a copy record's text
holds exactly one option.
"""

from __future__ import annotations

import random
import re
from typing import Callable, Iterable, Mapping, Sequence

from asvd.data.tasks import TASKS

FILLERS = (
    "the", "a", "of", "and", "to", "in", "is", "was", "it", "for", "on", "with", "as", "at", "by",
    "this", "that", "from", "or", "but", "not", "are", "be", "one", "all", "there", "when", "up",
    "out", "so", "then", "some", "her", "his", "they", "we", "you", "our", "its", "very",
)
MIN_NAMES = 50
_NAME = re.compile(r"\b[a-z]{4,10}\b")
COPY_TASK = "copy_option"
COPY_INSTRUCTION = "Which option appears in the text?"
# COPA's prompt names its options in its own text (no option line): what renaming rewrites
_COPA_CHOICE = "Choose one between A and B."
_COPA_LINES = ("\nA: ", "\nB: ")


def name_pool(texts: Iterable[str]) -> list[str]:
    """The words new label names are drawn from: every lowercase word of 4-10 letters in
    ``texts`` that is neither a filler nor part of any task's label."""
    taken = {word.lower() for task in TASKS.values() for label in task.labels
             for word in re.findall(r"[A-Za-z]+", label)} | set(FILLERS)
    return sorted({word for text in texts for word in _NAME.findall(text)} - taken)


def copy_examples(count: int, seed: int, names: Sequence[str]) -> list[dict]:
    """``count`` copy examples ``{"sentence", "label", "labels"}``: 2-4 options drawn from
    ``names``, the answer placed among 4-12 filler words."""
    rng = random.Random(f"{seed}-copy")
    examples = []
    for _ in range(count):
        options = rng.sample(names, rng.randint(2, 4))
        answer = rng.choice(options)
        text = rng.choices(FILLERS, k=rng.randint(4, 12))
        text.insert(rng.randint(0, len(text)), answer)
        examples.append({"sentence": " ".join(text), "label": answer, "labels": options})
    return examples


def rename_copa(sentence: str, names: Mapping[str, str], where: str) -> str:
    """COPA's text with its options A and B called ``names["A"]`` and ``names["B"]``."""
    if sentence.count(_COPA_CHOICE) != 1 or any(sentence.count(line) != 1 for line in _COPA_LINES):
        raise ValueError(f"{where}: COPA text without its 'Choose one between A and B.' and "
                         f"'A: ' / 'B: ' lines, cannot rename its options: {sentence[:80]!r}")
    sentence = sentence.replace(_COPA_CHOICE, f"Choose one between {names['A']} and {names['B']}.")
    return sentence.replace(_COPA_LINES[0], f"\n{names['A']}: ").replace(_COPA_LINES[1], f"\n{names['B']}: ")


def renamed(example: Mapping, labels: Sequence[str], rng: random.Random, copa: bool,
            pool: Sequence[str], where: str) -> tuple[str, str, list[str]]:
    """(sentence, target, options) of ``example`` with every label given a new word from
    ``pool``, the options in a new order; COPA's text names its options, so it is rewritten too."""
    names = dict(zip(labels, rng.sample(pool, len(labels))))
    sentence = rename_copa(example["sentence"], names, where) if copa else example["sentence"]
    options = list(names.values())
    rng.shuffle(options)
    return sentence, names[example["label"]], options


def option_curriculum(spec: Mapping, seed: int,
                      prompters: Mapping[str, tuple[Sequence[str], Callable[[str, Sequence[str]], str]]],
                      parts: Mapping[str, Sequence[Mapping]], copy_prompt: Callable[[str, Sequence[str]], str]
                      ) -> list[dict]:
    """The mixture's training records with ``spec``'s renamed share and copy records.

    ``parts``: each task's training examples; ``prompters``: each task's labels and
    ``(text, options) -> prompt``; ``copy_prompt`` the copy task's. Records are
    ``{"skill", "input", "target"}``; which records are renamed is seeded.
    """
    share, copies = spec.get("renamed_share", 0.0), spec.get("copy_records", 0)
    pool = name_pool(example["sentence"] for examples in parts.values() for example in examples) \
        if share or copies else []
    if (share or copies) and len(pool) < MIN_NAMES:
        raise ValueError(f"benchmark.general: its texts hold {len(pool)} distinct words to draw new "
                         f"label names from; renamed_share and copy_records need {MIN_NAMES}")
    rng = random.Random(f"{seed}-rename")
    records = []
    for name, examples in parts.items():
        labels, prompt = prompters[name]
        for number, example in enumerate(examples):
            if rng.random() < share:
                sentence, target, options = renamed(example, labels, rng, name == "copa", pool,
                                                    f"general task {name} record {number}")
                records.append({"skill": name, "input": prompt(sentence, options), "target": target})
            else:
                records.append({"skill": name, "input": prompt(example["sentence"], labels),
                                "target": example["label"]})
    records += [{"skill": COPY_TASK, "input": copy_prompt(ex["sentence"], ex["labels"]),
                 "target": ex["label"]} for ex in copy_examples(copies, seed, pool)]
    return records
