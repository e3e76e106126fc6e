"""The config of the inference-only engine that evaluates a ZeRO-3 model before training.

Only the pure decisions: building the engine needs a process group, so the engine itself
(evaluate, predict with generation, then train) runs in
integration_tests/test_deepspeed_zero_init.py on 2 processes.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from trainer_dist import ArgumentValues, DeepSpeedConfig, zero3_init_config
from trainer_dist._deepspeed import engine_settings
from trainer_dist._deepspeed_config import TrainingFacts
from trainer_dist._deepspeed_inference import (
    cast_partitions,
    inference_config,
    warn_if_partitions_stay_uncast,
)

VALUES = ArgumentValues(world_size=2, per_device_train_batch_size=2, learning_rate=0.01)
TRAINING_CONFIG: dict[str, Any] = {
    "train_batch_size": "auto",
    "train_micro_batch_size_per_gpu": "auto",
    "gradient_accumulation_steps": "auto",
    "optimizer": {"type": "AdamW", "params": {"lr": "auto", "weight_decay": "auto"}},
    "scheduler": {
        "type": "WarmupDecayLR",
        "params": {"warmup_num_steps": "auto", "total_num_steps": "auto"},
    },
    "zero_optimization": {
        "stage": 3,
        "reduce_bucket_size": "auto",
        "stage3_prefetch_bucket_size": "auto",
        "stage3_param_persistence_threshold": "auto",
        "offload_param": {"device": "cpu"},
    },
}


def run_config(source: dict[str, Any] = TRAINING_CONFIG) -> DeepSpeedConfig:
    """The config as the runtime holds it: the argument-decided entries filled."""
    return DeepSpeedConfig(source).resolve_arguments(VALUES)


def test_the_optimizer_and_scheduler_sections_are_dropped() -> None:
    config = inference_config(run_config(), VALUES, hidden_size=16).to_dict()
    assert "optimizer" not in config and "scheduler" not in config
    # The scheduler's run-length entries went with it: nothing needs the run's length.
    assert config["train_batch_size"] == 4  # 2 per process x 2 processes


def test_the_model_dependent_entries_are_filled_as_for_training() -> None:
    run = run_config()
    zero = inference_config(run, VALUES, hidden_size=16).get("zero_optimization")
    facts = TrainingFacts(hidden_size=16, num_training_steps=10)
    trained = run.resolve_training(VALUES, facts).get("zero_optimization")
    for key in ("reduce_bucket_size", "stage3_prefetch_bucket_size"):
        assert zero[key] == trained[key]
    assert zero["stage3_param_persistence_threshold"] == 160  # 10 x hidden size
    assert zero["offload_param"] == {"device": "cpu"}  # kept: the engine drops it on the CPU


def test_without_a_hidden_size_deepspeeds_defaults_apply() -> None:
    zero = inference_config(run_config(), VALUES, hidden_size=None).get("zero_optimization")
    assert "reduce_bucket_size" not in zero and "stage3_param_persistence_threshold" not in zero


def test_the_runs_config_is_left_for_training() -> None:
    run = run_config()
    inference_config(run, VALUES, hidden_size=16)
    assert run.has_optimizer and run.has_scheduler
    assert run.get("scheduler.params.total_num_steps") == "auto"  # filled when training starts
    assert run.get("optimizer.params.lr") == 0.01


def test_only_zero3_has_partitions_to_gather() -> None:
    stage_2 = {**TRAINING_CONFIG, "zero_optimization": {"stage": 2}}
    with pytest.raises(ValueError, match=r"ZeRO stage 2.*Evaluate the model as it is"):
        inference_config(run_config(stage_2), VALUES, hidden_size=16)


def test_only_model_dependent_autos_reach_the_inference_engine() -> None:
    """The model-dependent entries are the only ones left; without a hidden size the
    bucket sizes fall back to DeepSpeed's defaults, so nothing stays ``"auto"``."""
    config = inference_config(run_config(), VALUES, hidden_size=None).to_dict()
    assert "reduce_bucket_size" not in config["zero_optimization"]
    with pytest.raises(ValueError, match=r"steps_per_print"):
        run_config({**TRAINING_CONFIG, "steps_per_print": "auto"})


def test_the_engine_settings_of_a_cpu_run() -> None:
    config = inference_config(run_config(), VALUES, hidden_size=16)
    settings = engine_settings(config, on_cpu=True, client_optimizer=None)
    assert settings["zero_optimization"]["offload_param"] == {"device": "cpu"}
    assert "zero_allow_untested_optimizer" not in settings  # no optimizer at all
    assert "optimizer" not in settings and "scheduler" not in settings


# ------------------------------------------------------------ full evaluation
def precision_sections(config: DeepSpeedConfig) -> dict[str, Any]:
    settings = config.to_dict()
    return {name: settings[name] for name in ("fp16", "bf16", "bfloat16") if name in settings}


@pytest.mark.parametrize(
    ("flag", "section"),
    [
        ("bf16_full_eval", {"bf16": {"enabled": True}}),
        ("fp16_full_eval", {"fp16": {"enabled": True, "auto_cast": True}}),
    ],
)
def test_full_evaluation_alone_runs_the_inference_engine_in_half_precision(
    flag: str, section: dict[str, Any]
) -> None:
    values = ArgumentValues(world_size=2, per_device_train_batch_size=2, **{flag: True})
    run = DeepSpeedConfig(TRAINING_CONFIG).resolve_arguments(values)
    assert precision_sections(run) == {}  # training stays in fp32
    config = inference_config(run, values, hidden_size=16)
    assert precision_sections(config) == section
    assert precision_sections(run) == {}  # the run's config is left as it was


