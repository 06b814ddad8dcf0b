"""The one error the local stack raises: its message is meant for a person, not a traceback."""

from __future__ import annotations


class LocalStackError(Exception):
    """A local server could not be installed, started, checked or stopped."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
