localrules:
    collect_metrics,
    reference_run,


rule collect_metrics:
    input:
        base=f"{BASE}/eval.json",
        steps=lambda wildcards: step_paths(run_of(wildcards), "eval.json"),
        train_logs=lambda wildcards: step_paths(run_of(wildcards), "train_log.json"),
        premise=premise_of_run,
        tuned=tuning_of_run,
    output:
        matrix=f"{RUN}/accuracy_matrix.csv",
        summary=f"{RUN}/summary.json",
    log:
        f"{LOGS}/collect_metrics/{{method}}/order{{order}}/seed{{seed}}.log",
    conda:
        "../envs/asvd.yaml"
    params:
        tasks=run_tasks,
        meta=lambda wildcards: dict(run_of(wildcards)),
        schedule=lambda wildcards: METHODS[wildcards.method].schedule,
        tuned_keys=tuned_keys,
        lr_scale=lambda wildcards: METHODS[wildcards.method].lr_scale,
        code=code_version("collect_metrics"),
    message:
        "Accuracy matrix and metrics of {wildcards.method} order {wildcards.order} seed {wildcards.seed}"
    script:
        "../scripts/collect_metrics.py"


rule reference_run:
    input:
        reference_inputs,
    output:
        matrix=f"{REFERENCE}/accuracy_matrix.csv",
        summary=f"{REFERENCE}/summary.json",
    log:
        f"{LOGS}/reference_run/{{reference}}.log",
    conda:
        "../envs/asvd.yaml"
    params:
        source=lambda wildcards: reference_source(wildcards.reference),
        order=lambda wildcards: REFERENCE_RUNS[wildcards.reference]["order"],
        code=code_version("reference_run"),
    message:
        "Published run {wildcards.reference} as an accuracy matrix and summary"
    script:
        "../scripts/reference_run.py"
