"""Choosing DeepSpeed, and everything that must fail before a process group starts.

Also the runtime's pure helpers (engine settings, batch casting, hidden size, export
argument checks) and the port's default ``prepare_training``. Nothing here builds an
engine: the multi-process runs are in integration_tests/test_distributed_deepspeed.py.
"""

from __future__ import annotations

import sys
from collections import namedtuple
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from trainer_args import TrainingArguments
from trainer_core import ARGUMENTS_HOOKS_GROUP, MissingExtraError, available_plugins
from trainer_dist import (
    DeepSpeedConfig,
    DeepSpeedConfigMismatchError,
    SingleProcessRuntime,
    build_runtime,
    check_deepspeed_config,
    export_deepspeed_checkpoint,
)
from trainer_dist._connector import deepspeed_config_source
from trainer_dist._deepspeed import (
    cast_floating,
    engine_settings,
    is_deepspeed_engine,
    model_hidden_size,
)
from trainer_dist._deepspeed_process import _check_cpu_optimizer

_LAUNCHER_VARIABLES = (
    "WORLD_SIZE",
    "RANK",
    "LOCAL_RANK",
    "PMI_SIZE",
    "OMPI_COMM_WORLD_SIZE",
    "MV2_COMM_WORLD_SIZE",
    "ACCELERATE_USE_DEEPSPEED",
    "ACCELERATE_DEEPSPEED_CONFIG_FILE",
    "ACCELERATE_DEEPSPEED_ZERO_STAGE",
    "ACCELERATE_GRADIENT_CLIPPING",
    "ACCELERATE_GRADIENT_ACCUMULATION_STEPS",
    "ACCELERATE_MIXED_PRECISION",
)
STAGE_2 = {"zero_optimization": {"stage": 2}, "train_micro_batch_size_per_gpu": "auto"}


