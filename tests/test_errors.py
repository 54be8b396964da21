"""depthlab's error types: a DataError raised in a DataLoader worker reaches the user as its own message."""

from __future__ import annotations

import sys

import pytest
from torch._utils import ExceptionWrapper

from depthlab.errors import ConfigError, DataError, Problem


def _through_a_worker(exc: BaseException) -> BaseException:
    """What torch re-raises in the main process for ``exc`` raised in DataLoader worker 3."""
    try:
        raise exc
    except BaseException:
        wrapper = ExceptionWrapper(sys.exc_info(), where="in DataLoader worker process 3")
    with pytest.raises(BaseException) as caught:
        wrapper.reraise()
    return caught.value


def test_problem_line_names_file_and_list_line():
    problem = Problem("missing file", "/d/gt/0001.png", "no such file", "/d/list.txt:3")
    assert str(problem) == "/d/gt/0001.png: missing file: no such file (listed at /d/list.txt:3)"
    assert str(DataError([problem, problem])) == f"{problem}; {problem}"


def test_worker_data_error_is_its_one_line_message():
    problem = Problem("missing file", "/d/gt/0001.png", "no such file", "/d/list.txt:3")
    error = _through_a_worker(DataError(problem))
    assert type(error) is DataError and isinstance(error, ConfigError)  # the CLI's one-line handler prints it
    assert str(error) == str(problem)


def test_other_messages_are_kept():
    assert str(DataError("Caught DataError somewhere")) == "Caught DataError somewhere"
    wrapped = "Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n  x\n"
    assert str(DataError(wrapped)) == wrapped  # no exception line to unwrap: left as it is
