# What the rules share: the config's validation, the study it declares (asvd/pipeline/study.py:
# every path and input function) and the sweep of damaged results, all before the DAG is built.
import functools
import os
import sys
from pathlib import Path

# the workflow's own modules read the config: validation and the study (standard library), the
# figure registry (with its plot functions, so matplotlib)
sys.path.insert(0, workflow.basedir)
from asvd.analysis import figure_registry
from asvd.pipeline.fingerprints import code_fingerprint
from asvd.pipeline.layout import (
    EVAL,
    MATRIX,
    MODEL,
    PREMISE,
    SUMMARY,
    SVD_CACHE,
    SVD_KEY,
    TRAIN_LOG,
)
from asvd.pipeline.study import Study
from asvd.pipeline.study_checks import study_problems
from asvd.pipeline.validation import (
    coerce_command_line_values,
    config_error,
    repeated_keys,
    schema_problems,
)

SCHEMA = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
coerce_command_line_values(config, SCHEMA)
# every problem named by its key before any job: a key a config file repeats, the schema's,
# then the cross-key checks
_problems = (
    [problem for path in workflow.configfiles for problem in repeated_keys(path)]
    or schema_problems(config, SCHEMA)
    or study_problems(config, workflow.basedir)
)
if _problems:
    raise config_error(_problems)

SCRIPTS = Path(workflow.basedir) / "workflow" / "scripts"
# Jobs (script subprocesses, conda envs, cluster jobs) import the package from this checkout.
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        filter(None, [workflow.basedir, os.environ.get("PYTHONPATH")])
    )
)
STUDY = Study(config, workflow.basedir)
PATHS = STUDY.layout
RESULTS, BASE, LOGS, BENCH = PATHS.root, PATHS.base, PATHS.logs, PATHS.benchmarks
RUN, STEP = PATHS.run, PATHS.step

# Damaged results of this study (truncated, emptied, a checkpoint without its checksum file, a
# file where a directory belongs) are moved aside before the DAG is built; rebuilt_results()
# makes them targets of this run. Nothing the study does not declare is checked or moved, and
# no link is followed.
DAMAGED = []
if workflow.is_main_process:
    from asvd.pipeline.damage import sweep

    for _path, _line in sweep(RESULTS, owned=STUDY.study_outputs()):
        print(f"damaged result: {_line}", file=sys.stderr)
        DAMAGED.append(_path)


wildcard_constraints:
    method="[a-z0-9_]+",
    order=r"\d+",
    seed=r"\d+",
    step=r"\d+",
    task="[A-Za-z0-9_.-]+",
    split="train|test",
    reference="[A-Za-z0-9_.-]+",


@functools.cache
def code_version(script):
    """Hash of a rule's script and every package module it imports, so editing one reruns it."""
    return code_fingerprint(SCRIPTS / f"{script}.py", Path(workflow.basedir))


def rebuilt_results():
    """The damaged results moved aside at this start (all of them the study's): extra inputs of
    every public target, so they are rebuilt (a missing intermediate alone would not make
    Snakemake rerun anything) and, being newer, rebuild what was made from them."""
    return DAMAGED


def figure_files(scope):
    """The input function of target ``scope``'s figure rule: a flat list for Snakemake."""
    return lambda wildcards: figure_registry.flat_files(
        figure_registry.figure_inputs(STUDY, scope, wildcards.figure)
    )


def figure_structure(scope):
    """The same files shaped as the figure's plot function takes them."""
    return lambda wildcards: figure_registry.figure_inputs(
        STUDY, scope, wildcards.figure
    )
