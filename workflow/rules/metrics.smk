localrules:
    collect_metrics,
    reference_run,


rule collect_metrics:
    input:
        base=f"{BASE}/{EVAL}",
        steps=STUDY.run_step_files(EVAL),
        train_logs=STUDY.run_step_files(TRAIN_LOG),
        premise=STUDY.premise_of_run,
        tuned=STUDY.tuning_of_run,
    output:
        matrix=f"{RUN}/{MATRIX}",
        summary=f"{RUN}/{SUMMARY}",
    log:
        f"{LOGS}/collect_metrics/{{method}}/order{{order}}/seed{{seed}}.log",
    conda:
        "../envs/asvd.yaml"
    params:
        tasks=STUDY.run_tasks,
        meta=STUDY.run_of,
        schedule=lambda wildcards: STUDY.methods[wildcards.method].schedule,
        tuned_keys=STUDY.tuned_keys,
        lr_scale=lambda wildcards: STUDY.methods[wildcards.method].lr_scale,
        code=code_version("collect_metrics"),
    script:
        "../scripts/collect_metrics.py"


rule reference_run:
    input:
        STUDY.reference_inputs,
    output:
        matrix=f"{PATHS.reference}/{MATRIX}",
        summary=f"{PATHS.reference}/{SUMMARY}",
    log:
        f"{LOGS}/reference_run/{{reference}}.log",
    conda:
        "../envs/asvd.yaml"
    params:
        source=lambda wildcards: STUDY.reference_source(wildcards.reference),
        order=lambda wildcards: STUDY.reference_runs[wildcards.reference]["order"],
        code=code_version("reference_run"),
    script:
        "../scripts/reference_run.py"
