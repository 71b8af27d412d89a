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
    parser = argparse.ArgumentParser(
        prog="asvd", description="Adaptive-SVD continual-learning reproduction tools."
    )
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
