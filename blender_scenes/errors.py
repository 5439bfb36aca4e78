"""The one exception type for bad input, at the bottom floor so every package can raise it. Inner code
raises it; only the CLI turns it into a one-line message and a non-zero exit."""


class InputError(ValueError):
    """Bad input: the message names the file, the field and what was expected."""
