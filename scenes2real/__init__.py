"""scenes2real: the command line and the few pieces every package shares (errors)."""
