"""The string enums and the step-interval helpers."""

from __future__ import annotations

import json

import pytest

from trainer_args import (
    DebugOption,
    FSDPOption,
    HubStrategy,
    IntervalStrategy,
    OptimizerNames,
    ParallelMode,
    SaveStrategy,
    SchedulerType,
    ShardedDDPOption,
    resolve_steps,
)
from trainer_args._steps import is_whole_multiple

ENUMS = (
    IntervalStrategy,
    SaveStrategy,
    SchedulerType,
    OptimizerNames,
    HubStrategy,
    FSDPOption,
    DebugOption,
    ShardedDDPOption,
    ParallelMode,
)


@pytest.mark.parametrize("enum_cls", ENUMS, ids=[e.__name__ for e in ENUMS])
def test_members_are_strings_equal_to_their_values(enum_cls: type) -> None:
    for member in enum_cls:
        assert isinstance(member, str)
        assert member == member.value and hash(member) == hash(member.value)
        assert str(member) == f"{member}" == member.value
        assert repr(member) == repr(member.value)
        assert json.dumps(member) == json.dumps(member.value)
        assert enum_cls(member.value) is member


@pytest.mark.parametrize("enum_cls", ENUMS, ids=[e.__name__ for e in ENUMS])
def test_unknown_value_lists_the_accepted_ones(enum_cls: type) -> None:
    with pytest.raises(ValueError, match="not a valid") as caught:
        enum_cls("no-such-value")
    first = next(iter(enum_cls))
    assert repr(first.value) in str(caught.value)


def test_names_the_brief_requires() -> None:
    assert SchedulerType.values() == [
        "linear",
        "cosine",
        "cosine_with_restarts",
        "polynomial",
        "constant",
        "constant_with_warmup",
        "inverse_sqrt",
        "reduce_lr_on_plateau",
        "cosine_with_min_lr",
        "cosine_warmup_with_min_lr",
        "warmup_stable_decay",
        "greedy",
    ]
    assert SaveStrategy.values() == [*IntervalStrategy.values(), "best"]
    assert HubStrategy.values() == ["end", "every_save", "checkpoint", "all_checkpoints"]
    v434_optimizers = {
        "adamw_hf",
        "adamw_torch",
        "adamw_torch_fused",
        "adamw_torch_xla",
        "adamw_apex_fused",
        "adafactor",
        "adamw_anyprecision",
        "sgd",
        "adagrad",
        "adamw_bnb_8bit",
        "adamw_8bit",
        "lion_8bit",
        "lion_32bit",
        "paged_adamw_32bit",
        "paged_adamw_8bit",
        "paged_lion_32bit",
        "paged_lion_8bit",
        "rmsprop",
    }
    assert v434_optimizers <= set(OptimizerNames.values())
    assert {"not_parallel", "not_distributed", "distributed", "tpu"} <= set(ParallelMode.values())


@pytest.mark.parametrize(
    ("value", "total", "expected"),
    [
        (500, 10_000, 500),
        (500.0, 10, 500),
        (0.1, 1000, 100),
        (0.1, 95, 10),
        (0.001, 10, 1),
        (0, 100, 0),
        (1, 100, 1),
    ],
)
def test_resolve_steps(value: float, total: int, expected: int) -> None:
    result = resolve_steps(value, total)
    assert result == expected and isinstance(result, int)


@pytest.mark.parametrize(("value", "total"), [(0.5, 0), (0.5, -1), (-1, 100), (2.5, 100)])
def test_resolve_steps_rejects(value: float, total: int) -> None:
    with pytest.raises(ValueError):
        resolve_steps(value, total)


@pytest.mark.parametrize(
    ("value", "base", "expected"),
    [
        (200, 50, True),
        (100, 30, False),
        (0.3, 0.1, True),
        (0.25, 0.1, False),
        (50, 100, False),
        (100, 100, True),
    ],
)
def test_is_whole_multiple(value: float, base: float, expected: bool) -> None:
    assert is_whole_multiple(value, base) is expected
