"""Every default of the reference signature, checked against a table written from it.

``REFERENCE_DEFAULTS`` was written out from the TrainingArguments signature in
shared/reference/trainer-api.md (v4.34), name by name, with the reference type as a
comment; it does not come from the code under test.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
import typing

import pytest

from trainer_args import Seq2SeqTrainingArguments, TrainingArguments
from trainer_args._help import HELP

# name: (default, reference type)
REFERENCE_DEFAULTS: dict[str, tuple[object, str]] = {
    "overwrite_output_dir": (False, "bool"),
    "do_train": (False, "bool"),
    "do_eval": (False, "bool"),
    "do_predict": (False, "bool"),
    "evaluation_strategy": ("no", "Union[IntervalStrategy, str]"),
    "prediction_loss_only": (False, "bool"),
    "per_device_train_batch_size": (8, "int"),
    "per_device_eval_batch_size": (8, "int"),
    "per_gpu_train_batch_size": (None, "Optional[int]"),
    "per_gpu_eval_batch_size": (None, "Optional[int]"),
    "gradient_accumulation_steps": (1, "int"),
    "eval_accumulation_steps": (None, "Optional[int]"),
    "eval_delay": (0, "Optional[float]"),
    "learning_rate": (5e-05, "float"),
    "weight_decay": (0.0, "float"),
    "adam_beta1": (0.9, "float"),
    "adam_beta2": (0.999, "float"),
    "adam_epsilon": (1e-08, "float"),
    "max_grad_norm": (1.0, "float"),
    "num_train_epochs": (3.0, "float"),
    "max_steps": (-1, "int"),
    "lr_scheduler_type": ("linear", "Union[SchedulerType, str]"),
    "warmup_ratio": (0.0, "float"),
    "warmup_steps": (0, "int"),
    "log_level": ("passive", "Optional[str]"),
    "log_level_replica": ("warning", "Optional[str]"),
    "log_on_each_node": (True, "bool"),
    "logging_dir": (None, "Optional[str]"),
    "logging_strategy": ("steps", "Union[IntervalStrategy, str]"),
    "logging_first_step": (False, "bool"),
    "logging_steps": (500, "float"),
    "logging_nan_inf_filter": (True, "bool"),
    "save_strategy": ("steps", "Union[IntervalStrategy, str]"),
    "save_steps": (500, "float"),
    "save_total_limit": (None, "Optional[int]"),
    "save_safetensors": (False, "Optional[bool]"),
    "save_on_each_node": (False, "bool"),
    "no_cuda": (False, "bool"),
    "use_cpu": (False, "bool"),
    "use_mps_device": (False, "bool"),
    "seed": (42, "int"),
    "data_seed": (None, "Optional[int]"),
    "jit_mode_eval": (False, "bool"),
    "use_ipex": (False, "bool"),
    "bf16": (False, "bool"),
    "fp16": (False, "bool"),
    "fp16_opt_level": ("O1", "str"),
    "half_precision_backend": ("auto", "str"),
    "bf16_full_eval": (False, "bool"),
    "fp16_full_eval": (False, "bool"),
    "tf32": (None, "Optional[bool]"),
    "local_rank": (-1, "int"),
    "ddp_backend": (None, "Optional[str]"),
    "tpu_num_cores": (None, "Optional[int]"),
    "tpu_metrics_debug": (False, "bool"),
    "debug": ("", "Union[str, List[DebugOption]]"),
    "dataloader_drop_last": (False, "bool"),
    "eval_steps": (None, "Optional[float]"),
    "dataloader_num_workers": (0, "int"),
    "past_index": (-1, "int"),
    "run_name": (None, "Optional[str]"),
    "disable_tqdm": (None, "Optional[bool]"),
    "remove_unused_columns": (True, "Optional[bool]"),
    "label_names": (None, "Optional[List[str]]"),
    "load_best_model_at_end": (False, "Optional[bool]"),
    "metric_for_best_model": (None, "Optional[str]"),
    "greater_is_better": (None, "Optional[bool]"),
    "ignore_data_skip": (False, "bool"),
    "sharded_ddp": ("", "Union[List[ShardedDDPOption], str, NoneType]"),
    "fsdp": ("", "Union[List[FSDPOption], str, NoneType]"),
    "fsdp_min_num_params": (0, "int"),
    "fsdp_config": (None, "Optional[str]"),
    "fsdp_transformer_layer_cls_to_wrap": (None, "Optional[str]"),
    "deepspeed": (None, "Optional[str]"),
    "label_smoothing_factor": (0.0, "float"),
    "optim": ("adamw_torch", "Union[OptimizerNames, str]"),
    "optim_args": (None, "Optional[str]"),
    "adafactor": (False, "bool"),
    "group_by_length": (False, "bool"),
    "length_column_name": ("length", "Optional[str]"),
    "report_to": (None, "Optional[List[str]]"),
    "ddp_find_unused_parameters": (None, "Optional[bool]"),
    "ddp_bucket_cap_mb": (None, "Optional[int]"),
    "ddp_broadcast_buffers": (None, "Optional[bool]"),
    "dataloader_pin_memory": (True, "bool"),
    "skip_memory_metrics": (True, "bool"),
    "use_legacy_prediction_loop": (False, "bool"),
    "push_to_hub": (False, "bool"),
    "resume_from_checkpoint": (None, "Optional[str]"),
    "hub_model_id": (None, "Optional[str]"),
    "hub_strategy": ("every_save", "Union[HubStrategy, str]"),
    "hub_token": (None, "Optional[str]"),
    "hub_private_repo": (False, "bool"),
    "hub_always_push": (False, "bool"),
    "gradient_checkpointing": (False, "bool"),
    "include_inputs_for_metrics": (False, "bool"),
    "fp16_backend": ("auto", "str"),
    "push_to_hub_model_id": (None, "Optional[str]"),
    "push_to_hub_organization": (None, "Optional[str]"),
    "push_to_hub_token": (None, "Optional[str]"),
    "mp_parameters": ("", "str"),
    "auto_find_batch_size": (False, "bool"),
    "full_determinism": (False, "bool"),
    "torchdynamo": (None, "Optional[str]"),
    "ray_scope": ("last", "Optional[str]"),
    "ddp_timeout": (1800, "Optional[int]"),
    "torch_compile": (False, "bool"),
    "torch_compile_backend": (None, "Optional[str]"),
    "torch_compile_mode": (None, "Optional[str]"),
    "dispatch_batches": (None, "Optional[bool]"),
    "include_tokens_per_second": (False, "Optional[bool]"),
}

# The extra fields of the Seq2SeqTrainingArguments signature in the same reference.
SEQ2SEQ_REFERENCE_DEFAULTS: dict[str, tuple[object, str]] = {
    "sortish_sampler": (False, "bool"),
    "predict_with_generate": (False, "bool"),
    "generation_max_length": (None, "Optional[int]"),
    "generation_num_beams": (None, "Optional[int]"),
    "generation_config": (None, "Union[str, Path, GenerationConfig, NoneType]"),
}

# Fields of later upstream releases, with upstream's defaults (eval_strategy: None means
# "use evaluation_strategy", the one documented difference).
LATER_DEFAULTS: dict[str, object] = {
    "eval_strategy": None,
    "eval_on_start": False,
    "batch_eval_metrics": False,
    "eval_do_concat_batches": True,
    "eval_use_gather_object": False,
    "save_only_model": False,
    "restore_callback_states_from_checkpoint": False,
    "include_num_input_tokens_seen": False,
    "average_tokens_across_devices": True,
    "dataloader_prefetch_factor": None,
    "dataloader_persistent_workers": False,
    "gradient_checkpointing_kwargs": None,
    "neftune_noise_alpha": None,
    "optim_target_modules": None,
    "torch_empty_cache_steps": None,
    "accelerator_config": None,
    "split_batches": None,
    "hub_revision": None,
    "ddp_static_graph": None,
}
LATER_FACTORY_DEFAULTS: dict[str, object] = {"include_for_metrics": [], "lr_scheduler_kwargs": {}}

_BASE_TYPES = {"bool": bool, "int": int, "float": float, "str": str}


def _signature(cls: type) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(cls).parameters)


def test_output_dir_is_the_first_parameter_and_defaults_to_trainer_output() -> None:
    """Optional since transformers 4.50: left out or None, it is "trainer_output"."""
    params = list(_signature(TrainingArguments).values())
    assert params[0].name == "output_dir"
    assert params[0].default is None
    assert TrainingArguments().output_dir == "trainer_output"
    assert TrainingArguments(output_dir=None).run_name == "trainer_output"
    assert TrainingArguments("~/out").output_dir == os.path.expanduser("~/out")


def test_reference_parameters_come_first_in_reference_order() -> None:
    names = list(_signature(TrainingArguments))
    assert names[1 : 1 + len(REFERENCE_DEFAULTS)] == list(REFERENCE_DEFAULTS)


@pytest.mark.parametrize("name", list(REFERENCE_DEFAULTS))
def test_reference_default(name: str) -> None:
    expected, _ = REFERENCE_DEFAULTS[name]
    default = _signature(TrainingArguments)[name].default
    assert default == expected
    assert type(default) is type(expected)


def _flatten(hint: object) -> set[object]:
    found = {hint}
    for arg in typing.get_args(hint):
        found |= _flatten(arg)
    return found


@pytest.mark.parametrize("name", list(REFERENCE_DEFAULTS))
def test_reference_type_is_accepted_by_the_hint(name: str) -> None:
    """Every plain type the reference names is part of our (possibly wider) hint.

    A ``float`` hint accepts the reference's ``int`` (PEP 484's numeric tower):
    ``warmup_steps`` is a float as in transformers 5, whose parser needs one type.
    """
    _, reference_type = REFERENCE_DEFAULTS[name]
    members = _flatten(typing.get_type_hints(TrainingArguments)[name])
    for word, base in _BASE_TYPES.items():
        if re.search(rf"\b{word}\b", reference_type):
            assert base in members or (base is int and float in members), (name, members)
    if "Optional" in reference_type or "NoneType" in reference_type:
        assert type(None) in members, (name, members)


@pytest.mark.parametrize("name", list(SEQ2SEQ_REFERENCE_DEFAULTS))
def test_seq2seq_reference_default(name: str) -> None:
    expected, _ = SEQ2SEQ_REFERENCE_DEFAULTS[name]
    assert _signature(Seq2SeqTrainingArguments)[name].default == expected
    assert getattr(Seq2SeqTrainingArguments("out"), name) == expected


def test_seq2seq_has_every_training_argument_first() -> None:
    base = list(_signature(TrainingArguments))
    assert list(_signature(Seq2SeqTrainingArguments))[: len(base)] == base


@pytest.mark.parametrize("name", list(LATER_DEFAULTS))
def test_later_upstream_default(name: str) -> None:
    assert _signature(TrainingArguments)[name].default == LATER_DEFAULTS[name]


@pytest.mark.parametrize("name", list(LATER_FACTORY_DEFAULTS))
def test_later_upstream_mutable_defaults_are_fresh(name: str) -> None:
    first, second = TrainingArguments("a"), TrainingArguments("b")
    assert getattr(first, name) == LATER_FACTORY_DEFAULTS[name]
    assert getattr(first, name) is not getattr(second, name)


def test_constructed_defaults_keep_the_plain_values() -> None:
    """Values construction does not derive stay exactly as the signature gives them."""
    args = TrainingArguments("out")
    derived = {
        "logging_dir",
        "run_name",
        "report_to",
        "debug",
        "fsdp",
        "sharded_ddp",
        "fsdp_config",
        "disable_tqdm",
        "eval_strategy",
    }
    for name, (expected, _) in REFERENCE_DEFAULTS.items():
        if name not in derived:
            assert getattr(args, name) == expected, name


def test_report_to_all_becomes_the_installed_reporters() -> None:
    from trainer_core import REPORT_TO_GROUP, installed_plugins

    installed = sorted(installed_plugins(REPORT_TO_GROUP))  # metadata: none imported
    assert TrainingArguments("out", report_to="all").report_to == installed
    custom = TrainingArguments("out", report_to=["all", "my_reporter"]).report_to
    assert custom == [*installed, "my_reporter"]
    assert "all" not in custom


def test_constructed_derived_defaults() -> None:
    args = TrainingArguments("out")
    assert args.run_name == "out"
    assert args.report_to == []
    assert args.debug == [] and args.fsdp == [] and args.sharded_ddp == []
    assert args.fsdp_config["min_num_params"] == 0
    assert args.eval_strategy == "no" == args.evaluation_strategy
    assert args.disable_tqdm is False
    assert args.logging_dir.startswith("out/runs/")


def test_every_field_has_its_own_help_text() -> None:
    names = [spec.name for spec in dataclasses.fields(Seq2SeqTrainingArguments)]
    for spec in dataclasses.fields(Seq2SeqTrainingArguments):
        assert spec.metadata["help"], spec.name
    assert sorted(names) == sorted(HELP)


def test_type_hints_resolve_for_the_parser() -> None:
    for cls in (TrainingArguments, Seq2SeqTrainingArguments):
        hints = typing.get_type_hints(cls)
        assert all(spec.name in hints for spec in dataclasses.fields(cls))


def test_no_help_text_holds_a_percent_sign() -> None:
    """argparse %-formats help texts: transformers' HfArgumentParser, given these
    arguments, failed on "--help" with a bare "90%" in one of them."""
    assert [name for name, text in HELP.items() if "%" in text] == []
