"""Fine-tuning VLMs on question records with transformers + peft (LoRA), GPU first, CPU for tests."""
