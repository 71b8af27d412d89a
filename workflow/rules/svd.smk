rule svd_cache:
    input:
        model=f"{{checkpoint}}/{MODEL}",
    output:
        svd=f"{{checkpoint}}/{SVD_CACHE}",
    log:
        f"{LOGS}/svd_cache/{{checkpoint}}.log",
    benchmark:
        f"{BENCH}/svd_cache/{{checkpoint}}.tsv"
    wildcard_constraints:
        checkpoint=f"{RESULTS}/.+",
    conda:
        "../envs/asvd.yaml"
    threads: config["threads"]["svd_cache"]
    resources:
        **config["resources"]["svd_cache"],
    params:
        targets=STUDY.svd_targets(),
        code=code_version("svd_cache"),
    message:
        "SVD of every target of {wildcards.checkpoint}"
    script:
        "../scripts/svd_cache.py"
