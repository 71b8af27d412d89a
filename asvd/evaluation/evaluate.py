"""Evaluation: greedy generation, scored by each task's metric (:mod:`asvd.evaluation.scoring`),
and on tasks that list their options also by option ranking (:mod:`asvd.evaluation.ranking`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Sequence

import torch
from tqdm.auto import tqdm

from asvd.data.prepare import load_records
from asvd.evaluation.ranking import most_likely_options, rankable, ranked_scores
from asvd.evaluation.scoring import metric_of, score
from asvd.io import write_json
from asvd.pipeline.runtime import compute_device
from asvd.train.models import check_lengths, is_causal, load_checkpoint

log = logging.getLogger(__name__)


@torch.no_grad()
def generate(model, tokenizer, inputs: Sequence[str], batch_size: int, max_new_tokens: int,
             max_source_length: int) -> list[str]:
    """Greedy decoding of every input, in order; a causal LM's answer is what follows the prompt."""
    outputs: list[str] = []
    model.eval()
    causal = is_causal(model)
    for start in range(0, len(inputs), batch_size):
        enc = tokenizer(list(inputs[start:start + batch_size]), padding=True, truncation=True,
                        max_length=max_source_length, return_tensors="pt").to(model.device)
        ids = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                             pad_token_id=tokenizer.pad_token_id)
        if causal:  # left-padded prompts all end at the same column
            ids = ids[:, enc["input_ids"].shape[1]:]
        outputs.extend(tokenizer.batch_decode(ids, skip_special_tokens=True))
    return outputs


def evaluate_checkpoint(checkpoint: str | Path, test_files: Mapping[str, str | Path], out_json: str | Path,
                        batch_size: int = 256, max_new_tokens: int = 16, max_source_length: int = 128,
                        examples: int = 3, rank_options: bool = True) -> dict:
    """Score of a checkpoint on every named test set; keeps a few predictions for inspection.

    Each score counts the prompts cut at ``max_source_length`` (``truncated``; a warning names
    the test set). With ``rank_options``, a test set whose records all list their options also gets
    ``ranked`` (option-ranking accuracy) and ``in_options`` (the share of generated answers
    that are a listed option) beside its metric's score. Every test set's records are read and
    their metric checked before any generation.
    """
    test_sets = {name: load_records(path) for name, path in test_files.items()}
    for name, records in test_sets.items():
        metric_of(records, str(test_files[name]))
    model, tokenizer = load_checkpoint(checkpoint)
    lengths = {name: [len(ids) for ids in tokenizer([r["input"] for r in records])["input_ids"]]
               for name, records in test_sets.items()}
    longest = min(max_source_length, max(max(found) for found in lengths.values()))
    check_lengths(model, ("evaluation.max_source_length", max_source_length, longest),
                  ("evaluation.max_new_tokens", max_new_tokens, max_new_tokens))
    truncated = {name: sum(length > max_source_length for length in found) for name, found in lengths.items()}
    for name, count in truncated.items():
        if count:  # the prompt's end is cut: usually the text the task asks about
            log.warning("%s: %d of %d prompts are longer than evaluation.max_source_length = %d tokens "
                        "(up to %d) and lose their end", test_files[name], count, len(lengths[name]),
                        max_source_length, max(lengths[name]))
    model.to(compute_device())
    scores, samples = {}, {}
    for name, records in tqdm(test_sets.items(), desc="evaluate"):
        predictions = generate(model, tokenizer, [r["input"] for r in records], batch_size,
                               max_new_tokens, max_source_length)
        scores[name] = {**score(records, predictions, str(test_files[name])), "truncated": truncated[name]}
        if rank_options and rankable(records):
            chosen = most_likely_options(model, tokenizer, records, batch_size, max_source_length,
                                         max_new_tokens)
            scores[name].update(ranked_scores(records, predictions, chosen))
        samples[name] = [{"input": r["input"], "target": r["target"], "prediction": p}
                         for r, p in zip(records[:examples], predictions[:examples])]
    result = {"checkpoint": str(checkpoint), "scores": scores, "examples": samples}
    write_json(out_json, result)
    return result
