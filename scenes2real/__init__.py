"""scenes2real: the command line (`scenes2real.cli`), the top floor over `vlm_train`, `evaluation` and
`blender_scenes`. Nothing below imports it."""
