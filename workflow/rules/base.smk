rule base_model:
    input:
        general=RESULTS + f"/data/{GENERAL}/train.jsonl",
        vocabulary=expand(
            RESULTS + "/data/{task}/{split}.jsonl",
            task=[*BENCHMARK_TASKS, GENERAL],
            split=["train", "test"],
        ),
    output:
        model=directory(BASE + "/model"),
        log_json=BASE + "/train_log.json",
    params:
        family=config["base_model"]["family"],
        architecture=config["base_model"]["architecture"],
        train=config["base_model"]["train"],
        seed=config["base_model"]["seed"],
        code=code_version("io", "data", "models", "training"),
    log:
        LOGS + "/base_model.log",
    benchmark:
        BENCH + "/base_model.tsv"
    threads: config["threads"]["base_model"]
    resources:
        **config["resources"]["base_model"],
    conda:
        "../envs/asvd.yaml"
    message:
        "Pretraining the base model on the general mixture"
    script:
        "../scripts/base_model.py"
