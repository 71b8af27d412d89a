"""Measure the subspace constraint's cost against plain AdamW and PEFT's OSF, outside Snakemake.

    python benchmarks/constraint_overhead.py                       # the sizes in config/config.yaml
    python benchmarks/constraint_overhead.py --sizes tiny --out-dir /tmp/bench
    python benchmarks/constraint_overhead.py --device cuda --dtype bfloat16
    python benchmarks/constraint_overhead.py --from-json old/constraint.json --out-dir /tmp/t

Writes constraint.json, constraint.md and constraint_overhead.{png,pdf} to --out-dir; --from-json
only redraws the table and figure of an earlier run with this code (nothing is measured). The
same measurement runs under Snakemake as `snakemake --cores 2 all_costs`.
"""

import argparse
import logging
from pathlib import Path

import yaml

from asvd.cost.overhead import run_suite, write_report

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=ROOT / "config" / "config.yaml", type=Path,
                        help="YAML file with a constraint_cost section")
    parser.add_argument("--out-dir", default=ROOT / "results" / "benchmarks", type=Path)
    parser.add_argument("--sizes", nargs="+", help="subset of the configured sizes")
    parser.add_argument("--device", help="override constraint_cost.device (cpu, cuda)")
    parser.add_argument("--dtype", help="override constraint_cost.dtype")
    parser.add_argument("--from-json", type=Path,
                        help="an earlier run's constraint.json: redraw its table and figure only")
    args = parser.parse_args()
    if args.from_json:
        if not args.from_json.is_file():
            parser.error(f"--from-json: {args.from_json} is not a file")
        report_json = args.from_json
    else:
        report_json = measure(parser, args)
    try:
        write_report(report_json, args.out_dir / "constraint.md",
                     args.out_dir / "constraint_overhead.png",
                     args.out_dir / "constraint_overhead.pdf")
    except ValueError as error:  # a report this code cannot read
        parser.error(str(error))


def measure(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Path:
    """Run the configured cases into --out-dir/constraint.json; its path."""
    settings = yaml.safe_load(args.config.read_text())["constraint_cost"]
    sizes = settings["sizes"]
    unknown = sorted(set(args.sizes or []) - set(sizes))
    if unknown:
        parser.error(f"--sizes: {unknown} not in constraint_cost.sizes of {args.config}")
    sizes = {name: sizes[name] for name in (args.sizes or sizes)}
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    report_json = args.out_dir / "constraint.json"
    run_suite(sizes, settings["fractions"], report_json, seed=settings["seed"],
              device=args.device or settings["device"], dtype=args.dtype or settings["dtype"],
              methods=settings["methods"], repeats=settings["repeats"])
    return report_json

if __name__ == "__main__":
    main()
