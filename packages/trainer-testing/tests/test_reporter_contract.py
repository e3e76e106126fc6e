"""The reporter contract suite accepts a well-behaved reporter and names what breaks."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from trainer_core import TrainerCallback
from trainer_testing.reporter_contract import check_reporter_contract

ARGS = SimpleNamespace(output_dir="unused")


class Recording(TrainerCallback):
    name = "recording"

    def __init__(self) -> None:
        self.logged: list[int] = []

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self.logged.append(state.global_step)


class NoExtraKeywords(Recording):
    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None) -> None:  # type: ignore[override]
        pass


class RaisesOnText(Recording):
    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        for value in (logs or {}).values():
            float(value)


class NeedsArguments(Recording):
    def __init__(self, project: str) -> None:
        super().__init__()


def test_a_reporter_meeting_the_contract_passes() -> None:
    check_reporter_contract(Recording, ARGS, registered=False)


def test_a_reporter_without_a_name_fails() -> None:
    with pytest.raises(AssertionError, match="name must be a non-empty string"):
        check_reporter_contract(TrainerCallback, ARGS, registered=False)


@pytest.mark.parametrize("reporter", [NoExtraKeywords, RaisesOnText, NeedsArguments])
def test_what_the_loop_would_trip_on_fails(reporter: type) -> None:
    with pytest.raises((TypeError, ValueError)):
        check_reporter_contract(reporter, ARGS, registered=False)


def test_an_unregistered_reporter_fails_the_registration_check() -> None:
    with pytest.raises(Exception, match="recording"):
        check_reporter_contract(Recording, ARGS, registered=True)
