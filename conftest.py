"""Repository-wide pytest set-up.

One intra-op thread for torch: the test machines have 2 cores, pytest already keeps
one busy, and torch's OpenMP workers spinning against it made a tiny model's backward
pass 200x slower (0.85 s instead of 4 ms) when anything else ran at the same time.
Subprocesses that tests start inherit the setting.
"""

from __future__ import annotations

import os

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