def test_without_full_evaluation_the_inference_engine_keeps_the_training_precision() -> None:
    values = ArgumentValues(world_size=2, per_device_train_batch_size=2, bf16=True)
    run = DeepSpeedConfig(TRAINING_CONFIG).resolve_arguments(values)
    assert precision_sections(inference_config(run, values, hidden_size=16)) == {
        "bf16": {"enabled": True}
    }
    fp32 = inference_config(run_config(), VALUES, hidden_size=16)
    assert precision_sections(fp32) == {}


def test_full_evaluation_replaces_another_training_precision() -> None:
    values = dataclasses.replace(VALUES, bf16=True, fp16_full_eval=True)
    source = {**TRAINING_CONFIG, "bfloat16": {"enabled": "auto"}}
    run = DeepSpeedConfig(source).resolve_arguments(values)
    assert precision_sections(run) == {"bfloat16": {"enabled": True}}  # trains in bf16
    assert precision_sections(inference_config(run, values, hidden_size=16)) == {
        "bfloat16": {"enabled": False},
        "fp16": {"enabled": True, "auto_cast": True},
    }


def test_options_written_for_the_evaluation_precision_are_kept() -> None:
    values = ArgumentValues(world_size=2, per_device_train_batch_size=2, fp16_full_eval=True)
    source = {**TRAINING_CONFIG, "fp16": {"loss_scale": 0, "auto_cast": False}}
    run = DeepSpeedConfig(source).resolve_arguments(values)
    assert run.mixed_precision == "no"  # a section without "enabled" is off
    assert precision_sections(inference_config(run, values, hidden_size=16)) == {
        "fp16": {"enabled": True, "loss_scale": 0, "auto_cast": False}
    }


def test_zero_init_partitions_in_the_training_precision_under_full_evaluation() -> None:
    """The config registered for ``zero.Init`` decides the partitions' dtype: fp32 when
    only ``bf16_full_eval`` is set, so that training starts from fp32 weights."""
    args = SimpleNamespace(
        deepspeed=TRAINING_CONFIG,
        fsdp="",
        use_cpu=True,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=1,
        learning_rate=0.01,
        bf16_full_eval=True,
    )
    registered = zero3_init_config(args, {})
    assert registered is not None
    assert DeepSpeedConfig(registered).mixed_precision == "no"
    assert "bf16" not in registered and "fp16" not in registered


def partitioned_linear() -> nn.Linear:
    """A stand-in for a ``zero.Init`` layer: empty local tensors, partitions beside."""
    layer = nn.Linear(2, 2)
    for index, parameter in enumerate(layer.parameters()):
        parameter.ds_tensor = torch.tensor([0.1, 1.0 + 2**-10, -3.0], dtype=torch.float32) * (
            index + 1
        )
        parameter.ds_tensor.ds_numel = 3  # DeepSpeed's bookkeeping lives on the partition
        parameter.data = torch.empty(0)
    return layer


def test_partitions_are_cast_in_place() -> None:
    layer = partitioned_linear()
    partitions = [p.ds_tensor for p in layer.parameters()]
    assert cast_partitions(layer, torch.bfloat16) == 2
    for index, parameter in enumerate(layer.parameters()):
        assert parameter.ds_tensor is partitions[index]  # the same object, new data
        assert parameter.ds_tensor.ds_numel == 3
        assert parameter.ds_tensor.dtype == parameter.dtype == torch.bfloat16
        # 1 + 2**-10 is not a bf16 number (8 bits of mantissa): it rounds to 1.
        expected = torch.tensor([0.1, 1.0, -3.0], dtype=torch.bfloat16) * (index + 1)
        assert torch.equal(parameter.ds_tensor, expected)
    assert cast_partitions(layer, torch.bfloat16) == 0  # already in that dtype


def test_only_floating_partitions_are_cast() -> None:
    layer = partitioned_linear()
    layer.weight.ds_tensor = torch.tensor([1, 2, 3])
    plain = nn.Linear(2, 2)  # no partitions: left alone
    assert cast_partitions(layer, torch.float16) == 1
    assert layer.weight.ds_tensor.dtype == torch.int64
    assert layer.bias.ds_tensor.dtype == torch.float16
    assert cast_partitions(plain, torch.float16) == 0
    assert plain.weight.dtype == torch.float32


@pytest.mark.parametrize(
    ("stage", "flags", "warned"),
    [
        (3, {"bf16_full_eval": True}, "bf16_full_eval=True after training under ZeRO-3"),
        (3, {"bf16": True, "bf16_full_eval": True}, None),  # trained in bf16 already
        (3, {}, None),
        (2, {"bf16_full_eval": True}, None),  # the loop's cast applies to the whole model
    ],
)
def test_full_evaluation_after_zero3_training_says_it_stays_in_the_training_precision(
    stage: int, flags: dict[str, bool], warned: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    values = ArgumentValues(**flags)
    config = DeepSpeedConfig({"zero_optimization": {"stage": stage}}).resolve_arguments(values)
    with caplog.at_level("WARNING", logger="trainer_dist._deepspeed_inference"):
        said = warn_if_partitions_stay_uncast(config, values)
    messages = [record.getMessage() for record in caplog.records]
    assert said == (warned is not None)
    if warned is None:
        assert messages == []
    else:
        assert messages == [
            f"{warned}: the training engine's partitions stay in its precision (fp32), so "
            f"the evaluation runs in it too."
        ]
