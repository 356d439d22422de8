"""The one error type that the CLI turns into a single red line and exit code 2.

Raise it for anything the user can fix (a path, a column, a flag); let internal bugs keep
their tracebacks so they get reported instead of hidden.
"""

import re


class UserError(Exception):
    """A problem with the user's input, phrased as 'what is wrong — how to fix it'.

    The message is one line whatever it quotes: a column name, a cell or a parser's message
    with line breaks in it is shown with them escaped, so the error stays one log line."""

    def __init__(self, message: str) -> None:
        super().__init__(re.sub(r"\r\n|\r|\n", lambda m: repr(m.group())[1:-1], str(message)))
