"""Study configuration checked against its JSON schema, every problem named by its key path.

The workflow calls this before it builds any job (workflow/rules/common.smk); so can a user
(``python -c "from asvd.pipeline.validation import ..."``) or a test, without Snakemake.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import yaml
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match

from asvd.method_config import PIECE_KEYS, PIECE_KEYS_FILE


def _whole_pattern(validator, pattern: str, instance: Any, schema: Mapping):
    """``pattern``, with a final ``$`` meaning the end of the string: under ``re.search`` (JSON
    Schema's default) ``$`` also matches before a final newline, so ``"p1\\n"`` would pass
    ``^[a-z0-9]+$`` and become a folder whose name ends in a newline."""
    whole = pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith(r"\$") else pattern
    if validator.is_type(instance, "string") and re.search(whole, instance) is None:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _is_integer(checker, instance: Any) -> bool:
    """An int, not a float with no fraction (JSON Schema's own rule): ``batch_size: 16.0`` would
    pass the schema and fail mid-training, after the step's old output was cleared."""
    return isinstance(instance, int) and not isinstance(instance, bool)


# Names that become folders, wildcards or keys are matched whole; integers are ints.
_Validator = validators.extend(
    Draft202012Validator, {"pattern": _whole_pattern},
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer))


def load_schema(path: str | Path) -> dict:
    """The workflow's schema at ``path`` with every piece's own key (``asvd/train/pieces/keys.yaml``)
    among a method block's keys: each key declared once, beside the code that reads it."""
    schema = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    method_keys = schema["properties"]["methods"]["additionalProperties"]["properties"]
    clashes = sorted(set(method_keys) & set(PIECE_KEYS))
    if clashes:
        raise ValueError(f"{path}: method keys {clashes} are declared again in {PIECE_KEYS_FILE}")
    method_keys.update({key: declared["schema"] for key, declared in PIECE_KEYS.items()})
    return schema


def key_path(error: ValidationError) -> str:
    """``train.lr``, ``orders.1``, ``run.seeds.0``: where in the config the error is."""
    return ".".join(str(part) for part in error.absolute_path) or "(top level)"


_BOOLEANS = {"true": True, "false": False}


def _resolve(schema: Mapping, root: Mapping) -> Mapping:
    while "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _alternatives(schema: Mapping, root: Mapping) -> list[Mapping]:
    schema = _resolve(schema, root)
    choices = schema.get("oneOf") or schema.get("anyOf")
    return [alt for choice in choices for alt in _alternatives(choice, root)] if choices else [schema]


_JSON_TYPES = {str: "string", bool: "boolean", int: "integer", float: "number", type(None): "null"}


def _types(schema: Mapping) -> set[str]:
    """The JSON types a schema allows, those of its ``const`` / ``enum`` values included."""
    declared = schema.get("type", [])
    types = {declared} if isinstance(declared, str) else set(declared)
    values = [schema["const"]] if "const" in schema else list(schema.get("enum", []))
    return types | {_JSON_TYPES.get(type(value), "object") for value in values}


def _from_text(text: str, types: set[str]) -> Any:
    """The value a command-line string stands for under the schema's types, or the text."""
    lowered = text.strip().lower()
    converters = ([int] if {"integer", "number"} & types else []) + ([float] if "number" in types else [])
    for convert in converters:
        try:
            return convert(text)
        except ValueError:
            pass
    if "boolean" in types and lowered in _BOOLEANS:
        return _BOOLEANS[lowered]
    if "null" in types and lowered in ("null", "~", "none"):
        return None
    return text


def coerce_command_line_values(config: dict, schema: str | Path | Mapping) -> None:
    """Turn strings into the numbers, booleans and nulls the schema asks for, in place.

    Snakemake reads a nested ``--config 'train={batch_size: 8}'`` value as YAML with every
    scalar a string; a string where the schema allows no string is read as the type it allows.
    """
    root = schema if isinstance(schema, Mapping) else load_schema(schema)

    def walk(value: Any, schema: Mapping) -> Any:
        alternatives = _alternatives(schema, root)
        if isinstance(value, str):
            types = set().union(*(_types(alt) for alt in alternatives))
            return value if "string" in types else _from_text(value, types)
        for alt in alternatives:
            if isinstance(value, dict) and ("properties" in alt or "additionalProperties" in alt):
                for key in value:
                    sub = alt.get("properties", {}).get(str(key), alt.get("additionalProperties"))
                    if isinstance(sub, Mapping):
                        value[key] = walk(value[key], sub)
                return value
            if isinstance(value, list) and isinstance(alt.get("items"), Mapping):
                return [walk(item, alt["items"]) for item in value]
        return value

    walk(config, root)


def schema_problems(config: Mapping[str, Any], schema: str | Path | Mapping) -> list[str]:
    """One line per schema violation, ``<key path>: <what is wrong>``, in key order.

    For a value that matches none of several alternatives (a rank rule) the line names the most
    specific violation inside it (``methods.asvd.rank_rule.mrr: 1.5 is greater than ...``).
    """
    if not isinstance(schema, Mapping):
        schema = load_schema(schema)
    validator = _Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(dict(config)), key=lambda e: [str(p) for p in e.absolute_path]):
        specific = best_match([error]) if error.context else error
        # a pattern (or a refused value) says little to a reader; the description says what is allowed
        hint = specific.schema.get("description") if specific.validator in ("pattern", "not") else None
        problems.append(f"{key_path(specific)}: {specific.message}" + (f" ({hint})" if hint else ""))
    return problems


def repeated_keys(path: str | Path) -> list[str]:
    """``<file>:<line>: <key> repeats ...`` for every key a YAML mapping of ``path`` gives twice:
    YAML loaders keep the second silently, so a study would run with a value its author may have
    meant to replace or may not have seen."""
    problems = []

    def mapping(loader, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: overriding is its point
                continue
            key = loader.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if not isinstance(key, (str, int, float, bool)):
                continue
            if key in seen:
                problems.append(f"{path}:{line}: key {key!r} repeats the one on line {seen[key]} "
                                "(YAML would keep this one silently)")
            seen.setdefault(key, line)
        return yaml.SafeLoader.construct_mapping(loader, node, deep)

    loader = type("RepeatedKeyLoader", (yaml.SafeLoader,), {})
    loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    yaml.load(Path(path).read_text(), Loader=loader)  # noqa: S506 (a SafeLoader subclass)
    return problems


def config_error(problems: list[str]) -> ValueError:
    """One error for every problem found, the first named on its first line."""
    rest = "".join(f"\n  {problem}" for problem in problems[1:])
    return ValueError(f"invalid config: {problems[0]}{rest}")
