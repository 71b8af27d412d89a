rule svd_cache:
    input:
        model="{checkpoint}/model",
    output:
        svd="{checkpoint}/svd.safetensors",
    params:
        targets=svd_targets(),
        code=code_version("constraint", "io", "models", "svd"),
    log:
        LOGS + "/svd_cache/{checkpoint}.log",
    benchmark:
        BENCH + "/svd_cache/{checkpoint}.tsv"
    wildcard_constraints:
        checkpoint=RESULTS + "/.+",
    threads: config["threads"]["svd_cache"]
    resources:
        **config["resources"]["svd_cache"],
    conda:
        "../envs/asvd.yaml"
    message:
        "SVD of every target of {wildcards.checkpoint}"
    script:
        "../scripts/svd_cache.py"
