"""CLI commands of the evaluation package (registered by scenes2real.cli)."""
COMMANDS: list = []
