"""Per-task scores of generated answers, in percent: the metric each benchmark prescribes.

Classification tasks use exact match after normalisation (docs/benchmarks.md §3). TRACE's tasks use
their own metrics (docs/benchmarks.md §4): accuracy, accuracy of the option letter after "Answer: "
(ScienceQA, whose answers also carry a rationale), ROUGE-L F1 (``rouge-score``, Google's
reference implementation), edit similarity (``rapidfuzz``'s Indel ratio, the maintained successor
of the fuzzywuzzy ratio TRACE used, after TRACE's substitution of literal tokens) and SARI.
No maintained package computes SARI offline (``evaluate`` downloads its script from the hub), so
it is written here after the definition ``evaluate`` and TRACE use (tensor2tensor's variant:
0/0 = 1, the keep-recall fix) on sacrebleu's 13a tokens, and tested against its published values.

Prepared records name their metric (``metric``; absent means ``exact_match``). An unanswerable
record (``answerable: False``, MNLI's "-") is never counted correct.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from functools import lru_cache
from typing import Callable, Mapping, Sequence

DEFAULT_METRIC = "exact_match"
_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")
_LITERAL = re.compile(r"<(STR|NUM|CHAR)_LIT:(.*?)>", re.S)
_ANSWER = "Answer: "


def normalise(text: str) -> str:
    """Lowercase, strip punctuation, collapse whitespace."""
    return " ".join(_PUNCTUATION.sub(" ", text.lower()).split())


def exact_match(prediction: str, target: str, source: str) -> float:
    return 100.0 * (normalise(prediction) == normalise(target))


def answer_letter(text: str) -> str:
    """The one character after "Answer: " (ScienceQA's option), or "" when the format is missing."""
    at = text.find(_ANSWER)
    return "" if at < 0 else text[at + len(_ANSWER):at + len(_ANSWER) + 1]


def choice_accuracy(prediction: str, target: str, source: str) -> float:
    chosen = answer_letter(prediction)
    return 100.0 * (chosen != "" and chosen == answer_letter(target))


@lru_cache(maxsize=1)
def _rouge_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"])


def rouge_l(prediction: str, target: str, source: str) -> float:
    return 100.0 * _rouge_scorer().score(target, prediction)["rougeL"].fmeasure


def code_literals(code: str) -> str:
    """Py150's literal tokens back to code: ``<NUM_LIT>`` -> 0, ``<STR_LIT:x>`` -> x, as TRACE does."""
    code = code.replace("<NUM_LIT>", "0").replace("<STR_LIT>", "").replace("<CHAR_LIT>", "")
    return _LITERAL.sub(lambda match: match.group(2), code)


def edit_similarity(prediction: str, target: str, source: str) -> float:
    from rapidfuzz import fuzz

    prediction, target = code_literals(prediction), code_literals(target)
    return float(fuzz.ratio(prediction, target)) if prediction and target else 0.0


@lru_cache(maxsize=1)
def _tokenizer_13a():
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    return Tokenizer13a()


def _ngrams(tokens: Sequence[str], n: int) -> list[str]:
    return [" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def _sari_ngram(source: list[str], output: list[str], references: list[list[str]]) -> tuple[float, float, float]:
    """(keep F1, deletion precision, addition F1) of one n-gram order; 0/0 counts as 1."""
    refs = Counter(gram for reference in references for gram in reference)
    source_rep = Counter({g: c * len(references) for g, c in Counter(source).items()})
    output_rep = Counter({g: c * len(references) for g, c in Counter(output).items()})

    kept = source_rep & output_rep
    kept_good = kept & refs
    keep_all = source_rep & refs
    keep_precision = sum(kept_good[g] / kept[g] for g in kept_good) / len(kept) if kept else 1.0
    keep_recall = sum(kept_good.values()) / sum(keep_all.values()) if keep_all else 1.0

    deleted = source_rep - output_rep
    deleted_good = deleted - refs
    del_precision = sum(deleted_good[g] / deleted[g] for g in deleted_good) / len(deleted) if deleted else 1.0

    added = set(output_rep) - set(source_rep)
    added_good = added & set(refs)
    add_all = set(refs) - set(source_rep)
    add_precision = len(added_good) / len(added) if added else 1.0
    add_recall = len(added_good) / len(add_all) if add_all else 1.0
    return _f1(keep_precision, keep_recall), del_precision, _f1(add_precision, add_recall)


def sari_sentence(source: str, prediction: str, references: Sequence[str]) -> float:
    """SARI of one output, in percent: mean over n = 1..4 of keep F1, deletion P and addition F1."""
    tokenize = _tokenizer_13a()

    def tokens(text: str) -> list[str]:
        return tokenize(text.lower()).split(" ")

    src, out, refs = tokens(source), tokens(prediction), [tokens(r) for r in references]
    parts = [_sari_ngram(_ngrams(src, n), _ngrams(out, n), [_ngrams(r, n) for r in refs])
             for n in range(1, 5)]
    return 100.0 * sum(sum(part[i] for part in parts) / 4 for i in range(3)) / 3


def sari(prediction: str, target: str, source: str) -> float:
    return sari_sentence(source, prediction, [target])


METRICS: dict[str, Callable[[str, str, str], float]] = {
    "exact_match": exact_match,
    "choice_accuracy": choice_accuracy,
    "rouge_l": rouge_l,
    "edit_similarity": edit_similarity,
    "sari": sari,
}
COUNTED = {"exact_match", "choice_accuracy"}  # right or wrong per item: they report ``correct``


def metric_of(records: Sequence[Mapping], where: str = "test set") -> str:
    """The one metric a test set's records name."""
    names = {record.get("metric", DEFAULT_METRIC) for record in records}
    if len(names) != 1:
        raise ValueError(f"{where}: records name several metrics {sorted(names)}")
    (name,) = names
    if name not in METRICS:
        raise ValueError(f"{where}: unknown metric {name!r} (known: {sorted(METRICS)})")
    return name


def score(records: Sequence[Mapping], predictions: Sequence[str], where: str = "test set") -> dict:
    """Mean per-item score in percent under the records' metric; unanswerable items score 0.

    Right-or-wrong metrics also report ``correct`` (pooled micro accuracy needs it).
    """
    if len(records) != len(predictions):
        raise ValueError(f"{where}: {len(records)} records but {len(predictions)} predictions")
    name = metric_of(records, where)
    measure = METRICS[name]
    items = [measure(p, r["target"], r["input"]) if r.get("answerable", True) else 0.0
             for r, p in zip(records, predictions)]
    result = {"metric": name, "score": sum(items) / len(items), "total": len(records),
              "unanswerable": sum(not r.get("answerable", True) for r in records)}
    if name in COUNTED:
        result["correct"] = sum(item == 100.0 for item in items)
    return result
