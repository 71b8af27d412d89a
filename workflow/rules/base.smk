rule base_model:
    input:
        unpack(STUDY.base_model_inputs),
    output:
        model=directory(f"{BASE}/{MODEL}"),
        log_json=f"{BASE}/{TRAIN_LOG}",
    log:
        f"{LOGS}/base_model.log",
    benchmark:
        f"{BENCH}/base_model.tsv"
    conda:
        "../envs/asvd.yaml"
    threads: config["threads"]["base_model"]
    resources:
        **config["resources"]["base_model"],
    params:
        pretrained=config["base_model"].get("pretrained"),
        warm_start=config["base_model"].get("warm_start"),
        instruction_tune=STUDY.instruction_tuned,
        family=config["base_model"]["family"],
        architecture=config["base_model"]["architecture"],
        train=config["base_model"]["train"],
        seed=config["base_model"]["seed"],
        code=code_version("base_model"),
    script:
        "../scripts/base_model.py"
