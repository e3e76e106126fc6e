"""When ZeRO-3 arguments register their config for ``zero.Init``, and what they register.

Nothing here starts a process group (stage-3 registration does: it runs on two processes
in integration_tests/test_deepspeed_zero_init.py). Stage-3 arguments are plain namespaces
so that an installed arguments hook cannot act on them when they are built.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from trainer_core import ARGUMENTS_HOOKS_GROUP, available_plugins
from trainer_dist import (
    DeepSpeedConfig,
    DeepSpeedConfigMismatchError,
    register_zero3_init,
    wants_zero3_init,
    zero3_init_config,
)
from trainer_dist._deepspeed import _check_partitioned_stage, is_zero3_partitioned

HOOK_NAME = "deepspeed_zero3_init"
STAGE_3 = {
    "train_batch_size": "auto",
    "train_micro_batch_size_per_gpu": "auto",
    "gradient_accumulation_steps": "auto",
    "gradient_clipping": "auto",
    "optimizer": {"type": "AdamW", "params": {"lr": "auto", "weight_decay": "auto"}},
    "scheduler": {"type": "WarmupLR", "params": {"warmup_num_steps": "auto"}},
    "zero_optimization": {
        "stage": 3,
        "reduce_bucket_size": "auto",
        "stage3_prefetch_bucket_size": "auto",
        "stage3_param_persistence_threshold": "auto",
    },
}
_LAUNCHER_VARIABLES = (
    "WORLD_SIZE",
    "RANK",
    "LOCAL_RANK",
    "ACCELERATE_USE_DEEPSPEED",
    "ACCELERATE_DEEPSPEED_CONFIG_FILE",
    "ACCELERATE_DEEPSPEED_ZERO_STAGE",
    "ACCELERATE_DEEPSPEED_ZERO3_INIT",
    "ACCELERATE_MIXED_PRECISION",
)


@pytest.fixture(autouse=True)
def _no_launcher(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def arguments(**overrides: Any) -> SimpleNamespace:
    values = {
        "deepspeed": STAGE_3,
        "fsdp": "",
        "use_cpu": True,
        "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 3,
        "learning_rate": 0.01,
        "weight_decay": 0.1,
        "max_grad_norm": 0.5,
    }
    return SimpleNamespace(**{**values, **overrides})


# ------------------------------------------------------------------ decisions
@pytest.mark.parametrize("stage", [0, 1, 2])
def test_only_zero3_partitions_while_building(stage: int) -> None:
    config = DeepSpeedConfig({"zero_optimization": {"stage": stage}})
    assert not wants_zero3_init(config, from_accelerate=False, environ={})
    assert not wants_zero3_init(config, from_accelerate=True, environ={})


def test_the_deepspeed_argument_registers_whatever_the_launcher_flag() -> None:
    config = DeepSpeedConfig(STAGE_3)
    flag_off = {"ACCELERATE_DEEPSPEED_ZERO3_INIT": "false"}
    assert wants_zero3_init(config, from_accelerate=False, environ=flag_off)  # as the reference


@pytest.mark.parametrize(
    ("flag", "expected"),
    [(None, True), ("true", True), ("True", True), ("1", True), ("false", False), ("0", False)],
)
def test_accelerate_follows_zero3_init_flag(flag: str | None, expected: bool) -> None:
    environ = {} if flag is None else {"ACCELERATE_DEEPSPEED_ZERO3_INIT": flag}
    assert wants_zero3_init(DeepSpeedConfig(STAGE_3), from_accelerate=True, environ=environ) is (
        expected
    )


def test_a_flag_that_is_not_a_boolean_is_refused() -> None:
    with pytest.raises(ValueError, match=r"ACCELERATE_DEEPSPEED_ZERO3_INIT='sometimes'.*true or"):
        wants_zero3_init(
            DeepSpeedConfig(STAGE_3),
            from_accelerate=True,
            environ={"ACCELERATE_DEEPSPEED_ZERO3_INIT": "sometimes"},
        )


# ----------------------------------------------------------------- the config
def test_the_config_is_resolved_against_the_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    config = zero3_init_config(arguments(), {})
    assert config is not None
    assert config["train_micro_batch_size_per_gpu"] == 2
    assert config["gradient_accumulation_steps"] == 3
    assert config["train_batch_size"] == 12  # 2 x 3 x 2 processes
    assert config["gradient_clipping"] == 0.5
    assert config["optimizer"]["params"] == {"lr": 0.01, "weight_decay": 0.1}
    # What needs the model or the run's length stays "auto" (zero.Init ignores it).
    assert config["scheduler"]["params"]["warmup_num_steps"] == "auto"
    zero = config["zero_optimization"]
    assert zero["reduce_bucket_size"] == zero["stage3_prefetch_bucket_size"] == "auto"
    assert STAGE_3["train_batch_size"] == "auto"  # the user's dict is left as it was


def test_a_contradicting_config_fails_when_the_arguments_are_built() -> None:
    config = {**STAGE_3, "train_micro_batch_size_per_gpu": 16}
    with pytest.raises(DeepSpeedConfigMismatchError, match="train_micro_batch_size_per_gpu=16"):
        zero3_init_config(arguments(deepspeed=config), {})


def test_no_config_when_zero_init_is_not_wanted() -> None:
    assert zero3_init_config(arguments(deepspeed=None), {}) is None
    assert zero3_init_config(arguments(deepspeed={"zero_optimization": {"stage": 2}}), {}) is None
    assert zero3_init_config(arguments(fsdp="full_shard"), {}) is None  # refused later


def test_accelerate_launch_configs(tmp_path: Any) -> None:
    args = arguments(deepspeed=None)
    plugin = {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3"}
    config = zero3_init_config(args, plugin)
    assert config is not None and config["zero_optimization"]["stage"] == 3
    assert config["train_micro_batch_size_per_gpu"] == 2
    assert zero3_init_config(args, {**plugin, "ACCELERATE_DEEPSPEED_ZERO3_INIT": "false"}) is None
    assert zero3_init_config(args, {**plugin, "ACCELERATE_DEEPSPEED_ZERO_STAGE": "2"}) is None
    path = tmp_path / "ds.json"
    path.write_text('{"zero_optimization": {"stage": 3}}')
    from_file = {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_CONFIG_FILE": str(path)}
    assert zero3_init_config(args, from_file)["train_batch_size"] == 6  # type: ignore[index]


# ------------------------------------------------------------------ the hook
def test_without_transformers_nothing_is_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # what an absent package looks like
    args = arguments()
    assert register_zero3_init(args) is None
    assert not hasattr(args, "hf_deepspeed_config")
    assert not torch.distributed.is_initialized()


def test_other_deepspeed_arguments_withdraw_an_earlier_registration() -> None:
    pytest.importorskip("transformers")
    from transformers.integrations.deepspeed import (
        HfDeepSpeedConfig,
        is_deepspeed_zero3_enabled,
        unset_hf_deepspeed_config,
    )

    earlier = HfDeepSpeedConfig({"zero_optimization": {"stage": 3}})  # e.g. older arguments
    try:
        assert is_deepspeed_zero3_enabled()
        assert register_zero3_init(arguments(deepspeed={"zero_optimization": {"stage": 2}})) is None
        assert not is_deepspeed_zero3_enabled()
        assert earlier.is_zero3()  # the object itself is untouched
    finally:
        unset_hf_deepspeed_config()
    assert not torch.distributed.is_initialized()


# ------------------------------------------------- partitioned models in the runtime
def test_partitioned_models_are_recognised_by_their_attributes() -> None:
    model = nn.Linear(2, 2)
    assert not is_zero3_partitioned(model)
    model.weight.ds_id = 0  # what zero.Init adds to every parameter
    assert is_zero3_partitioned(model)
    assert not is_zero3_partitioned(object())


def test_a_partitioned_model_needs_a_zero3_config() -> None:
    _check_partitioned_stage(3)
    with pytest.raises(ValueError, match=r"partitioned by DeepSpeed ZeRO-3.*ZeRO stage 2"):
        _check_partitioned_stage(2)


# ------------------------------------------------------------- the entry point
def _installed_hook() -> Any:
    from importlib.metadata import entry_points

    found = [ep for ep in entry_points(group=ARGUMENTS_HOOKS_GROUP) if ep.name == HOOK_NAME]
    return found[0] if found else None


@pytest.mark.skipif(
    _installed_hook() is None,
    reason="the installed trainer-dist metadata predates its arguments hook (reinstall it)",
)
def test_the_arguments_hook_resolves_through_the_loader() -> None:
    assert available_plugins(ARGUMENTS_HOOKS_GROUP)[HOOK_NAME] == "trainer-dist"
    assert _installed_hook().load() is register_zero3_init
