"""DeepSpeed configs: loading, "auto" resolution against the arguments, mismatch reports.

Pure dict work: nothing here imports deepspeed or starts a process group.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from trainer_args import TrainingArguments
from trainer_dist import (
    ArgumentValues,
    DeepSpeedConfig,
    DeepSpeedConfigMismatchError,
    load_deepspeed_config,
)
from trainer_dist._deepspeed_config import (
    AUTO_KEYS,
    TrainingFacts,
    accelerate_deepspeed_config,
    launcher_mixed_precision,
)

VALUES = ArgumentValues(
    per_device_train_batch_size=4,
    gradient_accumulation_steps=3,
    world_size=2,
    max_grad_norm=0.5,
    learning_rate=3e-4,
    adam_beta1=0.8,
    adam_beta2=0.99,
    adam_epsilon=1e-6,
    weight_decay=0.01,
    warmup_ratio=0.1,
    bf16=True,
    fp16_opt_level="O2",
    zero_stage=3,  # as an accelerate launch would announce them
    offload_optimizer_device="cpu",
    offload_param_device="nvme",
    offload_optimizer_nvme_path="/nvme/optimizer",
    offload_param_nvme_path="/nvme/params",
    gather_16bit_weights_on_save=True,
)
FACTS = TrainingFacts(hidden_size=64, num_training_steps=95)

# Every key that may be "auto", with the value the arguments above must give it. Written
# out by hand (not computed from AUTO_KEYS) so that a wrong rule fails here.
EXPECTED: dict[str, Any] = {
    "train_micro_batch_size_per_gpu": 4,
    "gradient_accumulation_steps": 3,
    "train_batch_size": 24,  # 4 x 3 x 2 processes
    "gradient_clipping": 0.5,
    "optimizer.params.lr": 3e-4,
    "optimizer.params.betas": [0.8, 0.99],
    "optimizer.params.eps": 1e-6,
    "optimizer.params.weight_decay": 0.01,
    "scheduler.params.warmup_min_lr": 0,
    "scheduler.params.warmup_max_lr": 3e-4,
    "scheduler.params.warmup_num_steps": 10,  # ceil(0.1 x 95)
    "scheduler.params.total_num_steps": 95,
    "fp16.enabled": False,
    "bf16.enabled": True,
    "bfloat16.enabled": True,
    "amp.enabled": False,
    "amp.opt_level": "O2",
    "zero_optimization.stage": 3,
    "zero_optimization.offload_optimizer.device": "cpu",
    "zero_optimization.offload_param.device": "nvme",
    "zero_optimization.offload_optimizer.nvme_path": "/nvme/optimizer",
    "zero_optimization.offload_param.nvme_path": "/nvme/params",
    "zero_optimization.stage3_gather_16bit_weights_on_model_save": True,
    "zero_optimization.reduce_bucket_size": 4096,  # 64 x 64
    "zero_optimization.stage3_prefetch_bucket_size": 3686,  # int(0.9 x 64 x 64)
    "zero_optimization.stage3_param_persistence_threshold": 640,  # 10 x 64
}
TRAINING_PHASE = {
    "scheduler.params.warmup_num_steps",
    "scheduler.params.total_num_steps",
    "zero_optimization.reduce_bucket_size",
    "zero_optimization.stage3_prefetch_bucket_size",
    "zero_optimization.stage3_param_persistence_threshold",
}


def nested(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}``."""
    config: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return config


def all_auto() -> dict[str, Any]:
    config = nested(dict.fromkeys(EXPECTED, "auto"))
    config["optimizer"]["type"] = "AdamW"
    config["scheduler"]["type"] = "WarmupDecayLR"
    return config


# ------------------------------------------------------------------ loading
def test_loads_a_path_a_dict_and_json_text(tmp_path: Path) -> None:
    config = {"zero_optimization": {"stage": 2}, "train_batch_size": "auto"}
    path = tmp_path / "ds.json"
    path.write_text(json.dumps(config))
    assert load_deepspeed_config(path) == config
    assert load_deepspeed_config(str(path)) == config
    assert load_deepspeed_config(json.dumps(config)) == config
    loaded = load_deepspeed_config(config)
    loaded["zero_optimization"]["stage"] = 3
    assert config["zero_optimization"]["stage"] == 2  # a deep copy


