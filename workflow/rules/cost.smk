# The constraint's cost side by side with plain AdamW and PEFT's OSF (asvd/cost/overhead.py).
# Outside the study's results directory: it does not depend on the study's config.
COST = "results/cost"


localrules:
    constraint_cost_report,


rule constraint_cost:
    output:
        f"{COST}/constraint.json",
    log:
        f"{COST}/logs/constraint_cost.log",
    conda:
        "../envs/asvd.yaml"
    # every core: the timings must not share the machine with other jobs (Snakemake caps a
    # rule's threads at --cores, and this also works where --cores is not given, e.g. --summary)
    threads: 1024
    resources:
        mem_mb=24000,
        runtime=240,  # minutes: three passes of every case take about 3 h on 2 CPU cores
    params:
        settings=config["constraint_cost"],
        code=code_version("constraint_cost"),
    script:
        "../scripts/constraint_cost.py"


rule constraint_cost_report:
    input:
        f"{COST}/constraint.json",
    output:
        md=f"{COST}/constraint.md",
        png=f"{COST}/constraint_overhead.png",
        pdf=f"{COST}/constraint_overhead.pdf",
    log:
        f"{COST}/logs/constraint_cost_report.log",
    conda:
        "../envs/asvd.yaml"
    params:
        code=code_version("constraint_cost_report"),
    script:
        "../scripts/constraint_cost_report.py"
