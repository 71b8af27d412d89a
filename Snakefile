# asvd: continual learning with Adaptive SVD / OSFT as a staged, reproducible workflow.
# Thin on purpose: configuration, validation, rule files and the public targets. All work happens
# in the `asvd` package; see README.md for the results layout.
from snakemake.utils import min_version

min_version("9.0")


# The embedded default, found beside this file even when --directory points elsewhere;
# --configfile values are merged on top of it.
configfile: f"{workflow.basedir}/config/config.yaml"


# `snakemake all_figures --report report.html`: every figure and table with its caption, and
# every job's runtime
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/base.smk"
include: "workflow/rules/svd.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/cost.smk"


localrules:
    all_figures,
    all_tables,
    all_train,
    all_eval,
    all_costs,
    all_baselines,
    all_ablations,
    all_tradeoff,


rule all_figures:
    default_target: True
    input:
        STUDY.outputs("study"),
        rebuilt_results(),


rule all_tables:
    input:
        STUDY.table_outputs(),
        rebuilt_results(),


rule all_train:
    input:
        STUDY.checkpoints_of_all_runs(),
        rebuilt_results(),


rule all_eval:
    input:
        STUDY.evals_of_all_runs(),
        rebuilt_results(),


rule all_baselines:
    input:
        STUDY.outputs("comparison"),
        rebuilt_results(),


rule all_ablations:
    input:
        STUDY.outputs("ablation"),
        rebuilt_results(),


rule all_tradeoff:
    input:
        STUDY.outputs("tradeoff"),
        rebuilt_results(),


rule all_costs:
    input:
        rules.constraint_cost_report.output,
