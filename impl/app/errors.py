"""The one exception class of the application layer."""

from __future__ import annotations


class UserError(ValueError):
    """Something the user can fix: a missing or unreadable file, wrong file contents, a bad value.

    The ``n2n`` command prints the message without a traceback and exits with status 2.

    Args:
        message: what is wrong; when ``field`` is given the message starts with it
            (``"batch_size must be an integer >= 1, got 0"``).
        field: the library's name of the setting the message is about (a :class:`TrainConfig`
            field, ``images``, ``val_size`` ...), or None. The CLI turns it into the flag the user
            passed, or names the file the value came from.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    @property
    def detail(self) -> str:
        """The message after its leading field name (the whole message when it has none)."""
        text = str(self)
        if self.field is not None and text.startswith(self.field):
            return text[len(self.field) :]
        return text if self.field is None else f": {text}"


def field_error(field: str, text: str) -> UserError:
    """``UserError(f"{field} {text}", field)``: a message about one named setting."""
    return UserError(f"{field}{text if text.startswith(':') else ' ' + text}", field)
