"""The helpers every reporter shares: log sections, numbers, env flags, model info."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trainer_reporting import rewrite_logs
from trainer_reporting._logs import (
    count_parameters,
    env_flag,
    model_config_dict,
    model_config_json,
    scalar_value,
)


def test_rewrite_logs_groups_keys_by_section() -> None:
    logs = {"loss": 1.0, "eval_loss": 0.5, "test_accuracy": 0.9, "learning_rate": 0.1}
    assert rewrite_logs(logs) == {
        "train/loss": 1.0,
        "eval/loss": 0.5,
        "test/accuracy": 0.9,
        "train/learning_rate": 0.1,
    }


def test_rewrite_logs_only_strips_a_leading_prefix() -> None:
    assert rewrite_logs({"my_eval_loss": 2}) == {"train/my_eval_loss": 2}


class _OneElement:
    """An object shaped like a one-element tensor (``numel`` and ``item``)."""

    def __init__(self, value: float, size: int = 1) -> None:
        self.value, self.size_ = value, size

    def numel(self) -> int:
        return self.size_

    def item(self) -> float:
        return self.value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, 3),
        (0.5, 0.5),
        (True, 1),
        (np.float32(0.25), 0.25),
        (np.array([7.0]), 7.0),
        (_OneElement(1.5), 1.5),
        (_OneElement(1.5, size=2), None),
        ("text", None),
        ([1.0], None),
        (None, None),
    ],
)
def test_scalar_value(value: object, expected: float | None) -> None:
    assert scalar_value(value) == expected


def test_env_flag_reads_true_spellings(monkeypatch: pytest.MonkeyPatch) -> None:
    for spelling in ("1", "true", "YES", "on"):
        monkeypatch.setenv("REPORTING_FLAG", spelling)
        assert env_flag("REPORTING_FLAG")
    monkeypatch.setenv("REPORTING_FLAG", "no")
    assert not env_flag("REPORTING_FLAG")
    monkeypatch.delenv("REPORTING_FLAG")
    assert not env_flag("REPORTING_FLAG")


class _Config:
    def to_dict(self) -> dict[str, int]:
        return {"hidden_size": 8}


class _Model:
    def __init__(self, config: object) -> None:
        self.config = config


def test_model_config_from_an_object_a_dict_or_nothing() -> None:
    assert model_config_dict(_Model(_Config())) == {"hidden_size": 8}
    assert model_config_dict(_Model({"layers": 2})) == {"layers": 2}
    assert model_config_dict(object()) is None
    assert json.loads(model_config_json(_Model({"layers": 2})) or "") == {"layers": 2}
    assert model_config_json(None) is None


def test_count_parameters_prefers_num_parameters() -> None:
    class WithCount:
        def num_parameters(self) -> int:
            return 42

    class WithParameters:
        def parameters(self) -> list[np.ndarray]:
            return [_OneElement(0.0, size=3), _OneElement(0.0, size=4)]  # type: ignore[list-item]  # numel-shaped

    assert count_parameters(WithCount()) == 42
    assert count_parameters(WithParameters()) == 7
    assert count_parameters(object()) is None