@pytest.fixture(autouse=True)
def _no_launcher(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def make_args(tmp_path: Path) -> Any:
    def make(**overrides: Any) -> TrainingArguments:
        return TrainingArguments(output_dir=str(tmp_path), **{"use_cpu": True, **overrides})

    return make


# ------------------------------------------------------------ which config
def test_the_deepspeed_argument_is_the_config(make_args: Any) -> None:
    args = make_args(deepspeed=STAGE_2)
    accelerate = {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3"}
    assert deepspeed_config_source(args, {}) == STAGE_2
    assert deepspeed_config_source(args, accelerate) == STAGE_2  # the argument wins


def test_accelerate_launch_with_deepspeed_chooses_deepspeed(make_args: Any) -> None:
    accelerate = {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3"}
    config = deepspeed_config_source(make_args(), accelerate)
    assert config["zero_optimization"] == {"stage": 3}
    file = {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_CONFIG_FILE": "ds.json"}
    assert deepspeed_config_source(make_args(), file) == "ds.json"


def test_without_deepspeed_nothing_is_chosen(make_args: Any) -> None:
    assert deepspeed_config_source(make_args(), {}) is None
    assert deepspeed_config_source(make_args(), {"ACCELERATE_USE_DEEPSPEED": "false"}) is None


# ------------------------------------------- errors before any process group
def test_fsdp_with_deepspeed_under_accelerate_conflicts(
    make_args: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(ValueError, match=r"fsdp='full_shard' and accelerate launch with DeepSpe"):
        build_runtime(make_args(fsdp="full_shard"))
    assert not torch.distributed.is_initialized()


def test_fsdp_with_the_deepspeed_argument_conflicts(make_args: Any) -> None:
    args = SimpleNamespace(use_cpu=True, fsdp="shard_grad_op", deepspeed=STAGE_2)
    with pytest.raises(ValueError, match=r"fsdp='shard_grad_op' and deepspeed=.*Keep one"):
        build_runtime(args)


def test_a_contradicting_config_fails_before_anything_starts(
    make_args: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")  # a launcher: a group would be started next
    config = {"train_micro_batch_size_per_gpu": 32, "gradient_clipping": 3.0}
    with pytest.raises(DeepSpeedConfigMismatchError) as caught:
        build_runtime(make_args(deepspeed=config, per_device_train_batch_size=4))
    assert [m.key for m in caught.value.mismatches] == [
        "train_micro_batch_size_per_gpu",
        "gradient_clipping",
    ]
    assert not torch.distributed.is_initialized()


def test_an_auto_nothing_can_fill_fails_when_the_trainer_is_built(
    make_args: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not when training starts: the entry is unknown whatever the model turns out to be."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    config = {"zero_optimization": {"stage": 2, "allgather_bucket_size": "auto"}}
    with pytest.raises(ValueError, match=r"\['zero_optimization\.allgather_bucket_size'\]"):
        build_runtime(make_args(deepspeed=config))
    assert not torch.distributed.is_initialized()


# ------------------------------------------- checked where the arguments are built
def test_the_check_is_an_installed_arguments_hook() -> None:
    """trainer-args runs it through the entry point; the hooks run in name order, so the
    check comes before the zero.Init registration."""
    hooks = available_plugins(ARGUMENTS_HOOKS_GROUP)
    assert hooks["deepspeed_config_check"] == "trainer-dist"
    assert sorted(hooks).index("deepspeed_config_check") < sorted(hooks).index(
        "deepspeed_zero3_init"
    )


def test_a_contradicting_config_is_refused_by_the_arguments(tmp_path: Path) -> None:
    config = {"zero_optimization": {"stage": 2}, "gradient_accumulation_steps": 4}
    with pytest.raises(DeepSpeedConfigMismatchError, match="gradient_accumulation_steps=4"):
        TrainingArguments(output_dir=str(tmp_path), deepspeed=config)
    assert not torch.distributed.is_initialized()


def test_an_unfillable_auto_is_refused_by_the_arguments(tmp_path: Path) -> None:
    config = tmp_path / "ds.json"
    config.write_text('{"zero_optimization": {"stage": 1, "allgather_bucket_size": "auto"}}')
    with pytest.raises(ValueError, match=r"allgather_bucket_size.*Write out values"):
        TrainingArguments(output_dir=str(tmp_path), deepspeed=str(config))


def test_an_accelerate_plugin_config_is_checked_against_the_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "2")
    monkeypatch.setenv("ACCELERATE_GRADIENT_CLIPPING", "0.7")
    with pytest.raises(DeepSpeedConfigMismatchError, match=r"gradient_clipping=0\.7"):
        TrainingArguments(output_dir=str(tmp_path), max_grad_norm=1.0)
    agreeing = TrainingArguments(output_dir=str(tmp_path), max_grad_norm=0.7)
    assert agreeing.max_grad_norm == 0.7


def test_the_check_leaves_runs_without_deepspeed_alone() -> None:
    assert check_deepspeed_config(SimpleNamespace(deepspeed=None)) is None
    conflicting = SimpleNamespace(deepspeed={"gradient_clipping": 5.0}, fsdp="full_shard")
    assert check_deepspeed_config(conflicting) is None  # refused as a pair elsewhere


def test_missing_deepspeed_names_the_extra(make_args: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "deepspeed", None)  # what an absent package looks like
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(MissingExtraError, match=r"trainer-dist\[deepspeed\]"):
        build_runtime(make_args(deepspeed=STAGE_2))
    assert not torch.distributed.is_initialized()


def test_torch_compile_with_deepspeed_goes_to_the_engines_compile() -> None:
    from trainer_dist._deepspeed import _compile_settings

    assert _compile_settings({"torch_compile": False, "torch_compile_backend": None}) is None
    options = {"torch_compile": True, "torch_compile_backend": None, "torch_compile_mode": None}
    assert _compile_settings(options) == ("inductor", {})  # the reference's default backend
    assert options == {}  # taken out: the base runtime must not compile the model itself
    chosen = {
        "torch_compile": True,
        "torch_compile_backend": "eager",
        "torch_compile_mode": "max-autotune",
    }
    assert _compile_settings(chosen) == ("eager", {"mode": "max-autotune"})


def test_ipex_with_deepspeed_is_refused(make_args: Any) -> None:
    args = SimpleNamespace(use_cpu=True, deepspeed=STAGE_2, use_ipex=True)
    with pytest.raises(ValueError, match="use_ipex=True"):
        build_runtime(args)


def test_compiled_only_optimizers_are_refused_on_the_cpu() -> None:
    with pytest.raises(ValueError, match=r"'Lamb' exists only as a compiled kernel"):
        _check_cpu_optimizer(DeepSpeedConfig({"optimizer": {"type": "Lamb"}}))
    _check_cpu_optimizer(DeepSpeedConfig({"optimizer": {"type": "SGD"}}))  # torch's: fine


# ------------------------------------------------------------ engine settings
def test_the_engine_gets_no_scheduler_section() -> None:
    config = DeepSpeedConfig({"scheduler": {"type": "WarmupLR"}, "optimizer": {"type": "AdamW"}})
    settings = engine_settings(config, on_cpu=False, client_optimizer=None)
    assert "scheduler" not in settings
    assert settings["optimizer"] == {"type": "AdamW"}  # untouched on accelerators
    assert "zero_allow_untested_optimizer" not in settings


def test_the_trainers_optimizer_is_allowed_under_zero() -> None:
    optimizer = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    settings = engine_settings(DeepSpeedConfig({}), on_cpu=False, client_optimizer=optimizer)
    assert settings["zero_allow_untested_optimizer"] is True
    explicit = DeepSpeedConfig({"zero_allow_untested_optimizer": False})
    settings = engine_settings(explicit, on_cpu=False, client_optimizer=optimizer)
    assert settings["zero_allow_untested_optimizer"] is False


def test_cpu_runs_use_torch_adam_and_offload_with_it() -> None:
    """DeepSpeed's CPU Adam would have to be compiled: torch's runs, offload included."""
    zero = {"stage": 3, "offload_optimizer": {"device": "cpu"}, "offload_param": {"device": "cpu"}}
    config = DeepSpeedConfig(
        {"optimizer": {"type": "adam", "params": {"lr": 0.1}}, "zero_optimization": zero}
    )
    settings = engine_settings(config, on_cpu=True, client_optimizer=None)
    assert settings["optimizer"]["params"] == {"lr": 0.1, "torch_adam": True}
    assert settings["zero_optimization"] == zero  # kept: DeepSpeed's offload path runs
    assert settings["zero_force_ds_cpu_optimizer"] is False
    on_gpu = engine_settings(config, on_cpu=False, client_optimizer=None)
    assert "zero_force_ds_cpu_optimizer" not in on_gpu  # DeepSpeed's CPU Adam is built there


def test_cpu_runs_drop_nvme_offload_only() -> None:
    zero = {
        "stage": 3,
        "offload_optimizer": {"device": "nvme", "nvme_path": "/local_nvme"},
        "offload_param": {"device": "none"},
    }
    settings = engine_settings(DeepSpeedConfig({"zero_optimization": zero}), on_cpu=True,
                               client_optimizer=None)  # fmt: skip
    assert settings["zero_optimization"] == {"stage": 3, "offload_param": {"device": "none"}}
    assert "zero_force_ds_cpu_optimizer" not in settings  # nothing offloaded any more
    kept = DeepSpeedConfig({"optimizer": {"type": "AdamW", "params": {"torch_adam": False}}})
    settings = engine_settings(kept, on_cpu=True, client_optimizer=None)
    assert settings["optimizer"]["params"] == {"torch_adam": False}  # the user's choice


# ----------------------------------------------------------------- helpers
def test_hidden_size_from_a_model_config() -> None:
    model = nn.Linear(2, 2)
    assert model_hidden_size(model) is None
    model.config = SimpleNamespace(hidden_size=768)  # type: ignore[assignment]  # as transformers models
    assert model_hidden_size(model) == 768
    model.config = SimpleNamespace(hidden_sizes=[64, 320, 512])  # type: ignore[assignment]
    assert model_hidden_size(model) == 512


def test_floating_tensors_are_cast_and_the_rest_kept() -> None:
    pair = namedtuple("pair", "a b")
    batch = {
        "x": torch.ones(2, 3),
        "ids": torch.arange(3),
        "nested": [torch.zeros(1), (torch.ones(1, dtype=torch.float64), "text")],
        "pair": pair(torch.ones(1), 3),
    }
    cast = cast_floating(batch, torch.bfloat16)
    assert cast["x"].dtype == torch.bfloat16
    assert cast["ids"].dtype == torch.int64
    assert cast["nested"][0].dtype == torch.bfloat16
    assert cast["nested"][1][0].dtype == torch.bfloat16 and cast["nested"][1][1] == "text"
    assert isinstance(cast["pair"], pair) and cast["pair"].a.dtype == torch.bfloat16


def test_a_plain_module_is_not_an_engine() -> None:
    assert not is_deepspeed_engine(nn.Linear(2, 2))


def test_export_checks_the_folder_before_loading(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        export_deepspeed_checkpoint(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no 'latest' file"):
        export_deepspeed_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match="tag='global_step9'"):
        export_deepspeed_checkpoint(tmp_path, tag="global_step9")


# ------------------------------------------------- the port's default order
def test_default_prepare_training_prepares_the_model_before_the_optimizer() -> None:
    runtime = SingleProcessRuntime(device="cpu")
    model = nn.Linear(2, 2)
    calls: list[str] = []

    def create_optimizer() -> torch.optim.Optimizer:
        calls.append("optimizer")
        return torch.optim.SGD(model.parameters(), lr=0.1)

    def create_scheduler(optimizer: torch.optim.Optimizer) -> Any:
        calls.append("scheduler")
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)

    prepared, optimizer, scheduler = runtime.prepare_training(
        model,
        create_optimizer=create_optimizer,
        create_scheduler=create_scheduler,
        num_training_steps=10,
    )
    assert prepared is model
    assert calls == ["optimizer", "scheduler"]
    assert scheduler.optimizer is optimizer


def test_a_scheduler_for_another_optimizer_is_refused() -> None:
    from trainer_dist._deepspeed import _check_scheduler_optimizer

    parameters = list(nn.Linear(2, 2).parameters())
    config_optimizer = torch.optim.AdamW(parameters, lr=0.1)
    users = torch.optim.SGD(parameters, lr=0.1)
    users_scheduler = torch.optim.lr_scheduler.LambdaLR(users, lambda step: 1.0)
    with pytest.raises(ValueError, match="drives another optimizer"):
        _check_scheduler_optimizer(users_scheduler, (config_optimizer, None))
    _check_scheduler_optimizer(users_scheduler, (config_optimizer, users))  # its own: fine


def test_a_batch_size_search_under_zero3_is_refused_by_the_arguments(tmp_path: Path) -> None:
    config = {"zero_optimization": {"stage": 3}, "train_micro_batch_size_per_gpu": "auto"}
    with pytest.raises(ValueError, match=r"auto_find_batch_size=True.*ZeRO-3"):
        TrainingArguments(output_dir=str(tmp_path), deepspeed=config, auto_find_batch_size=True)
    assert not torch.distributed.is_initialized()  # refused before zero.Init's group
