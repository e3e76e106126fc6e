"""trainer-reporting without extras: its reporters are registered, none counts as
installed, and constructing one names the extra that brings its library."""

import importlib.util

import trainer_reporting
from trainer_core import REPORT_TO_GROUP, MissingExtraError, available_plugins, installed_plugins

assert importlib.util.find_spec("torch") is None, "trainer-reporting must not pull in torch"
assert set(available_plugins(REPORT_TO_GROUP)) == {"tensorboard", "wandb", "mlflow"}
assert installed_plugins(REPORT_TO_GROUP) == {}, installed_plugins(REPORT_TO_GROUP)
for extra, callback in [
    ("tensorboard", trainer_reporting.TensorBoardCallback),
    ("wandb", trainer_reporting.WandbCallback),
    ("mlflow", trainer_reporting.MLflowCallback),
]:
    try:
        callback()
    except MissingExtraError as error:
        assert f"pip install 'trainer-reporting[{extra}]'" in str(error), error
        assert f"pip install 'trainer[{extra}]'" in str(error), error
    else:
        raise AssertionError(f"{callback.__name__} without its library must fail")
print("trainer-reporting: ok")
