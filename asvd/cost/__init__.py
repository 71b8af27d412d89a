"""What the constraint costs beside plain AdamW and peft's OSF (overhead)."""
