"""Evaluation: greedy generation and exact match after normalisation (BENCHMARKS.md s5)."""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Mapping, Sequence

import torch
from tqdm.auto import tqdm

from asvd.data import load_records
from asvd.io import write_json
from asvd.models import is_causal, load_checkpoint

_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")


def normalise(text: str) -> str:
    """Lowercase, strip punctuation, collapse whitespace."""
    return " ".join(_PUNCTUATION.sub(" ", text.lower()).split())


@torch.no_grad()
def generate(model, tokenizer, inputs: Sequence[str], batch_size: int, max_new_tokens: int,
             max_source_length: int) -> list[str]:
    """Greedy decoding of every input, in order; a causal LM's answer is what follows the prompt."""
    outputs: list[str] = []
    model.eval()
    causal = is_causal(model)
    for start in range(0, len(inputs), batch_size):
        enc = tokenizer(list(inputs[start:start + batch_size]), padding=True, truncation=True,
                        max_length=max_source_length, return_tensors="pt")
        ids = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                             pad_token_id=tokenizer.pad_token_id)
        if causal:  # left-padded prompts all end at the same column
            ids = ids[:, enc["input_ids"].shape[1]:]
        outputs.extend(tokenizer.batch_decode(ids, skip_special_tokens=True))
    return outputs


def score(records: Sequence[Mapping], predictions: Sequence[str]) -> dict:
    """Exact match over all records; unanswerable ones (MNLI's "-") count, never as correct."""
    correct = sum(r.get("answerable", True) and normalise(p) == normalise(r["target"])
                  for r, p in zip(records, predictions))
    return {"correct": correct, "total": len(records), "accuracy": 100.0 * correct / len(records),
            "unanswerable": sum(not r.get("answerable", True) for r in records)}


def evaluate_checkpoint(checkpoint: str | Path, test_files: Mapping[str, str | Path], out_json: str | Path,
                        batch_size: int = 256, max_new_tokens: int = 16, max_source_length: int = 128,
                        examples: int = 3) -> dict:
    """Accuracy of a checkpoint on every named test set; keeps a few predictions for inspection."""
    model, tokenizer = load_checkpoint(checkpoint)
    scores, samples = {}, {}
    for name, path in tqdm(test_files.items(), desc="evaluate"):
        records = load_records(path)
        predictions = generate(model, tokenizer, [r["input"] for r in records], batch_size,
                               max_new_tokens, max_source_length)
        scores[name] = score(records, predictions)
        samples[name] = [{"input": r["input"], "target": r["target"], "prediction": p}
                         for r, p in zip(records[:examples], predictions[:examples])]
    result = {"checkpoint": str(checkpoint), "scores": scores, "examples": samples}
    write_json(out_json, result)
    return result
