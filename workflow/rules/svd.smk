rule svd_cache:
    input:
        model=f"{RESULTS}/{{checkpoint}}/{MODEL}",
    output:
        svd=f"{RESULTS}/{{checkpoint}}/{SVD_CACHE}",
    log:
        f"{LOGS}/svd_cache/{{checkpoint}}/svd-{{targets}}.log",
    benchmark:
        f"{BENCH}/svd_cache/{{checkpoint}}/svd-{{targets}}.tsv"
    wildcard_constraints:
        checkpoint=".+",
        targets=SVD_KEY,
    conda:
        "../envs/asvd.yaml"
    threads: config["threads"]["svd_cache"]
    resources:
        **config["resources"]["svd_cache"],
    params:
        targets=lambda wildcards: STUDY.svd_targets(wildcards.targets),
        code=code_version("svd_cache"),
    script:
        "../scripts/svd_cache.py"
