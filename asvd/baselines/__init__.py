"""The continual-learning baselines the method is compared with: LoRA methods through peft
(lora), EWC and LwF loss terms (regularizers) and experience replay (replay)."""
