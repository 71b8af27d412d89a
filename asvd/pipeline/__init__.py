"""What the workflow needs around the stages: config validation (validation), the retention
ablation's methods (ablations), per-job runtime (runtime), damaged results (damage) and code
fingerprints (fingerprints)."""
