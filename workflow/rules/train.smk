rule finetune_task:
    input:
        checkpoint=previous_checkpoint,
        svd=previous_svd,
        train=lambda wildcards: f"{RESULTS}/data/{task_of_step(wildcards)}/train.jsonl",
        previous_train=previous_train_data,
        earlier_train=earlier_train_data,
        base=shared_adapter_base,
        tuned=tuning_of_run,
    output:
        model=directory(f"{STEP}/model"),
        log_json=f"{STEP}/train_log.json",
    log:
        f"{LOGS}/finetune_task/{{method}}/order{{order}}/seed{{seed}}/step{{step}}.log",
    benchmark:
        f"{BENCH}/finetune_task/{{method}}/order{{order}}/seed{{seed}}/step{{step}}.tsv"
    conda:
        "../envs/asvd.yaml"
    threads: config["threads"]["finetune_task"]
    resources:
        **config["resources"]["finetune_task"],
    params:
        method=method_config,
        train=task_train_settings,
        task=task_of_step,
        earlier_tasks=earlier_tasks,
        tuned_keys=tuned_keys,
        task_count=lambda wildcards: len(run_tasks(wildcards)),
        # intra-task state of a killed job, outside the outputs so a rerun resumes from it
        resume=f"{RESULTS}/resume/{{method}}/order{{order}}/seed{{seed}}/step{{step}}/train_state.pt",
        code=code_version("finetune_task"),
    message:
        "Training {wildcards.method} order {wildcards.order} seed {wildcards.seed}: task {wildcards.step}"
    script:
        "../scripts/finetune_task.py"


# The order's first task trained from the base model once per candidate of the tuning grid and
# scored on a held-out share of its training data: the lr (and trr) every task of the method's
# runs in that order then uses. One job trains every candidate, each as a training job would.
rule tune_first_task:
    input:
        base=f"{BASE}/model",
        svd=lambda wildcards: (
            [f"{BASE}/svd.safetensors"]
            if METHODS[wildcards.method].constrained
            else []
        ),
        train=lambda wildcards: f"{RESULTS}/data/{run_tasks(wildcards)[0]}/train.jsonl",
    output:
        tuning=f"{TUNING_RESULT}",
    log:
        f"{LOGS}/tune_first_task/{{method}}/order{{order}}.log",
    benchmark:
        f"{BENCH}/tune_first_task/{{method}}/order{{order}}.tsv"
    conda:
        "../envs/asvd.yaml"
    threads: config["threads"]["finetune_task"]
    resources:
        # a training job's, its runtime once per candidate (a training and an evaluation each)
        mem_mb=config["resources"]["finetune_task"]["mem_mb"],
        gpu=config["resources"]["finetune_task"]["gpu"],
        runtime=lambda wildcards: config["resources"]["finetune_task"]["runtime"]
        * len(tuning_candidates(wildcards.method)),
    params:
        method=method_config,
        train=lambda wildcards: train_settings(
            wildcards.method, run_tasks(wildcards)[0]
        ),
        task=lambda wildcards: run_tasks(wildcards)[0],
        task_count=lambda wildcards: len(run_tasks(wildcards)),
        grid=lambda wildcards: TUNING["grid"],
        validation=lambda wildcards: TUNING["validation"],
        seed=lambda wildcards: TUNING["seed"],
        evaluation=config["evaluation"],
        code=code_version("tune_first_task"),
    message:
        "Tuning {wildcards.method} on the first task of order {wildcards.order}"
    script:
        "../scripts/tune_first_task.py"
