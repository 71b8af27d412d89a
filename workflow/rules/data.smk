rule prepare_dataset:
    output:
        train=RESULTS + "/data/{task}/train.jsonl",
        test=RESULTS + "/data/{task}/test.jsonl",
    params:
        benchmark=config["benchmark"],
        template=config["data"]["template"],
        seed=config["data"]["seed"],
        code=code_version("io", "data", "synthetic"),
    log:
        LOGS + "/prepare_dataset/{task}.log",
    benchmark:
        BENCH + "/prepare_dataset/{task}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
        gpu=0,
    conda:
        "../envs/asvd.yaml"
    message:
        "Preparing the {wildcards.task} train/test files"
    script:
        "../scripts/prepare_dataset.py"
