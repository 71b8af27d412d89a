"""Training: models and checkpoints (models), the shared loop (loop), the base-model stage (base),
one continual task of any method (finetune), tuning on the first task (tuning, and the choice it
makes: choice), data parallelism (parallel) and resumable state (resume)."""
