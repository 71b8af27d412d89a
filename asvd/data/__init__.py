"""Benchmarks as data: the task registry (tasks), readers of O-LoRA's files, the hub and TRACE
(sources), the embedded synthetic benchmark (synthetic) and prepared records (prepare)."""
