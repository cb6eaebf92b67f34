"""Errors a user can act on.

The CLI prints these as `error: <path relative to root>: <what is wrong> (<what to do>)` and exits with
the error's code — no traceback — because evaluators, not developers, read them.
"""
from __future__ import annotations

from pathlib import Path


class TongxingError(Exception):
    """Bad input or usage: exit code 2."""

    exit_code = 2

    def __init__(self, path: str | Path | None, what: str, hint: str = ""):
        self.path = str(path) if path is not None else ""
        self.what = what
        self.hint = hint
        super().__init__(self.format())

    def __reduce__(self):
        # errors raised in a forked worker travel back to the parent by pickling
        return (type(self), (self.path or None, self.what, self.hint))

    def format(self, root: Path | None = None) -> str:
        path = self.path
        if root is not None and path:
            try:
                path = str(Path(path).resolve().relative_to(Path(root).resolve()))
            except ValueError:
                pass
        text = f"error: {path}: {self.what}" if path else f"error: {self.what}"
        return f"{text} ({self.hint})" if self.hint else text


class ConfigError(TongxingError):
    """The configuration or a codebook is wrong."""


class InputError(TongxingError):
    """A raw export cannot be read or does not match its questionnaire."""


class ValidationFailed(TongxingError):
    """Clean data failed a critical expectation: exit code 1, nothing published."""

    exit_code = 1
