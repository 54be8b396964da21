"""depthlab's user-facing errors: the CLI prints each as one line instead of a traceback."""

from __future__ import annotations

import re
from dataclasses import dataclass


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key and what would be right."""


def unwrap_config_error(exc: BaseException) -> BaseException:
    """The :class:`ConfigError` that jsonargparse wrapped (with its long traceback) in ``exc``, else ``exc``."""
    cause = exc
    while cause is not None and not isinstance(cause, ConfigError):
        cause = cause.__cause__ or cause.__context__
    return cause if cause is not None else exc


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one data file. ``source`` is the ``list:lineno`` that named the file."""

    kind: str
    path: str
    detail: str
    source: str

    def __str__(self) -> str:
        return f"{self.path}: {self.kind}: {self.detail} (listed at {self.source})"


# How torch re-raises an exception of a DataLoader worker in the main process (``ExceptionWrapper``):
# ``type(msg)`` with "Caught <Type> in DataLoader worker process N.\nOriginal Traceback ...", the
# worker's traceback, and last the original "<module>.<Type>: <message>".
_WORKER_WRAPPED = re.compile(r"\ACaught (?P<type>\w+) in DataLoader worker process \d+\.\nOriginal Traceback")


def _unwrap_worker_message(message: str) -> str:
    """The original message of an exception torch re-raises from a DataLoader worker (else ``message``)."""
    wrapped = _WORKER_WRAPPED.match(message)
    if wrapped is None:
        return message
    lines = message.rstrip("\n").splitlines()
    for i in range(len(lines) - 1, 0, -1):  # the last line that starts the exception's own text
        head, sep, rest = lines[i].partition(": ")
        if sep and not lines[i].startswith(" ") and head.rsplit(".", 1)[-1] == wrapped["type"]:
            return "\n".join([rest, *lines[i + 1:]])
    return message


class DataError(ConfigError):
    """A data file is missing or malformed; the message names the file and its split-list line.

    Raised in a DataLoader worker, torch re-raises it in the main process from the worker's
    formatted traceback; the constructor keeps only the original message, so the user sees the one
    line that names the file (``depthlab: error: <path>: missing file: ... (listed at list.txt:3)``).
    """

    def __init__(self, message: str | Problem | list[Problem]) -> None:
        problems = [message] if isinstance(message, Problem) else message if isinstance(message, list) else []
        self.problems: list[Problem] = problems
        super().__init__("; ".join(map(str, problems)) if problems else _unwrap_worker_message(str(message)))
