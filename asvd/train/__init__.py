"""Training: models and checkpoints (models), the shared loop (loop), the base-model stage (base),
one continual task of any method (finetune), data parallelism (parallel) and resumable state
(resume)."""
