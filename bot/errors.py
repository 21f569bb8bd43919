"""Errors meant for the person who typed something: each platform adapter shows the message."""


class UserError(Exception):
    """Bad input from a user: the message says what is accepted. Nothing was changed."""


class StartupError(Exception):
    """`run` cannot start (a rejected bot token, say): one line for the person running it."""
