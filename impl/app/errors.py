"""The one exception class of the application layer."""


class UserError(ValueError):
    """Something the user can fix: a missing or unreadable file, wrong file contents, a bad flag value.

    The ``n2n`` command prints the message without a traceback and exits with status 2.
    """
