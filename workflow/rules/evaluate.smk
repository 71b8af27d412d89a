rule evaluate_checkpoint:
    input:
        unpack(checkpoint_eval_inputs),
    output:
        eval_json="{checkpoint}/eval.json",
    log:
        f"{LOGS}/evaluate_checkpoint/{{checkpoint}}.log",
    benchmark:
        f"{BENCH}/evaluate_checkpoint/{{checkpoint}}.tsv"
    wildcard_constraints:
        checkpoint=f"{RESULTS}/.+",
    conda:
        "../envs/asvd.yaml"
    threads: config["threads"]["evaluate_checkpoint"]
    resources:
        **config["resources"]["evaluate_checkpoint"],
    params:
        names=checkpoint_eval_names,
        evaluation=config["evaluation"],
        code=code_version("evaluate_checkpoint"),
    message:
        "Evaluating {wildcards.checkpoint} on every task and the general set"
    script:
        "../scripts/evaluate_checkpoint.py"


# Measured by loading checkpoints and running samples through them, as an evaluation is: it takes
# evaluate_checkpoint's threads and resources.
rule measure_premise:
    input:
        unpack(premise_inputs),
    output:
        premise=f"{RUN}/premise.json",
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
        method=method_config,
        train=lambda wildcards: train_settings(
            wildcards.method, run_tasks(wildcards)[0]
        ),
        tasks=run_tasks,
        samples=lambda wildcards: PREMISE["samples"],
        reference_name=lambda wildcards: PREMISE["reference"],
        reference=lambda wildcards: PREMISE["reference"]
        and config["methods"][PREMISE["reference"]],
        reference_train=lambda wildcards: PREMISE["reference"]
        and train_settings(PREMISE["reference"], run_tasks(wildcards)[0]),
        code=code_version("measure_premise"),
    message:
        "Where each task's inputs fall in the frozen subspaces of {wildcards.method} order {wildcards.order} seed {wildcards.seed}"
    script:
        "../scripts/measure_premise.py"
