"""The one exception type for bad input. Inner code raises it; only the CLI turns it into a
one-line message and a non-zero exit."""


class InputError(ValueError):
    """Bad input: the message names the file, the field and what was expected."""


def where(path, field: str | None = None) -> str:
    """`file: field` prefix for messages, so every error names its place the same way."""
    return f"{path}: {field}" if field else f"{path}"