@pytest.mark.parametrize(
    ("source", "error", "words"),
    [
        ("missing.json", FileNotFoundError, "no such file"),
        ("{not json", ValueError, "not valid JSON"),
        (3, TypeError, "JSON file"),
    ],
)
def test_loading_errors_say_what_to_pass(source: Any, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        load_deepspeed_config(source)


def test_a_file_holding_a_list_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ds.json"
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        load_deepspeed_config(path)


def test_reading_facts_of_a_config() -> None:
    config = DeepSpeedConfig(all_auto())
    with pytest.raises(ValueError, match="resolve"):
        config.zero_stage  # noqa: B018  # "auto" until the launcher's stage fills it
    assert config.resolve_arguments(VALUES).zero_stage == 3
    assert config.has_optimizer and config.has_scheduler
    assert DeepSpeedConfig({}).zero_stage == 0
    assert not DeepSpeedConfig({}).has_optimizer
    assert DeepSpeedConfig({"fp16": {"enabled": True}}).mixed_precision == "fp16"
    assert DeepSpeedConfig({"bfloat16": {"enabled": "true"}}).mixed_precision == "bf16"
    assert DeepSpeedConfig({"bf16": {"enabled": False}}).mixed_precision == "no"
    gather = {"zero_optimization": {"stage": 3, "stage3_gather_16bit_weights_on_model_save": 1}}
    assert DeepSpeedConfig(gather).gathers_16bit_weights_on_save
    assert not DeepSpeedConfig({"zero_optimization": {"stage": 3}}).gathers_16bit_weights_on_save


# --------------------------------------------------------------- resolution
def test_the_table_covers_every_auto_key() -> None:
    assert {entry.key for entry in AUTO_KEYS} == set(EXPECTED)
    assert {entry.key for entry in AUTO_KEYS if entry.phase == "training"} == TRAINING_PHASE


@pytest.fixture(scope="module")
def resolved() -> tuple[DeepSpeedConfig, DeepSpeedConfig]:
    first = DeepSpeedConfig(all_auto()).resolve_arguments(VALUES)
    return first, first.resolve_training(VALUES, FACTS)


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_every_auto_key_is_filled_from_the_arguments(
    resolved: tuple[DeepSpeedConfig, DeepSpeedConfig], key: str
) -> None:
    after_arguments, after_training = resolved
    assert after_training.get(key) == pytest.approx(EXPECTED[key])
    # Keys needing the model or the run's length wait for the second phase.
    expected_first = "auto" if key in TRAINING_PHASE else EXPECTED[key]
    assert after_arguments.get(key) == pytest.approx(expected_first)


def test_resolution_returns_new_configs() -> None:
    source = DeepSpeedConfig(all_auto())
    source.resolve_arguments(VALUES)
    assert source.get("train_batch_size") == "auto"


def test_all_mismatches_are_reported_in_one_error() -> None:
    config = {
        "train_micro_batch_size_per_gpu": 16,
        "gradient_accumulation_steps": 3,  # agrees: not reported
        "gradient_clipping": 1.0,
        "optimizer": {"type": "AdamW", "params": {"lr": 0.1, "betas": [0.9, 0.999]}},
        "scheduler": {"type": "WarmupLR", "params": {"warmup_min_lr": 1e-7}},  # free choice
        "fp16": {"enabled": True},
    }
    with pytest.raises(DeepSpeedConfigMismatchError) as caught:
        DeepSpeedConfig(config).resolve_arguments(VALUES)
    error = caught.value
    found = {m.key: (m.config_value, m.argument_value) for m in error.mismatches}
    assert found == {
        "train_micro_batch_size_per_gpu": (16, 4),
        "gradient_clipping": (1.0, 0.5),
        "optimizer.params.lr": (0.1, 3e-4),
        "optimizer.params.betas": ([0.9, 0.999], [0.8, 0.99]),
        "fp16.enabled": (True, False),
    }
    message = str(error)
    assert "5 place(s)" in message
    for words in ("per_device_train_batch_size", "max_grad_norm", "learning_rate", '"auto"'):
        assert words in message


@pytest.mark.parametrize("schedule", ["WarmupLR", "WarmupDecayLR", "WarmupCosineLR"])
def test_a_run_without_warm_up_gets_one_warm_up_step(schedule: str) -> None:
    """DeepSpeed refuses warmup_num_steps=0, which warmup_steps=0 (the default) and no
    warmup_ratio would give: the shortest warm-up it accepts is filled instead."""
    values = ArgumentValues(warmup_steps=0, warmup_ratio=0.0)
    params = {"warmup_num_steps": "auto", "total_num_steps": "auto"}
    config = {"scheduler": {"type": schedule, "params": params}}
    facts = TrainingFacts(hidden_size=None, num_training_steps=40)
    resolved = DeepSpeedConfig(config).resolve_arguments(values).resolve_training(values, facts)
    assert resolved.get("scheduler.params.warmup_num_steps") == 1
    assert resolved.get("scheduler.params.total_num_steps") == 40


def test_training_phase_mismatches_are_reported_too() -> None:
    config = {"scheduler": {"type": "WarmupDecayLR", "params": {"total_num_steps": 10}}}
    first = DeepSpeedConfig(config).resolve_arguments(VALUES)
    with pytest.raises(DeepSpeedConfigMismatchError, match="total_num_steps=10"):
        first.resolve_training(VALUES, FACTS)


def test_values_written_out_that_agree_are_kept() -> None:
    config = {
        "train_micro_batch_size_per_gpu": 4,
        "gradient_clipping": 0.5,
        "optimizer": {"type": "Adam", "params": {"lr": 0.0003, "betas": [0.8, 0.99]}},
        "zero_optimization": {"stage": 2, "reduce_bucket_size": 123},  # free choice
    }
    resolved = DeepSpeedConfig(config).resolve_arguments(VALUES).resolve_training(VALUES, FACTS)
    assert resolved.get("zero_optimization.reduce_bucket_size") == 123
    assert resolved.get("optimizer.params.lr") == 0.0003


def test_settings_the_loop_depends_on_are_added_when_missing() -> None:
    resolved = DeepSpeedConfig({}).resolve_arguments(VALUES).to_dict()
    assert resolved == {
        "train_micro_batch_size_per_gpu": 4,
        "gradient_accumulation_steps": 3,
        "train_batch_size": 24,
        "gradient_clipping": 0.5,
        "bf16": {"enabled": True},  # the arguments ask for bf16: DeepSpeed must not run fp32
    }
    bfloat16 = DeepSpeedConfig({"bfloat16": {"enabled": True}}).resolve_arguments(VALUES)
    assert "bf16" not in bfloat16.to_dict()


def test_bucket_sizes_fall_back_to_deepspeed_defaults_without_a_hidden_size() -> None:
    config = {"zero_optimization": {"stage": 3, "reduce_bucket_size": "auto"}}
    facts = TrainingFacts(hidden_size=None, num_training_steps=10)
    resolved = DeepSpeedConfig(config).resolve_arguments(VALUES).resolve_training(VALUES, facts)
    assert resolved.to_dict()["zero_optimization"] == {"stage": 3}


def test_an_auto_nobody_fills_is_an_error_before_training() -> None:
    config = {"zero_optimization": {"stage": 3, "sub_group_size": "auto"}}
    with pytest.raises(ValueError, match=r"zero_optimization\.sub_group_size.*Write out"):
        DeepSpeedConfig(config).resolve_arguments(VALUES)


def test_the_model_dependent_autos_wait_for_training() -> None:
    config = {"zero_optimization": {"stage": 3, "reduce_bucket_size": "auto"}}
    first = DeepSpeedConfig(config).resolve_arguments(VALUES)
    assert first.get("zero_optimization.reduce_bucket_size") == "auto"
    resolved = first.resolve_training(VALUES, TrainingFacts(hidden_size=8, num_training_steps=4))
    assert resolved.get("zero_optimization.reduce_bucket_size") == 64


# ---------------------------------------------------------------- arguments
def test_values_from_training_arguments() -> None:
    args = TrainingArguments(
        output_dir="unused",
        per_device_train_batch_size=2,
        gradient_accumulation_steps=4,
        learning_rate=1e-3,
        max_grad_norm=0.0,
        warmup_steps=7,
        bf16=True,
    )
    values = ArgumentValues.from_arguments(args, world_size=3)
    assert values.per_device_train_batch_size == 2
    assert values.gradient_accumulation_steps == 4
    assert values.world_size == 3
    assert values.learning_rate == 1e-3
    assert values.max_grad_norm == 0.0
    assert (values.bf16, values.fp16) == (True, False)
    assert values.warmup_steps_for(100) == 7
    assert ArgumentValues(warmup_ratio=0.25).warmup_steps_for(10) == math.ceil(2.5)


@pytest.mark.parametrize(
    ("warmup", "expected"), [({"warmup_steps": 0.1}, 10), ({"warmup_ratio": 0.1}, 10)]
)
def test_a_warm_up_share_fills_auto_as_that_share_of_the_run(
    warmup: dict[str, float], expected: int
) -> None:
    """transformers 5 writes a share as a fractional warmup_steps; v4.34 as warmup_ratio."""
    args = TrainingArguments(output_dir="unused", **warmup)
    values = ArgumentValues.from_arguments(args, world_size=1)
    assert values.warmup_steps_for(100) == expected


def test_the_launcher_precision_applies_when_the_arguments_ask_for_none() -> None:
    plain = TrainingArguments(output_dir="unused")
    values = ArgumentValues.from_arguments(plain, world_size=1, launcher_precision="bf16")
    assert (values.bf16, values.fp16) == (True, False)
    asked = TrainingArguments(output_dir="unused", bf16=True)
    values = ArgumentValues.from_arguments(asked, world_size=1, launcher_precision="fp16")
    assert (values.bf16, values.fp16) == (True, False)  # the arguments win


# ------------------------------------------------------- accelerate launch
def test_accelerate_without_deepspeed_announces_nothing() -> None:
    assert accelerate_deepspeed_config({}) is None
    assert accelerate_deepspeed_config({"ACCELERATE_USE_DEEPSPEED": "false"}) is None


def test_accelerate_with_a_config_file_gives_its_path() -> None:
    environ = {
        "ACCELERATE_USE_DEEPSPEED": "true",
        "ACCELERATE_DEEPSPEED_CONFIG_FILE": "/configs/ds_zero3.json",
        "ACCELERATE_DEEPSPEED_ZERO_STAGE": "2",  # the file wins
    }
    assert accelerate_deepspeed_config(environ) == "/configs/ds_zero3.json"


def test_accelerate_plugin_options_become_a_config() -> None:
    environ = {
        "ACCELERATE_USE_DEEPSPEED": "true",
        "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3",
        "ACCELERATE_GRADIENT_ACCUMULATION_STEPS": "1",
        "ACCELERATE_GRADIENT_CLIPPING": "0.7",
        "ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE": "cpu",
        "ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE": "none",
        "ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL": "true",
        "ACCELERATE_MIXED_PRECISION": "bf16",
    }
    config = accelerate_deepspeed_config(environ)
    assert isinstance(config, dict)
    assert config["gradient_accumulation_steps"] == 1
    assert config["gradient_clipping"] == 0.7
    assert config["train_batch_size"] == "auto"
    assert config["zero_optimization"] == {
        "stage": 3,
        "offload_optimizer": {"device": "cpu"},
        "stage3_gather_16bit_weights_on_model_save": True,
    }
    assert launcher_mixed_precision(environ) == "bf16"


# The "auto" entries accelerate's DeepSpeed plugin fills for the reference, from the
# launcher's variables or its defaults (a public ZeRO-3 config writes "auto" for the
# 16-bit save).
PLUGIN_AUTOS = {
    "zero_optimization": {
        "stage": "auto",
        "offload_optimizer": {"device": "auto", "nvme_path": "auto"},
        "offload_param": {"device": "auto", "nvme_path": "auto"},
        "stage3_gather_16bit_weights_on_model_save": "auto",
    }
}


def test_the_plugin_autos_take_accelerate_defaults_without_a_launcher() -> None:
    values = ArgumentValues().with_launcher({})
    resolved = DeepSpeedConfig(PLUGIN_AUTOS).resolve_arguments(values)
    assert resolved.to_dict()["zero_optimization"] == {
        "stage": 2,
        "offload_optimizer": {"device": "none"},
        "offload_param": {"device": "none"},
        "stage3_gather_16bit_weights_on_model_save": False,
    }


def test_the_plugin_autos_take_the_launchers_values() -> None:
    environ = {
        "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3",
        "ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE": "nvme",
        "ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_NVME_PATH": "/local_nvme",
        "ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE": "cpu",
        "ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_NVME_PATH": "none",
        "ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL": "true",
    }
    values = ArgumentValues().with_launcher(environ)
    resolved = DeepSpeedConfig(PLUGIN_AUTOS).resolve_arguments(values)
    assert resolved.to_dict()["zero_optimization"] == {
        "stage": 3,
        "offload_optimizer": {"device": "nvme", "nvme_path": "/local_nvme"},
        "offload_param": {"device": "cpu"},
        "stage3_gather_16bit_weights_on_model_save": True,
    }


def test_written_out_plugin_values_win_over_the_launcher() -> None:
    config = {"zero_optimization": {"stage": 3, "offload_param": {"device": "cpu"}}}
    values = ArgumentValues().with_launcher({"ACCELERATE_DEEPSPEED_ZERO_STAGE": "2"})
    assert DeepSpeedConfig(config).resolve_arguments(values).to_dict() == {
        **config,
        "train_micro_batch_size_per_gpu": 8,
        "gradient_accumulation_steps": 1,
        "train_batch_size": 8,
        "gradient_clipping": 1.0,
    }


def test_save_on_each_node_tells_deepspeed_its_storage_is_node_local() -> None:
    config = {"zero_optimization": {"stage": 2}, "checkpoint": {"tag_validation": "Warn"}}
    values = ArgumentValues(save_on_each_node=True)
    resolved = DeepSpeedConfig(config).resolve_arguments(values)
    assert resolved.get("checkpoint") == {"tag_validation": "Warn", "use_node_local_storage": True}
    assert DeepSpeedConfig(config).resolve_arguments(ArgumentValues()).get("checkpoint") == {
        "tag_validation": "Warn"
    }
    args = TrainingArguments(output_dir="unused", save_on_each_node=True)
    assert ArgumentValues.from_arguments(args, world_size=1).save_on_each_node


def test_batch_sizes_written_out_are_not_held_to_the_arguments_during_a_batch_search() -> None:
    config = {"train_micro_batch_size_per_gpu": 4, "train_batch_size": 4, "gradient_clipping": 0.3}
    strict = ArgumentValues(per_device_train_batch_size=16)
    with pytest.raises(DeepSpeedConfigMismatchError) as raised:
        DeepSpeedConfig(config).resolve_arguments(strict)
    assert len(raised.value.mismatches) == 3
    searching = ArgumentValues(per_device_train_batch_size=16, auto_find_batch_size=True)
    with pytest.raises(DeepSpeedConfigMismatchError) as raised:
        DeepSpeedConfig(config).resolve_arguments(searching)
    assert [m.key for m in raised.value.mismatches] == ["gradient_clipping"]
    args = TrainingArguments(output_dir="unused", auto_find_batch_size=True)
    assert ArgumentValues.from_arguments(args, world_size=1).auto_find_batch_size
    assert launcher_mixed_precision({"ACCELERATE_MIXED_PRECISION": "no"}) is None


# ------------------------------------- precision sections and refused combinations
def test_an_added_fp16_section_casts_inputs_as_accelerate_writes_it() -> None:
    fp16 = ArgumentValues.from_arguments(
        TrainingArguments(output_dir="unused", fp16=True), world_size=1
    )
    resolved = DeepSpeedConfig({"zero_optimization": {"stage": 2}}).resolve_arguments(fp16)
    assert resolved.to_dict()["fp16"] == {"enabled": True, "auto_cast": True}
    assert "bf16" not in resolved.to_dict()
    written = DeepSpeedConfig({"fp16": {"enabled": "auto"}}).resolve_arguments(fp16)
    assert written.to_dict()["fp16"] == {"enabled": True}  # a section written out is kept


def test_full_evaluation_flags_are_read_apart_from_the_training_precision() -> None:
    args = TrainingArguments(output_dir="unused", bf16_full_eval=True)
    values = ArgumentValues.from_arguments(args, world_size=1)
    assert (values.fp16, values.bf16) == (False, False)  # training stays in fp32
    assert (values.fp16_full_eval, values.bf16_full_eval) == (False, True)
    assert values.full_eval_precision == "bf16"
    fp16_eval = TrainingArguments(output_dir="unused", bf16=True, fp16_full_eval=True)
    values = ArgumentValues.from_arguments(fp16_eval, world_size=1)
    assert (values.fp16, values.bf16, values.full_eval_precision) == (False, True, "fp16")
    assert ArgumentValues().full_eval_precision is None


def test_the_launcher_decides_training_precision_beside_a_full_eval_flag() -> None:
    """``*_full_eval`` chooses the evaluation's precision only: the launcher's still
    applies to training, as it does in the reference."""
    args = TrainingArguments(output_dir="unused", bf16_full_eval=True)
    values = ArgumentValues.from_arguments(args, world_size=1, launcher_precision="bf16")
    assert (values.fp16, values.bf16, values.bf16_full_eval) == (False, True, True)


@pytest.mark.parametrize("flag", ["fp16_full_eval", "bf16_full_eval"])
def test_full_evaluation_alone_adds_no_precision_section(flag: str) -> None:
    """The user asked for fp32 training and half-precision evaluation only: the training
    config gets no ``fp16`` / ``bf16`` section (the inference engine gets its own)."""
    values = ArgumentValues(**{flag: True})
    resolved = DeepSpeedConfig({"zero_optimization": {"stage": 2}}).resolve_arguments(values)
    assert resolved.to_dict() == {
        "zero_optimization": {"stage": 2},
        "train_micro_batch_size_per_gpu": 8,
        "gradient_accumulation_steps": 1,
        "train_batch_size": 8,
        "gradient_clipping": 1.0,
    }
    assert resolved.mixed_precision == "no"


@pytest.mark.parametrize(
    ("flags", "section"),
    [
        ({"fp16": True}, {"fp16": {"enabled": True, "auto_cast": True}}),
        ({"bf16": True}, {"bf16": {"enabled": True}}),
        ({"bf16": True, "bf16_full_eval": True}, {"bf16": {"enabled": True}}),
        ({"bf16": True, "fp16_full_eval": True}, {"bf16": {"enabled": True}}),
    ],
)
def test_training_precision_adds_its_section(flags: dict[str, bool], section: Any) -> None:
    resolved = DeepSpeedConfig({}).resolve_arguments(ArgumentValues(**flags)).to_dict()
    assert {k: v for k, v in resolved.items() if k in ("fp16", "bf16")} == section


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        ("fp16_full_eval", {"fp16": True, "bf16": False, "bfloat16": False}),
        ("bf16_full_eval", {"fp16": False, "bf16": True, "bfloat16": True}),
    ],
)
def test_an_auto_precision_is_filled_from_full_evaluation_as_in_the_reference(
    flag: str, expected: dict[str, bool]
) -> None:
    """The reference fills ``"enabled": "auto"`` with ``fp16 or fp16_full_eval`` (and the
    bf16 pair), which trains in that precision too: kept on purpose."""
    config = {name: {"enabled": "auto"} for name in ("fp16", "bf16", "bfloat16")}
    resolved = DeepSpeedConfig(config).resolve_arguments(ArgumentValues(**{flag: True}))
    assert {name: resolved.get(f"{name}.enabled") for name in config} == expected


def test_a_written_precision_is_checked_against_full_evaluation_too() -> None:
    config = {"bf16": {"enabled": False}}
    with pytest.raises(DeepSpeedConfigMismatchError, match=r"bf16 or bf16_full_eval gives True"):
        DeepSpeedConfig(config).resolve_arguments(ArgumentValues(bf16_full_eval=True))


@pytest.mark.parametrize("stage", [3, "auto"])
def test_a_batch_size_search_under_zero3_is_refused(stage: Any) -> None:
    values = ArgumentValues(auto_find_batch_size=True, zero_stage=3)
    config = {"zero_optimization": {"stage": stage}}
    with pytest.raises(ValueError, match=r"auto_find_batch_size=True.*ZeRO-3.*stage 0, 1 or 2"):
        DeepSpeedConfig(config).resolve_arguments(values)
    resolved = DeepSpeedConfig({"zero_optimization": {"stage": 2}}).resolve_arguments(values)
    assert resolved.zero_stage == 2
