rule evaluate_checkpoint:
    input:
        unpack(checkpoint_eval_inputs),
    output:
        eval_json="{checkpoint}/eval.json",
    params:
        names=checkpoint_eval_names,
        evaluation=config["evaluation"],
        code=code_version("data", "evaluation", "io", "models"),
    log:
        LOGS + "/evaluate_checkpoint/{checkpoint}.log",
    benchmark:
        BENCH + "/evaluate_checkpoint/{checkpoint}.tsv"
    wildcard_constraints:
        checkpoint=RESULTS + "/.+",
    threads: config["threads"]["evaluate_checkpoint"]
    resources:
        **config["resources"]["evaluate_checkpoint"],
    conda:
        "../envs/asvd.yaml"
    message:
        "Evaluating {wildcards.checkpoint} on every task and the general set"
    script:
        "../scripts/evaluate_checkpoint.py"
