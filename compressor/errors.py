"""The one error type that the CLI turns into a single red line and exit code 2.

Raise it for anything the user can fix (a path, a column, a flag); let internal bugs keep
their tracebacks so they get reported instead of hidden.
"""


class UserError(Exception):
    """A problem with the user's input, phrased as 'what is wrong — how to fix it'."""
