"""The base-model stage: build and pretrain the embedded default's model on the general
mixture, or fetch a pretrained one (instruction-tuned on the mixture if asked)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from asvd.data.prepare import load_records
from asvd.io import write_json
from asvd.train.loop import TrainSettings, train
from asvd.train.models import (
    WARM_STARTS,
    build_seq2seq,
    build_word_tokenizer,
    load_checkpoint,
    resolve_pretrained,
    save_checkpoint,
    warm_start_encoder_decoder,
)


def train_base_model(general_train: str | Path, vocabulary_files: Sequence[str | Path],
                     family: str, architecture: Mapping, settings: Mapping, seed: int,
                     out_dir: str | Path, log_json: str | Path) -> dict:
    """Build the embedded default's tokenizer and seq2seq model; pretrain on the general mixture."""
    texts = [text for path in vocabulary_files for r in load_records(path) for text in (r["input"], r["target"])]
    tokenizer = build_word_tokenizer(texts)
    model = build_seq2seq(tokenizer, family, architecture, seed)
    records = load_records(general_train)
    result = train(model, tokenizer, records, TrainSettings.from_config(settings), seed, desc="base",
                   settings_key="base_model.train")
    result.update({"vocab_size": len(tokenizer), "parameters": sum(p.numel() for p in model.parameters())})
    save_checkpoint(model, tokenizer, out_dir)
    write_json(log_json, result)
    return result


def fetch_base_model(name: str, out_dir: str | Path, log_json: str | Path,
                     warm_start: str | None = None, seed: int = 0,
                     general_train: str | Path | None = None, settings: Mapping | None = None) -> dict:
    """Use a pretrained model as the base: load it, instruction-tune it if asked, save a copy.

    ``name`` is a hub id, a local directory or ``package:<module>/<subdir>`` (see
    :func:`asvd.train.models.resolve_pretrained`); ``warm_start="encoder_decoder"`` turns a pretrained
    encoder (BERT family) into an encoder-decoder ready to copy from its input
    (``"encoder_decoder_random"``: its new parts random, the ablation). The copy makes the base
    checkpoint a file of this study, so its SVD cache, evaluation and every task's training chain
    on it like on a built one (and the hub is read once). ``seed`` initialises the weights a warm start adds.
    ``general_train`` (with ``settings``): train on the benchmark's general mixture first, so a
    model that never saw an instruction (a warm-started encoder) reads the prompt's options
    before the sequence starts, as the paper's multi-task-pretrained T5 does.
    """
    path = resolve_pretrained(name)
    if warm_start in WARM_STARTS:
        model, tokenizer = warm_start_encoder_decoder(path, seed, copy_ready=warm_start == "encoder_decoder")
    elif warm_start is None:
        model, tokenizer = load_checkpoint(path)
    else:
        raise ValueError(f"base_model.warm_start: {warm_start!r} "
                         f"(expected one of {list(WARM_STARTS)} or null)")
    result = {"source": str(name), "parameters": sum(p.numel() for p in model.parameters()),
              "model_type": model.config.model_type, "warm_start": warm_start,
              **({"seed": seed} if warm_start else {})}
    if general_train is not None:
        records = load_records(general_train)
        tuning = train(model, tokenizer, records, TrainSettings.from_config(settings), seed,
                       desc="instruction tuning", settings_key="base_model.train")
        result.update({"instruction_tuning": tuning, "seed": seed})
    save_checkpoint(model, tokenizer, out_dir)
    write_json(log_json, result)
    return result
