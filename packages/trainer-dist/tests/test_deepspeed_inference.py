"""The config of the inference-only engine that evaluates a ZeRO-3 model before training.

Only the pure decisions: building the engine needs a process group, so the engine itself
(evaluate, predict with generation, then train) runs in
integration_tests/test_deepspeed_zero_init.py on 2 processes.
"""

from __future__ import annotations

from typing import Any

import pytest

from trainer_dist import ArgumentValues, DeepSpeedConfig
from trainer_dist._deepspeed import engine_settings
from trainer_dist._deepspeed_config import TrainingFacts
from trainer_dist._deepspeed_inference import inference_config

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
