"""Study configuration checked against its JSON schema, every problem named by its key path.

The workflow calls this before it builds any job (workflow/rules/common.smk); so can a user
(``python -c "from asvd.validation import ..."``) or a test, without Snakemake.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match


def key_path(error: ValidationError) -> str:
    """``train.lr``, ``orders.1``, ``run.seeds.0``: where in the config the error is."""
    return ".".join(str(part) for part in error.absolute_path) or "(top level)"


def schema_problems(config: Mapping[str, Any], schema: str | Path | Mapping) -> list[str]:
    """One line per schema violation, ``<key path>: <what is wrong>``, in key order.

    For a value that matches none of several alternatives (a rank rule) the line names the most
    specific violation inside it (``methods.asvd.rank_rule.mrr: 1.5 is greater than ...``).
    """
    if not isinstance(schema, Mapping):
        schema = yaml.safe_load(Path(schema).read_text())
    validator = Draft202012Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(dict(config)), key=lambda e: [str(p) for p in e.absolute_path]):
        specific = best_match([error]) if error.context else error
        problems.append(f"{key_path(specific)}: {specific.message}")
    return problems
