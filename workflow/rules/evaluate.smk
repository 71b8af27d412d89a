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
