"""What the workflow needs around the stages: config validation against the schema (validation)
and across keys (study_checks), the retention ablation's methods (ablations), per-job runtime
(runtime), damaged results (damage) and code fingerprints (fingerprints)."""
