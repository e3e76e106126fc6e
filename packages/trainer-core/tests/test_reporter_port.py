"""The Reporter port: a callback with a name, checked structurally."""

from __future__ import annotations

from typing import Any, ClassVar

from trainer_core import Reporter, TrainerCallback


class _Named(TrainerCallback):
    name: ClassVar[str] = "demo"


class _NoName(TrainerCallback):
    pass


class _NoEvents:
    name = "demo"

    def on_log(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        pass


def test_a_named_callback_is_a_reporter() -> None:
    assert isinstance(_Named(), Reporter)


def test_a_callback_without_a_name_is_not_a_reporter() -> None:
    assert not isinstance(_NoName(), Reporter)


def test_a_name_without_the_train_events_is_not_a_reporter() -> None:
    assert not isinstance(_NoEvents(), Reporter)
