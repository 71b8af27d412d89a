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
def option_log_likelihoods(model, tokenizer, records: Sequence[Mapping], batch_size: int,
                           max_source_length: int, max_target_length: int) -> list[list[float]]:
    """Per record, the summed log-probability of each listed option's tokens given its prompt.

    At most ``batch_size`` (prompt, option) pairs go through the model at once; an
    encoder-decoder encodes each prompt once and decodes every option from it.
    """
    settings = TrainSettings(max_source_length=max_source_length,
                             max_target_length=max_target_length)
    causal = is_causal(model)
    model.eval()
    per_batch = max(1, batch_size // max(len(record["labels"]) for record in records))
    likelihoods: list[list[float]] = []
    for start in range(0, len(records), per_batch):
        chunk = records[start:start + per_batch]
        counts = [len(record["labels"]) for record in chunk]
        # an encoder-decoder's prompts are encoded once below: only the options' labels are needed here
        pairs = [{"input": record["input"] if causal else "", "target": option}
                 for record in chunk for option in record["labels"]]
        encoded = encode(tokenizer, pairs, settings, model)
        encoded = {key: value.to(model.device) for key, value in encoded.items()}
        labels = encoded.pop("labels")
        if causal:  # position i predicts token i + 1
            logits, labels = model(**encoded).logits[:, :-1], labels[:, 1:]
        else:
            prompts = tokenizer([record["input"] for record in chunk], padding=True, truncation=True,
                                max_length=max_source_length, return_tensors="pt").to(model.device)
            hidden = model.get_encoder()(**prompts).last_hidden_state
            owner = torch.repeat_interleave(torch.arange(len(chunk), device=model.device),
                                            torch.tensor(counts, device=model.device))
            logits = model(encoder_outputs=(hidden[owner],), attention_mask=prompts["attention_mask"][owner],
                           labels=labels).logits
        answer = labels != -100  # normalised over the vocabulary at answer positions only
        logits = logits[answer].float()
        token_scores = logits.gather(-1, labels[answer].unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)
        per_pair = torch.zeros(len(pairs), device=logits.device)
        sums = iter(per_pair.index_add_(0, answer.nonzero()[:, 0], token_scores).tolist())
        likelihoods += [[next(sums) for _ in range(count)] for count in counts]
    return likelihoods


def most_likely_options(model, tokenizer, records: Sequence[Mapping], batch_size: int,
                        max_source_length: int, max_target_length: int) -> list[str]:
    """The most likely listed option of every record (ties: the first listed)."""
    likelihoods = option_log_likelihoods(model, tokenizer, records, batch_size, max_source_length,
                                         max_target_length)
    return [record["labels"][scores.index(max(scores))] for record, scores in zip(records, likelihoods)]


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
