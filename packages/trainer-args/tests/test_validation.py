"""Every construction rule: bad values raise an error that names the argument."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trainer_args import (
    AcceleratorConfig,
    DebugOption,
    FSDPOption,
    IntervalStrategy,
    SaveStrategy,
    TrainingArguments,
)


def _build(**kwargs: Any) -> TrainingArguments:
    return TrainingArguments("out", **kwargs)


# (keyword arguments, text the error message must contain: the argument's name)
BAD_VALUES: list[tuple[dict[str, Any], str]] = [
    # names from closed sets
    ({"optim": "adamw_magic"}, "optim"),
    ({"lr_scheduler_type": "zigzag"}, "lr_scheduler_type"),
    ({"evaluation_strategy": "sometimes"}, "evaluation_strategy"),
    ({"eval_strategy": "sometimes"}, "eval_strategy"),
    ({"save_strategy": "always"}, "save_strategy"),
    ({"logging_strategy": "best"}, "logging_strategy"),
    ({"hub_strategy": "never"}, "hub_strategy"),
    ({"fsdp": "full_shard everything"}, "fsdp"),
    ({"debug": "underflow"}, "debug"),
    ({"log_level": "loud"}, "log_level"),
    ({"log_level_replica": "loud"}, "log_level_replica"),
    ({"ddp_backend": "carrier_pigeon"}, "ddp_backend"),
    ({"half_precision_backend": "cuda_magic"}, "half_precision_backend"),
    ({"fp16_opt_level": "O9"}, "fp16_opt_level"),
    ({"include_for_metrics": ["inputs", "labels"]}, "include_for_metrics"),
    ({"report_to": ["none", "wandb"]}, "report_to"),
    ({"accelerator_config": {"split_batch": True}}, "accelerator_config"),
    # ranges
    ({"per_device_train_batch_size": 0}, "per_device_train_batch_size"),
    ({"per_device_eval_batch_size": -2}, "per_device_eval_batch_size"),
    ({"gradient_accumulation_steps": 0}, "gradient_accumulation_steps"),
    ({"eval_accumulation_steps": 0}, "eval_accumulation_steps"),
    ({"max_steps": -5}, "max_steps"),
    ({"warmup_steps": -1}, "warmup_steps"),
    ({"warmup_ratio": 1.5}, "warmup_ratio"),
    ({"warmup_ratio": -0.1}, "warmup_ratio"),
    ({"logging_steps": -1}, "logging_steps"),
    ({"save_steps": -10}, "save_steps"),
    ({"eval_steps": -3}, "eval_steps"),
    ({"dataloader_num_workers": -1}, "dataloader_num_workers"),
    ({"num_train_epochs": -1.0}, "num_train_epochs"),
    ({"learning_rate": -1e-3}, "learning_rate"),
    ({"weight_decay": -0.1}, "weight_decay"),
    ({"adam_beta1": 1.0}, "adam_beta1"),
    ({"adam_beta2": -0.5}, "adam_beta2"),
    ({"adam_epsilon": -1e-8}, "adam_epsilon"),
    ({"max_grad_norm": float("nan")}, "max_grad_norm"),
    ({"eval_delay": -1}, "eval_delay"),
    ({"label_smoothing_factor": 1.0}, "label_smoothing_factor"),
    ({"label_smoothing_factor": -0.1}, "label_smoothing_factor"),
    ({"past_index": -2}, "past_index"),
    ({"tpu_num_cores": 0}, "tpu_num_cores"),
    ({"ddp_timeout": 0}, "ddp_timeout"),
    ({"ddp_bucket_cap_mb": 0}, "ddp_bucket_cap_mb"),
    ({"torch_empty_cache_steps": 0}, "torch_empty_cache_steps"),
    ({"neftune_noise_alpha": 0.0}, "neftune_noise_alpha"),
    ({"local_rank": -3}, "local_rank"),
    # whole numbers above 1
    ({"logging_steps": 2.5}, "logging_steps"),
    ({"save_steps": 100.5}, "save_steps"),
    ({"eval_steps": 1.5}, "eval_steps"),
    # a "steps" strategy needs a positive interval
    ({"logging_steps": 0}, "logging_steps"),
    ({"save_steps": 0}, "save_steps"),
    ({"eval_strategy": "steps", "eval_steps": 0, "logging_steps": 0}, "logging_steps"),
    ({"eval_strategy": "steps", "logging_steps": 0, "logging_strategy": "no"}, "eval_steps"),
    # precision
    ({"fp16": True, "bf16": True}, "bf16"),
    ({"fp16_full_eval": True, "bf16_full_eval": True}, "bf16_full_eval"),
    # best model
    (
        {"load_best_model_at_end": True, "eval_strategy": "epoch", "save_strategy": "steps"},
        "save_strategy",
    ),
    (
        {
            "load_best_model_at_end": True,
            "eval_strategy": "steps",
            "eval_steps": 30,
            "save_steps": 100,
        },
        "save_steps",
    ),
    (
        {
            "load_best_model_at_end": True,
            "eval_strategy": "steps",
            "eval_steps": 0.1,
            "save_steps": 100,
        },
        "save_steps",
    ),
    (
        {
            "load_best_model_at_end": True,
            "eval_strategy": "steps",
            "eval_steps": 0.1,
            "save_steps": 0.25,
        },
        "save_steps",
    ),
    ({"load_best_model_at_end": True}, "load_best_model_at_end"),
    ({"save_strategy": "best"}, "save_strategy"),
    ({"save_strategy": "best", "eval_strategy": "epoch"}, "metric_for_best_model"),
    # scheduler and data loading
    ({"lr_scheduler_type": "reduce_lr_on_plateau"}, "lr_scheduler_type"),
    ({"dataloader_prefetch_factor": 2}, "dataloader_prefetch_factor"),
    ({"dataloader_persistent_workers": True}, "dataloader_persistent_workers"),
    # FSDP
    ({"fsdp": "full_shard shard_grad_op"}, "fsdp"),
    ({"fsdp": "offload"}, "fsdp"),
    ({"fsdp": "full_shard", "deepspeed": {"zero_optimization": {"stage": 2}}}, "deepspeed"),
    (
        {
            "fsdp": "full_shard auto_wrap",
            "fsdp_config": {"min_num_params": 100, "transformer_layer_cls_to_wrap": ["Block"]},
        },
        "transformer_layer_cls_to_wrap",
    ),
    ({"fsdp_config": {"min_num_params": -1}}, "min_num_params"),
    ({"fsdp_config": {"min_num_params": 1, "fsdp_min_num_params": 2}}, "min_num_params"),
    ({"fsdp": "shard_grad_op", "fsdp_config": {"reshard_after_forward": True}}, "reshard_after"),
    ({"fsdp": "full_shard offload", "fsdp_config": {"cpu_offload": False}}, "cpu_offload"),
    ({"fsdp": True, "fsdp_config": {"auto_wrap_policy": "EVERY_LAYER"}}, "auto_wrap_policy"),
    ({"fsdp": "full_shard auto_wrap", "fsdp_config": {"auto_wrap_policy": "NO_WRAP"}}, "NO_WRAP"),
    ({"fsdp": True, "fsdp_config": {"version": 3}}, "version"),
    # accumulation given twice, or with a key accelerate does not have
    (
        {
            "gradient_accumulation_steps": 2,
            "accelerator_config": {"gradient_accumulation_kwargs": {"num_steps": 4}},
        },
        "num_steps",
    ),
    (
        {"accelerator_config": {"gradient_accumulation_kwargs": {"steps": 4}}},
        "gradient_accumulation_kwargs",
    ),
    ({"accelerator_config": {"gradient_accumulation_kwargs": {"num_steps": 0}}}, "num_steps"),
    # mappings given as text or paths
    ({"fsdp_config": "/no/such/fsdp.json"}, "fsdp_config"),
    ({"accelerator_config": "/no/such/accelerate.json"}, "accelerator_config"),
    ({"deepspeed": "/no/such/ds_config.json"}, "deepspeed"),
    ({"lr_scheduler_kwargs": "{not json"}, "lr_scheduler_kwargs"),
    ({"lr_scheduler_kwargs": "[1, 2]"}, "lr_scheduler_kwargs"),
    ({"gradient_checkpointing_kwargs": "use_reentrant=False"}, "gradient_checkpointing_kwargs"),
]


@pytest.mark.parametrize(("kwargs", "argument"), BAD_VALUES, ids=[a for _, a in BAD_VALUES])
def test_bad_value_is_rejected_naming_the_argument(kwargs: dict[str, Any], argument: str) -> None:
    with pytest.raises(ValueError, match=argument) as caught:
        _build(**kwargs)
    message = str(caught.value)
    assert "expected" in message or "contradict" in message or "use" in message.lower()


# Wrong kinds of value raise TypeError, also naming the argument.
BAD_TYPES: list[tuple[dict[str, Any], str]] = [
    ({"per_device_train_batch_size": 8.0}, "per_device_train_batch_size"),
    ({"learning_rate": "5e-5"}, "learning_rate"),
    ({"logging_steps": "500"}, "logging_steps"),
    ({"max_steps": True}, "max_steps"),
    ({"report_to": 3}, "report_to"),
    ({"fsdp": 1}, "fsdp"),
    ({"lr_scheduler_kwargs": 3}, "lr_scheduler_kwargs"),
    ({"optim_target_modules": 3}, "optim_target_modules"),
]


@pytest.mark.parametrize(("kwargs", "argument"), BAD_TYPES, ids=[a for _, a in BAD_TYPES])
def test_bad_type_is_rejected_naming_the_argument(kwargs: dict[str, Any], argument: str) -> None:
    with pytest.raises(TypeError, match=argument):
        _build(**kwargs)


def test_output_dir_must_be_a_path() -> None:
    with pytest.raises(TypeError, match="output_dir"):
        TrainingArguments(3)  # type: ignore[arg-type]  # the point of the test


def test_unknown_name_lists_the_allowed_values() -> None:
    with pytest.raises(ValueError, match="'epoch'") as caught:
        _build(save_strategy="always")
    assert "'best'" in str(caught.value) and "'always'" in str(caught.value)


def test_sharded_ddp_says_it_was_removed_and_which_fsdp_to_use() -> None:
    with pytest.raises(ValueError, match="sharded_ddp") as caught:
        _build(sharded_ddp="zero_dp_3 offload")
    message = str(caught.value)
    assert "FSDP" in message and "fsdp='full_shard offload'" in message
    assert '--fsdp "full_shard offload"' in message
    with pytest.raises(ValueError, match="shard_grad_op"):
        _build(sharded_ddp=["simple"])


def test_empty_sharded_ddp_is_accepted() -> None:
    assert _build(sharded_ddp=None).sharded_ddp == []
    assert _build(sharded_ddp=[]).sharded_ddp == []


# --- accepted values and what construction derives -------------------------------------


def test_max_steps_minus_one_and_zero_are_accepted() -> None:
    assert _build(max_steps=-1).max_steps == -1
    assert _build(max_steps=0).max_steps == 0


def test_a_negative_max_grad_norm_is_accepted_as_no_clipping() -> None:
    """transformers clips only above 0, so scripts that pass -1 to turn clipping off run."""
    assert _build(max_grad_norm=-1).max_grad_norm == -1


def test_step_intervals_accept_fractions_and_store_them_as_given() -> None:
    args = _build(logging_steps=0.05, save_steps=0.2, eval_strategy="steps", eval_steps=0.1)
    assert (args.logging_steps, args.save_steps, args.eval_steps) == (0.05, 0.2, 0.1)


def test_whole_float_intervals_become_ints() -> None:
    args = _build(logging_steps=100.0, save_steps=1.0, eval_steps=50.0)
    assert (args.logging_steps, args.save_steps, args.eval_steps) == (100, 1, 50)
    assert all(isinstance(v, int) for v in (args.logging_steps, args.save_steps, args.eval_steps))


def test_eval_steps_default_to_logging_steps_with_the_steps_strategy() -> None:
    assert _build(eval_strategy="steps", logging_steps=25).eval_steps == 25
    assert _build(eval_strategy="epoch").eval_steps is None


def test_do_eval_follows_the_evaluation_strategy() -> None:
    assert _build(eval_strategy="epoch").do_eval
    assert not _build().do_eval


def test_load_best_model_accepts_matching_strategies_and_multiples() -> None:
    args = _build(load_best_model_at_end=True, eval_strategy="steps", eval_steps=50, save_steps=200)
    assert args.metric_for_best_model == "loss" and args.greater_is_better is False
    fractions = _build(
        load_best_model_at_end=True, eval_strategy="steps", eval_steps=0.1, save_steps=0.3
    )
    assert fractions.save_steps == 0.3
    epochs = _build(load_best_model_at_end=True, eval_strategy="epoch", save_strategy="epoch")
    assert epochs.save_strategy is SaveStrategy.EPOCH


def test_save_strategy_best_needs_no_matching_save_interval() -> None:
    args = _build(
        load_best_model_at_end=True, eval_strategy="steps", eval_steps=30, save_strategy="best"
    )
    assert args.save_strategy is SaveStrategy.BEST
    assert args.metric_for_best_model == "loss"


@pytest.mark.parametrize(
    ("metric", "greater"), [("accuracy", True), ("eval_loss", False), ("loss", False)]
)
def test_greater_is_better_follows_the_metric_name(metric: str, greater: bool) -> None:
    assert _build(metric_for_best_model=metric).greater_is_better is greater
    explicit = _build(metric_for_best_model=metric, greater_is_better=not greater)
    assert explicit.greater_is_better is (not greater)


def test_strategies_become_enums_equal_to_their_strings() -> None:
    args = _build(eval_strategy="epoch", save_strategy="epoch", logging_strategy="no")
    assert args.eval_strategy is IntervalStrategy.EPOCH and args.eval_strategy == "epoch"
    assert args.save_strategy is SaveStrategy.EPOCH
    assert args.logging_strategy == IntervalStrategy.NO


def test_option_strings_become_enum_lists() -> None:
    args = _build(fsdp="full_shard auto_wrap", debug="underflow_overflow")
    assert args.fsdp == [FSDPOption.FULL_SHARD, FSDPOption.AUTO_WRAP]
    assert args.debug == [DebugOption.UNDERFLOW_OVERFLOW]
    assert _build(fsdp=["shard_grad_op", "offload"]).fsdp == ["shard_grad_op", "offload"]


@pytest.mark.parametrize(
    ("fsdp", "config", "words"),
    [
        (True, {}, ["full_shard", "auto_wrap"]),
        (True, {"fsdp_reshard_after_forward": "false"}, ["shard_grad_op", "auto_wrap"]),
        (True, {"cpu_offload": True, "auto_wrap_policy": "NO_WRAP"}, ["full_shard", "offload"]),
        ("full_shard", {"cpu_offload": True, "version": 2}, ["full_shard", "offload"]),
        ("", {"cpu_offload": True}, []),  # FSDP off: its config describes nothing to run
    ],
)
def test_transformers_5_fsdp_switches_become_words(
    fsdp: Any, config: dict[str, Any], words: list[str]
) -> None:
    assert _build(fsdp=fsdp, fsdp_config=config).fsdp == words


def test_size_based_wrap_policy_without_a_threshold_takes_torchs_default() -> None:
    args = _build(fsdp=True, fsdp_config={"auto_wrap_policy": "SIZE_BASED_WRAP"})
    assert args.fsdp == ["full_shard", "auto_wrap"]
    assert args.fsdp_config["min_num_params"] == 100_000_000


def test_fsdp_config_from_a_json_file_with_prefixed_keys(tmp_path: Path) -> None:
    path = tmp_path / "fsdp.json"
    path.write_text(
        json.dumps(
            {
                "fsdp_transformer_layer_cls_to_wrap": "GPT2Block",
                "backward_prefetch": "BACKWARD_POST",
            }
        )
    )
    args = _build(fsdp="full_shard auto_wrap", fsdp_config=str(path))
    assert args.fsdp_config["transformer_layer_cls_to_wrap"] == ["GPT2Block"]
    assert args.fsdp_config["backward_prefetch"] == "BACKWARD_POST"  # kept as given
    assert args.fsdp_config["min_num_params"] == 0 and args.fsdp_config["xla"] is False


def test_fsdp_config_dict_is_not_modified_in_place() -> None:
    given = {"fsdp_min_num_params": 10}
    args = _build(fsdp_config=given)
    assert given == {"fsdp_min_num_params": 10}
    assert args.fsdp_config["min_num_params"] == 10


def test_mapping_arguments_accept_json_text_and_files(tmp_path: Path) -> None:
    path = tmp_path / "accelerate.json"
    path.write_text('{"even_batches": false}')
    args = _build(
        lr_scheduler_kwargs='{"num_cycles": 2}',
        gradient_checkpointing_kwargs='{"use_reentrant": false}',
        accelerator_config=str(path),
        deepspeed='{"zero_optimization": {"stage": 1}}',
    )
    assert args.lr_scheduler_kwargs == {"num_cycles": 2}
    assert args.gradient_checkpointing_kwargs == {"use_reentrant": False}
    assert args.accelerator_config == AcceleratorConfig(even_batches=False)
    assert args.deepspeed == {"zero_optimization": {"stage": 1}}


def test_deepspeed_path_is_kept_when_the_file_exists(tmp_path: Path) -> None:
    path = tmp_path / "ds.json"
    path.write_text("{}")
    assert _build(deepspeed=str(path)).deepspeed == str(path)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, []),
        ("none", []),
        (["none"], []),
        ("wandb", ["wandb"]),
        (["tensorboard", "wandb"], ["tensorboard", "wandb"]),
    ],
)
def test_report_to_defaults_to_no_reporter(given: Any, expected: list[str]) -> None:
    assert _build(report_to=given).report_to == expected


def test_run_name_and_logging_dir_default_from_output_dir() -> None:
    args = TrainingArguments("~/runs/exp1")
    assert not args.output_dir.startswith("~")
    assert args.run_name == args.output_dir
    parts = args.logging_dir.split("/")
    assert args.logging_dir.startswith(args.output_dir) and parts[-2] == "runs"
    month_day, clock, *host = parts[-1].split("_")
    assert len(clock.split("-")) == 3 and host and month_day[:3].isalpha()
    assert _build(logging_dir="~/tb").logging_dir.endswith("/tb")


def test_torch_compile_backend_or_mode_turn_compilation_on() -> None:
    assert _build(torch_compile_mode="reduce-overhead").torch_compile
    args = _build(torch_compile_backend="aot_eager")
    assert args.torch_compile and args.torch_compile_backend == "aot_eager"
    assert _build(torch_compile=True).torch_compile_backend == "inductor"
    assert not _build().torch_compile


def test_disable_tqdm_follows_the_trainer_logger_level() -> None:
    import logging

    logger = logging.getLogger("trainer")
    previous = logger.level
    try:
        logger.setLevel(logging.ERROR)
        assert _build().disable_tqdm is True
        logger.setLevel(logging.INFO)
        assert _build().disable_tqdm is False
    finally:
        logger.setLevel(previous)
    assert _build(disable_tqdm=True).disable_tqdm is True


def test_log_levels_are_case_insensitive() -> None:
    args = _build(log_level="INFO", log_level_replica="Error")
    assert (args.log_level, args.log_level_replica) == ("info", "error")


def test_a_bool_given_as_a_word_means_what_it_says() -> None:
    """greater_is_better="False" (from a config file or an environment variable) would
    keep the worst checkpoint as the best if its truth were taken."""
    args = _build(
        greater_is_better="False", disable_tqdm="no", logging_nan_inf_filter="off", do_train="1"
    )
    assert args.greater_is_better is False
    assert (args.disable_tqdm, args.logging_nan_inf_filter, args.do_train) == (False, False, True)
    with pytest.raises(ValueError, match=r"push_to_hub='maybe' is not valid: expected a bool"):
        _build(push_to_hub="maybe")
    # a field with words of its own keeps them
    assert _build(include_num_input_tokens_seen="non_padding").include_num_input_tokens_seen == (
        "non_padding"
    )


def test_the_references_meanings_of_zero_eval_steps_and_a_negative_limit() -> None:
    """transformers reads eval_steps=0 as "unset" (logging_steps then) and any
    save_total_limit <= 0 as "keep every checkpoint"."""
    args = _build(eval_strategy="steps", eval_steps=0, logging_steps=7, save_total_limit=-1)
    assert args.eval_steps == 7
    assert args.save_total_limit == -1


def test_an_empty_output_dir_is_refused() -> None:
    with pytest.raises(ValueError, match=r"output_dir='' is not valid: expected a folder path"):
        TrainingArguments(output_dir="")
