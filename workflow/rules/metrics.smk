localrules:
    collect_metrics,


rule collect_metrics:
    input:
        base=BASE + "/eval.json",
        steps=lambda wildcards: step_paths(run_of(wildcards), "eval.json"),
    output:
        matrix=RUN + "/accuracy_matrix.csv",
        summary=RUN + "/summary.json",
    params:
        tasks=run_tasks,
        meta=lambda wildcards: dict(run_of(wildcards)),
        code=code_version("io", "metrics"),
    log:
        LOGS + "/collect_metrics/{method}/order{order}/seed{seed}.log",
    conda:
        "../envs/asvd.yaml"
    message:
        "Accuracy matrix and metrics of {wildcards.method} order {wildcards.order} seed {wildcards.seed}"
    script:
        "../scripts/collect_metrics.py"
