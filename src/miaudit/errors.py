"""Errors that carry a one-line message for the user."""


class InputError(ValueError):
    """Bad input from the user: the CLI prints the message on one line and exits with code 2.

    The message names the offending field or value, e.g. ``"--members: 9000 requested, 4000 available"``.
    """
