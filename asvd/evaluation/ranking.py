"""Option ranking: each listed option scored by the model's likelihood, the best one taken.

Exact match asks the model to write the answer; a model that still knows a task but answers in
the newest task's words scores 0 there. Ranking asks which listed option the model finds most
likely (T0's rank classification: the summed log-probability of the option's tokens, EOS
included, given the prompt), so it separates forgetting the answer format from forgetting the
task. Options are tokenised exactly as training tokenises targets (:func:`asvd.train.loop.encode`).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

from asvd.evaluation.scoring import normalise
from asvd.train.loop import TrainSettings, encode
from asvd.train.models import is_causal


def rankable(records: Sequence[Mapping]) -> bool:
    """Whether every record lists its options (classification; TRACE's tasks and the synthetic
    general set's free-form skills do not)."""
    return all(record.get("labels") for record in records)


@torch.no_grad()
def option_log_likelihoods(model, tokenizer, pairs: Sequence[tuple[str, str]], batch_size: int,
                           max_source_length: int, max_target_length: int) -> list[float]:
    """Summed log-probability of each (prompt, option) pair's option tokens, in order."""
    settings = TrainSettings(max_source_length=max_source_length,
                             max_target_length=max_target_length)
    causal = is_causal(model)
    model.eval()
    scores: list[float] = []
    for start in range(0, len(pairs), batch_size):
        chunk = [{"input": prompt, "target": option} for prompt, option in pairs[start:start + batch_size]]
        encoded = encode(tokenizer, chunk, settings, model)
        batch = {key: value.to(model.device) for key, value in encoded.items()}
        labels = batch.pop("labels")
        logits = model(**batch, **({} if causal else {"labels": labels})).logits
        if causal:  # position i predicts token i + 1
            logits, labels = logits[:, :-1], labels[:, 1:]
        answer = labels != -100  # normalised over the vocabulary at answer positions only
        logits = logits[answer].float()
        token_scores = logits.gather(-1, labels[answer].unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)
        per_pair = torch.zeros(len(chunk), device=logits.device)
        scores.extend(per_pair.index_add_(0, answer.nonzero()[:, 0], token_scores).tolist())
    return scores


def most_likely_options(model, tokenizer, records: Sequence[Mapping], batch_size: int,
                 max_source_length: int, max_target_length: int) -> list[str]:
    """The most likely listed option of every record (ties: the first listed)."""
    pairs = [(record["input"], option) for record in records for option in record["labels"]]
    scores = iter(option_log_likelihoods(model, tokenizer, pairs, batch_size, max_source_length,
                                         max_target_length))
    chosen = []
    for record in records:
        options = list(record["labels"])
        likelihoods = [next(scores) for _ in options]
        chosen.append(options[likelihoods.index(max(likelihoods))])
    return chosen


def ranked_scores(records: Sequence[Mapping], predictions: Sequence[str], chosen: Sequence[str]) -> dict:
    """``ranked``: percent of records whose most likely option is the target (unanswerable ones
    count wrong); ``in_options``: percent of generated answers that are one of the listed options."""
    def one_of(text: str, options: Sequence[str]) -> bool:
        return normalise(text) in {normalise(option) for option in options}

    ranked = [r.get("answerable", True) and normalise(c) == normalise(r["target"])
              for r, c in zip(records, chosen)]
    listed = [one_of(p, r["labels"]) for r, p in zip(records, predictions)]
    return {"ranked": 100.0 * sum(ranked) / len(records),
            "in_options": 100.0 * sum(listed) / len(records)}
