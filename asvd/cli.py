"""Command-line entry point: ``python -m asvd <command> ...``.

Subcommands live in a registry so that other stages can add theirs with one decorator::

    def _configure_train(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("config")

    @command("train", "train one task of a run", _configure_train)
    def _train(args: argparse.Namespace) -> int:
        ...
        return 0

A handler signals a user error (bad input file, bad argument) by raising :class:`CliError`;
``main`` prints it on stderr and exits with status 2. Other exceptions keep their traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Callable, Sequence

Handler = Callable[[argparse.Namespace], int]
Configure = Callable[[argparse.ArgumentParser], None]

USAGE_ERROR = 2


class CliError(Exception):
    """A problem with the user's input, reported as one line rather than a traceback."""


@dataclass(frozen=True)
class Command:
    help: str
    configure: Configure
    handler: Handler


COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, configure: Configure) -> Callable[[Handler], Handler]:
    """Register ``handler`` as subcommand ``name``; ``configure`` adds its arguments."""

    def register(handler: Handler) -> Handler:
        if name in COMMANDS:
            raise ValueError(f"subcommand {name!r} registered twice")
        COMMANDS[name] = Command(help, configure, handler)
        return handler

    return register


def build_parser() -> argparse.ArgumentParser:
    from asvd import __version__

    parser = argparse.ArgumentParser(
        prog="asvd", description="Adaptive-SVD continual-learning reproduction tools."
    )
    parser.add_argument("--version", action="version", version=f"asvd {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, cmd in COMMANDS.items():
        sub = subparsers.add_parser(name, help=cmd.help, description=cmd.help)
        cmd.configure(sub)
        sub.set_defaults(handler=cmd.handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except CliError as err:
        print(f"asvd {args.command}: {err}", file=sys.stderr)
        return USAGE_ERROR


# --------------------------------------------------------------------------- metrics


def _configure_metrics(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("matrix_csv", help="accuracy matrix CSV (header after,<task1>,...)")


@command(
    "metrics", "print AA, BWT, FWT, forgetting of an accuracy matrix as JSON", _configure_metrics
)
def _metrics(args: argparse.Namespace) -> int:
    """Accepts partial matrices (published logs): a metric whose cells are missing is null, and
    ``notes`` says which cells it lacked."""
    from asvd.analysis.metrics import cl_metrics, fraction_scale, metric_notes, read_accuracy_csv

    try:
        matrix = read_accuracy_csv(args.matrix_csv, partial=True)
    except (OSError, ValueError) as err:
        raise CliError(f"cannot read accuracy matrix: {err}") from err
    if why := fraction_scale(matrix):
        raise CliError(f"{args.matrix_csv}: {why}")
    notes = metric_notes(matrix)
    print(json.dumps({**cl_metrics(matrix), **({"notes": notes} if notes else {})}, indent=2))
    return 0


def _configure_import_olora(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="an O-LoRA run: outputs/<k>-<task>/all_results.json per step")
    parser.add_argument("out_csv", help="where to write its accuracy matrix (no base row; cells "
                                        "of tasks not evaluated at a step empty)")


@command("import-olora", "turn O-LoRA's per-step all_results.json files into an accuracy-matrix "
         "CSV", _configure_import_olora)
def _import_olora(args: argparse.Namespace) -> int:
    from asvd.analysis.metrics import fraction_scale, read_olora_results, write_accuracy_csv

    try:
        matrix = read_olora_results(args.run_dir)
    except (OSError, ValueError) as err:
        raise CliError(f"cannot read O-LoRA results: {err}") from err
    if why := fraction_scale(matrix):
        raise CliError(f"{args.run_dir}: {why}")
    try:
        write_accuracy_csv(matrix, args.out_csv, partial=True)
    except (OSError, ValueError) as err:
        raise CliError(f"cannot write {args.out_csv}: {err}") from err
    print(f"{args.out_csv}: {len(matrix)} steps x {len(matrix.columns)} tasks")
    return 0


# --------------------------------------------------------------------------- inspect


def _configure_inspect(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="a checkpoint directory (or a hub id, with network)")
    parser.add_argument("--method", default="{rank_rule: null}",
                        help="a method block as YAML, as under methods: in a config (default: no "
                             "rule, the targets alone), e.g. '{rank_rule: {name: uniform, "
                             "unfreeze: 0.25}, target_modules: auto}'")
    parser.add_argument("--data", help="JSONL records (input, target) an importance rule measures: "
                                       "the previous task's training file")
    parser.add_argument("--task", type=int, default=2, help="the task's place in its order (1-based)")
    parser.add_argument("--tasks", type=int, default=2, help="the order's length")
    parser.add_argument("--seed", type=int, default=0, help="seed of the importance samples")


@command("inspect", "the targets of a checkpoint, their shapes and ranks, and the frozen rank k a "
         "method's rule gives each (JSON)", _configure_inspect)
def _inspect(args: argparse.Namespace) -> int:
    """What a method would freeze on a task, without training: the same code path as a
    training step (:func:`asvd.train.pieces.constraint.build_constraint`)."""
    import yaml

    from asvd.data.prepare import load_records
    from asvd.method.targets import find_targets
    from asvd.method_config import Method
    from asvd.train.loop import TrainSettings
    from asvd.train.models import load_checkpoint
    from asvd.train.pieces.constraint import build_constraint

    try:
        block = yaml.safe_load(args.method)
        if not isinstance(block, dict):
            raise ValueError(f"--method: a method block is a YAML mapping, got {args.method!r}")
        method = Method.from_config(block, "--method")
        if method.uses_importance and not args.data:
            raise ValueError("an importance rule measures samples: give --data (a JSONL file)")
        if not 1 <= args.task <= args.tasks:
            raise ValueError(f"--task {args.task} is not within 1..--tasks {args.tasks}")
        records = load_records(args.data) if args.data else None
        settings = TrainSettings.from_config(block.get("train", {}))
        model, tokenizer = load_checkpoint(args.checkpoint)
        targets = find_targets(model, method.target_modules)
        constraint = build_constraint(model, tokenizer, method, targets, args.task, args.tasks,
                                      None, records, settings, args.seed)
    except (OSError, ValueError, yaml.YAMLError) as err:
        raise CliError(str(err)) from err
    frozen = constraint.frozen_ranks() if constraint else {name: 0 for name in targets}
    rows = {name: {"shape": list(module.weight.shape), "rank": min(module.weight.shape),
                   "frozen": frozen[name], "free": min(module.weight.shape) - frozen[name]}
            for name, module in targets.items()}
    print(json.dumps({"checkpoint": str(args.checkpoint), "method": block, "task": args.task,
                      "tasks": args.tasks, "targets": rows,
                      **(constraint.importance_report() if constraint else {})}, indent=2))
    return 0
