rule evaluate_checkpoint:
    input:
        unpack(STUDY.checkpoint_eval_inputs),
    output:
        eval_json=f"{RESULTS}/{{checkpoint}}/{EVAL}",
    log:
        f"{LOGS}/evaluate_checkpoint/{{checkpoint}}.log",
    benchmark:
        f"{BENCH}/evaluate_checkpoint/{{checkpoint}}.tsv"
    wildcard_constraints:
        checkpoint=".+",
    conda:
        "../envs/asvd.yaml"
    threads: config["threads"]["evaluate_checkpoint"]
    resources:
        **config["resources"]["evaluate_checkpoint"],
    params:
        names=STUDY.checkpoint_eval_names,
        evaluation=config["evaluation"],
        code=code_version("evaluate_checkpoint"),
    script:
        "../scripts/evaluate_checkpoint.py"


# Measured by loading checkpoints and running samples through them, as an evaluation is: it takes
# evaluate_checkpoint's threads and resources.
rule measure_premise:
    input:
        unpack(STUDY.premise_inputs),
    output:
        premise=f"{RUN}/{PREMISE}",
    log:
        f"{LOGS}/measure_premise/{{method}}/order{{order}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/measure_premise/{{method}}/order{{order}}/seed{{seed}}.tsv"
    conda:
        "../envs/asvd.yaml"
    threads: config["threads"]["evaluate_checkpoint"]
    resources:
        **config["resources"]["evaluate_checkpoint"],
    params:
        method=STUDY.method_block,
        train=STUDY.first_task_settings,
        tasks=STUDY.run_tasks,
        samples=lambda wildcards: STUDY.premise["samples"],
        reference_name=lambda wildcards: STUDY.premise["reference"],
        reference=lambda wildcards: STUDY.premise_reference(),
        reference_train=STUDY.premise_reference_train,
        code=code_version("measure_premise"),
    script:
        "../scripts/measure_premise.py"
