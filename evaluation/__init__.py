"""Evaluation: position questions from COCO boxes, running models, answer parsing, metrics and reports.
Never imports bpy; torch/transformers only inside the model runner."""
