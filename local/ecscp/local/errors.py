"""The local stack's one error type, raised by every part of it."""


class LocalStackError(RuntimeError):
    """The local stack could not start, or a part of it died."""
