"""Evaluation: position questions from COCO boxes, running models, answer parsing, metrics and reports.
Never imports bpy; torch/transformers only inside the model runner (and `vlm_train.checkpoint`, the one
place evaluation imports vlm_train from: the direction is evaluation -> vlm_train, never the reverse)."""
