"""Repository-wide pytest set-up.

One intra-op thread for torch: the test machines have 2 cores, pytest already keeps
one busy, and torch's OpenMP workers spinning against it made a tiny model's backward
pass 200x slower (0.85 s instead of 4 ms) when anything else ran at the same time.
Subprocesses that tests start inherit the setting.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")


# tools/run_tests.sh runs each package's tests in an environment holding only that
# package, then the integration tests in the whole workspace. A package test skipped in
# the narrow environment (it needs transformers, say) must still run once: with
# TRAINER_TEST_SKIP_LOG set, the node id of every skipped test (or module) is appended to
# that file, and the second step runs those again.
_SKIP_LOG = os.environ.get("TRAINER_TEST_SKIP_LOG")


def _log_skip(report) -> None:
    if _SKIP_LOG and report.skipped and report.nodeid:
        with open(_SKIP_LOG, "a", encoding="utf-8") as log:
            log.write(report.nodeid + "\n")


def pytest_runtest_logreport(report) -> None:
    _log_skip(report)


def pytest_collectreport(report) -> None:
    _log_skip(report)


@pytest.fixture(autouse=True)
def _restore_logging_levels() -> Iterator[None]:
    """Give every test the logger set-up the previous one found.

    A Trainer sets its process's level on our package loggers (and, with transformers
    loaded, follows its verbosity, which some tests lower to silence transformers): one
    test's level must not hide the warnings the next one checks for.
    """
    ours = [
        logging.getLogger(name)
        for name in list(logging.root.manager.loggerDict)
        if "." not in name and name.startswith("trainer")
    ]
    saved = {logger.name: (logger, logger.level, logger.handlers[:]) for logger in ours}
    hf_logging = sys.modules.get("transformers.utils.logging")
    verbosity = hf_logging.get_verbosity() if hf_logging is not None else None
    yield
    for name in list(logging.root.manager.loggerDict):
        if "." in name or not name.startswith("trainer"):
            continue
        logger, level, handlers = saved.get(name, (logging.getLogger(name), logging.NOTSET, []))
        logger.setLevel(level)
        logger.handlers[:] = handlers
    hf_logging = sys.modules.get("transformers.utils.logging")
    if hf_logging is not None:
        hf_logging.set_verbosity(logging.WARNING if verbosity is None else verbosity)
