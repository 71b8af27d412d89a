rule finetune_task:
    input:
        checkpoint=previous_checkpoint,
        svd=previous_svd,
        train=lambda wildcards: f"{RESULTS}/data/{task_of_step(wildcards)}/train.jsonl",
        previous_train=previous_train_data,
        earlier_train=earlier_train_data,
        base=shared_adapter_base,
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
        task_count=lambda wildcards: len(run_tasks(wildcards)),
        # intra-task state of a killed job, outside the outputs so a rerun resumes from it
        resume=f"{RESULTS}/resume/{{method}}/order{{order}}/seed{{seed}}/step{{step}}/train_state.pt",
        code=code_version("finetune_task"),
    message:
        "Training {wildcards.method} order {wildcards.order} seed {wildcards.seed}: task {wildcards.step}"
    script:
        "../scripts/finetune_task.py"
