"""Each reporter name resolves through the real entry-point loader to its callback."""

from __future__ import annotations

import pytest

import trainer_reporting
from trainer_core import REPORT_TO_GROUP, Reporter, TrainerCallback, available_plugins, load_plugin


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("tensorboard", trainer_reporting.TensorBoardCallback),
        ("wandb", trainer_reporting.WandbCallback),
        ("mlflow", trainer_reporting.MLflowCallback),
    ],
)
def test_name_loads_the_callback_that_carries_it(name: str, expected: type) -> None:
    loaded = load_plugin(REPORT_TO_GROUP, name)
    assert loaded is expected
    assert loaded.name == name
    assert issubclass(loaded, TrainerCallback)
    assert available_plugins(REPORT_TO_GROUP)[name] == "trainer-reporting"


@pytest.mark.parametrize("name", ["tensorboard", "wandb", "mlflow"])
def test_every_reporter_satisfies_the_port(name: str) -> None:
    callback = load_plugin(REPORT_TO_GROUP, name)()
    assert isinstance(callback, Reporter)


def test_exports() -> None:
    for name in ("TensorBoardCallback", "WandbCallback", "MLflowCallback", "rewrite_logs"):
        assert name in trainer_reporting.__all__
