rule prepare_dataset:
    output:
        train=PATHS.data("{task}", "train.jsonl"),
        test=PATHS.data("{task}", "test.jsonl"),
        stats=PATHS.data("{task}", "stats.json"),
    log:
        f"{LOGS}/prepare_dataset/{{task}}.log",
    benchmark:
        f"{BENCH}/prepare_dataset/{{task}}.tsv"
    conda:
        "../envs/asvd.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
        gpu=0,
    params:
        benchmark=config["benchmark"],
        template=config["data"]["template"],
        seed=config["data"]["seed"],
        code=code_version("prepare_dataset"),
    script:
        "../scripts/prepare_dataset.py"
