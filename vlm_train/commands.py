"""CLI commands of the training package (registered by scenes2real.cli)."""
COMMANDS: list = []
