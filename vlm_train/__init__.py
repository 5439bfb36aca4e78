"""Fine-tuning VLMs on question records with transformers + peft (LoRA), GPU first, CPU for tests.
Never imports evaluation (evaluation imports `vlm_train.checkpoint`, not the reverse)."""
