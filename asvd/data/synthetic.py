"""The embedded synthetic continual-learning benchmark (deterministic by seed).

Inputs are short sequences of made-up symbols. Every continual task asks for the *class* of the
symbol at one position, under a class table of its own; all tasks answer with the same class
words, so later tasks compete for the outputs of earlier ones and sequential fine-tuning forgets
for real. The general mixture that pretrains the base model (copy, reverse, pick a position, the
class under a general table) provides the shared skills every task builds on; its held-out split
is the general-ability set whose retention the study measures. The optional ``instructed`` skill
asks for the class at a named position in the tasks' own words, so a base trained on it already
reads the tasks' instruction and each task has only its own class table to learn.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Mapping, Sequence

POSITIONS = {"first": 0, "second": 1, "third": 2, "last": -1, "penultimate": -2}
GENERAL_SKILLS = ("copy", "reverse", "pick", "classify")
INSTRUCTED = "instructed"
KNOWN_SKILLS = (*GENERAL_SKILLS, INSTRUCTED)
_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"


_NAMES = [c + v for c in _CONSONANTS for v in _VOWELS] + [v + c for c in _CONSONANTS for v in _VOWELS]


def symbol_names(count: int) -> list[str]:
    """Pronounceable one-token names: ba, be, bi, ... (up to 140)."""
    if not 2 <= count <= len(_NAMES):
        raise ValueError(f"benchmark.symbols must be in [2, {len(_NAMES)}], got {count}")
    return _NAMES[:count]


def benchmark_problems(benchmark: Mapping) -> list[str]:
    """What makes a synthetic benchmark block impossible to generate, one line per problem
    naming the key that causes it (checked before any job, and again by :func:`generate`)."""
    classes, tasks = benchmark["classes"], benchmark["tasks"]
    symbols, task_symbols = benchmark["symbols"], benchmark.get("task_symbols") or 0
    problems = []
    if not 2 <= symbols <= len(_NAMES):
        problems.append(f"benchmark.symbols must be in [2, {len(_NAMES)}], got {symbols}")
    elif symbols + task_symbols * len(tasks) > len(_NAMES):
        problems.append(
            f"benchmark.task_symbols: {len(tasks)} tasks x {task_symbols} own symbols + "
            f"{symbols} shared need {symbols + task_symbols * len(tasks)} names; there are "
            f"{len(_NAMES)}")
    for key, count in (("symbols", symbols), ("task_symbols", task_symbols or len(classes))):
        if count % len(classes):
            problems.append(f"benchmark.{key} ({count}) must be a multiple of the number of "
                            f"classes ({len(classes)})")
    skills = list(benchmark.get("general_skills", GENERAL_SKILLS))
    if any(skill not in KNOWN_SKILLS for skill in skills) or not skills or len(set(skills)) != len(skills):
        problems.append(f"benchmark.general_skills: {skills} must be distinct names from "
                        f"{list(KNOWN_SKILLS)}")
    return problems


def class_table(symbols: Sequence[str], classes: Sequence[str], rng: random.Random) -> dict[str, str]:
    """A balanced random map symbol -> class (each class gets len(symbols)/len(classes) symbols)."""
    shuffled = list(symbols)
    rng.shuffle(shuffled)
    return {symbol: classes[i % len(classes)] for i, symbol in enumerate(shuffled)}


@dataclass(frozen=True)
class TaskSpec:
    name: str
    position: str


def _sequence(symbols: Sequence[str], length: int, rng: random.Random) -> list[str]:
    return [rng.choice(symbols) for _ in range(length)]


def _task_example(spec: TaskSpec, table: Mapping[str, str], seq: list[str]) -> dict:
    return {"text": " ".join(seq), "target": table[seq[POSITIONS[spec.position]]]}


def _balanced_examples(spec, table, symbols, classes, length, count, rng) -> list[dict]:
    """Draw examples class by class so every class appears count/len(classes) times."""
    by_class = {c: [s for s in symbols if table[s] == c] for c in classes}
    examples = []
    for i in range(count):
        wanted = classes[i % len(classes)]
        seq = _sequence(symbols, length, rng)
        seq[POSITIONS[spec.position] % length] = rng.choice(by_class[wanted])
        examples.append(_task_example(spec, table, seq))
    rng.shuffle(examples)
    return examples


def _general_example(skill: str, table, symbols, length: int, rng: random.Random) -> dict:
    seq = _sequence(symbols, length, rng)
    if skill == INSTRUCTED:
        position = rng.choice(sorted(name for name, index in POSITIONS.items() if -length <= index < length))
        return {"skill": skill, "text": " ".join(seq), "target": table[seq[POSITIONS[position]]],
                "position": position}
    if skill == "copy":
        return {"skill": skill, "text": " ".join(seq), "target": " ".join(seq)}
    if skill == "reverse":
        return {"skill": skill, "text": " ".join(seq), "target": " ".join(reversed(seq))}
    position = rng.randrange(length)
    text = f"position {position + 1} : " + " ".join(seq)
    target = seq[position] if skill == "pick" else table[seq[position]]
    return {"skill": skill, "text": text, "target": target}


def generate(
    *,
    seed: int,
    symbols: int,
    task_symbols: int = 0,
    classes: Sequence[str],
    length: int,
    tasks: Sequence[Mapping],
    train_per_task: int,
    test_per_task: int,
    general_train: int,
    general_test: int,
    general_skills: Sequence[str] = GENERAL_SKILLS,
) -> dict:
    """Generate every split of the benchmark.

    Returns ``{"tasks": {name: {"train": [...], "test": [...]}}, "general": {"train", "test"},
    "classes": [...]}``; examples are ``{"text", "target"}`` (general ones also carry ``skill``,
    ``instructed`` ones the ``position`` asked). The general mixture cycles through
    ``general_skills``.
    """
    problems = benchmark_problems({"symbols": symbols, "task_symbols": task_symbols,
                                   "classes": classes, "tasks": tasks,
                                   "general_skills": general_skills})
    if problems:
        raise ValueError("; ".join(problems))
    pool = symbol_names(symbols + task_symbols * len(tasks))
    names = pool[:symbols]
    out = {"classes": list(classes), "tasks": {}}
    for index, task in enumerate(tasks):
        own = pool[symbols + index * task_symbols: symbols + (index + 1) * task_symbols] or names
        spec = TaskSpec(name=task["name"], position=task["position"])
        if spec.position not in POSITIONS:
            raise ValueError(
                f"benchmark.tasks[{index}].position: {spec.position!r} not in {sorted(POSITIONS)}"
            )
        rng = random.Random(f"{seed}/task/{spec.name}")
        table = class_table(own, classes, rng)
        out["tasks"][spec.name] = {
            split: _balanced_examples(spec, table, own, classes, length, count, rng)
            for split, count in (("train", train_per_task), ("test", test_per_task))
        }
    rng = random.Random(f"{seed}/general")
    general_table = class_table(pool, classes, rng)
    out["general"] = {
        split: [
            _general_example(general_skills[i % len(general_skills)], general_table, pool, length, rng)
            for i in range(count)
        ]
        for split, count in (("train", general_train), ("test", general_test))
    }
    return out
