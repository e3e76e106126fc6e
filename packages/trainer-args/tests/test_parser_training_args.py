"""TrainingArguments through HfArgumentParser: every path gives back an equal object.

The paths are to_dict -> parse_dict, a JSON file, a YAML file and a command line built
by ``to_command_line``; a hypothesis test draws the scalar fields.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Optional

import pytest
import yaml
from hypothesis import given, reject, settings
from hypothesis import strategies as st

from trainer_args import (
    HfArgumentParser,
    HubStrategy,
    IntervalStrategy,
    OptimizerNames,
    SaveStrategy,
    SchedulerType,
    Seq2SeqTrainingArguments,
    TrainingArguments,
)

PARSER = HfArgumentParser(TrainingArguments)
_YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def rich_args(output_dir: str) -> TrainingArguments:
    """Arguments that exercise every field shape: enums, lists, dicts, option strings."""
    return TrainingArguments(
        output_dir=output_dir,
        do_train=True,
        eval_strategy="steps",
        eval_steps=50,
        save_steps=100,
        load_best_model_at_end=True,
        metric_for_best_model="accuracy",
        learning_rate=3e-4,
        adam_epsilon=1e-10,
        warmup_ratio=0.1,
        seed=-5,
        lr_scheduler_type="cosine",
        lr_scheduler_kwargs={"num_cycles": 0.5},
        optim="adafactor",
        fsdp="full_shard auto_wrap",
        debug="underflow_overflow",
        report_to=["tensorboard", "wandb"],
        label_names=["labels", "extra"],
        include_for_metrics=["inputs"],
        gradient_checkpointing_kwargs={"use_reentrant": False},
        accelerator_config={"split_batches": True},
        optim_target_modules=["attn", "mlp"],
        neftune_noise_alpha=5.0,
        hub_strategy="checkpoint",
        run_name="-a run name with spaces",
        dataloader_pin_memory=False,
    )


def from_argv(argv: list[str]) -> TrainingArguments:
    (args,) = PARSER.parse_args_into_dataclasses(argv, look_for_args_file=False)
    return args


# ---------------------------------------------------------------------- fixed round trips


def test_every_init_field_has_an_option() -> None:
    options = {o for action in PARSER._actions for o in action.option_strings}
    for field in dataclasses.fields(TrainingArguments):
        if field.init:
            assert f"--{field.name}" in options


def test_help_renders_for_every_field(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        PARSER.parse_args(["--help"])
    out = capsys.readouterr().out
    assert "--per_device_train_batch_size" in out
    assert "--no_dataloader_pin_memory" in out


@pytest.mark.parametrize("make", [lambda d: TrainingArguments(output_dir=d), rich_args])
def test_dict_round_trip(make: Any, tmp_path: Path) -> None:
    args = make(str(tmp_path))
    assert PARSER.parse_dict(args.to_dict()) == (args,)


@pytest.mark.parametrize("make", [lambda d: TrainingArguments(output_dir=d), rich_args])
def test_json_file_round_trip(make: Any, tmp_path: Path) -> None:
    args = make(str(tmp_path))
    path = tmp_path / "training_args.json"
    path.write_text(args.to_json_string())
    assert PARSER.parse_json_file(path) == (args,)


@pytest.mark.parametrize("make", [lambda d: TrainingArguments(output_dir=d), rich_args])
def test_yaml_file_round_trip(make: Any, tmp_path: Path) -> None:
    args = make(str(tmp_path))
    path = tmp_path / "training_args.yaml"
    path.write_text(yaml.safe_dump(args.to_dict()))
    assert PARSER.parse_yaml_file(path) == (args,)


def test_command_line_round_trip_from_to_dict(tmp_path: Path) -> None:
    args = rich_args(str(tmp_path))
    argv = PARSER.to_command_line(args.to_dict())
    assert "--fsdp" in argv
    assert '--lr_scheduler_kwargs={"num_cycles": 0.5}' in argv
    assert from_argv(argv) == args


def test_command_line_round_trip_from_the_instance(tmp_path: Path) -> None:
    args = rich_args(str(tmp_path))
    assert from_argv(PARSER.to_command_line(args)) == args


def test_command_line_round_trip_of_the_defaults(tmp_path: Path) -> None:
    args = TrainingArguments(output_dir=str(tmp_path))
    assert from_argv(PARSER.to_command_line(args.to_dict())) == args


def test_a_typical_command_line(tmp_path: Path) -> None:
    argv = [
        "--output_dir", str(tmp_path), "--do_train", "--do-eval",
        "--evaluation_strategy", "epoch", "--save_strategy", "epoch",
        "--learning_rate", "2e-5", "--num_train_epochs", "1", "--no_dataloader_pin_memory",
        "--fsdp", "full_shard auto_wrap", "--report_to", "none", "--lr_scheduler_type", "cosine",
        "--lr_scheduler_kwargs", '{"num_cycles": 2}', "--label_names", "labels", "start",
    ]  # fmt: skip
    args = from_argv(argv)
    assert args.do_train and args.do_eval
    assert args.eval_strategy == IntervalStrategy.EPOCH
    assert args.learning_rate == 2e-5
    assert args.dataloader_pin_memory is False
    assert [option.value for option in args.fsdp] == ["full_shard", "auto_wrap"]
    assert args.report_to == []
    assert args.lr_scheduler_kwargs == {"num_cycles": 2}
    assert args.label_names == ["labels", "start"]


@pytest.mark.parametrize(
    ("fsdp_argv", "words"),
    [
        (["--fsdp"], ["full_shard", "auto_wrap"]),  # transformers 5: the option alone
        (["--fsdp", "shard_grad_op", "offload"], ["shard_grad_op", "offload"]),
        (
            ["--fsdp", "--fsdp_config", '{"reshard_after_forward": false}'],
            ["shard_grad_op", "auto_wrap"],
        ),
    ],
)
def test_fsdp_on_the_command_line(tmp_path: Path, fsdp_argv: list[str], words: list[str]) -> None:
    args = from_argv(["--output_dir", str(tmp_path), *fsdp_argv, "--do_train"])
    assert [option.value for option in args.fsdp] == words and args.do_train


@dataclasses.dataclass
class ModelArguments:
    model_name_or_path: str
    cache_dir: Optional[str] = None  # noqa: UP045


def test_a_seq2seq_script_command_line(tmp_path: Path) -> None:
    parser = HfArgumentParser((ModelArguments, Seq2SeqTrainingArguments))
    argv = [
        "--model_name_or_path", "t5-small", "--output_dir", str(tmp_path),
        "--predict_with_generate", "--generation_max_length", "32", "--report_to", "none",
    ]  # fmt: skip
    model, args = parser.parse_args_into_dataclasses(argv, look_for_args_file=False)
    assert model == ModelArguments("t5-small")
    assert args.predict_with_generate is True
    assert args.generation_max_length == 32
    rich = Seq2SeqTrainingArguments(
        output_dir=str(tmp_path), generation_config="gen_dir", report_to="tensorboard"
    )
    data = {**rich.to_dict(), "model_name_or_path": "m"}
    assert parser.parse_dict(data) == (ModelArguments("m"), rich)
    argv = parser.to_command_line(rich) + parser.to_command_line(ModelArguments("m"))
    back = parser.parse_args_into_dataclasses(argv, look_for_args_file=False)
    assert back == (ModelArguments("m"), rich)


def test_yaml_values_are_coerced_for_training_arguments(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"output_dir: {tmp_path}\nlearning_rate: 1e-4\nnum_train_epochs: 2\n"
        "bf16: 'false'\nreport_to: tensorboard\nlr_scheduler_type: constant\n"
    )
    (args,) = PARSER.parse_yaml_file(path)
    assert args.learning_rate == 1e-4
    assert args.num_train_epochs == 2.0
    assert args.report_to == ["tensorboard"]
    assert args.lr_scheduler_type == SchedulerType.CONSTANT


def test_training_arguments_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="did you mean 'learning_rate'"):
        PARSER.parse_dict({"output_dir": str(tmp_path), "learning_rat": 1e-3})
    with pytest.raises(ValueError, match="key 'per_device_train_batch_size' expects an int"):
        PARSER.parse_dict({"output_dir": str(tmp_path), "per_device_train_batch_size": 1.5})
    with pytest.raises(ValueError, match="key 'lr_scheduler_type' expects one of 'linear'"):
        PARSER.parse_dict({"output_dir": str(tmp_path), "lr_scheduler_type": "linearr"})


def test_output_dir_may_be_left_out_of_every_source() -> None:
    """As in transformers >= 4.50: no output_dir anywhere means "trainer_output"."""
    (from_argv,) = PARSER.parse_args_into_dataclasses([])
    (from_dict,) = PARSER.parse_dict({})
    assert from_argv.output_dir == from_dict.output_dir == "trainer_output"
    assert not next(a for a in PARSER._actions if "--output_dir" in a.option_strings).required


# ---------------------------------------------------------------------- property tests

_UNIT = st.floats(0, 1, exclude_max=True)
_POSITIVE = st.floats(0, 1e6, allow_nan=False, allow_infinity=False)
_TEXT = st.text(max_size=12)
_BOOL_FIELDS = [
    "do_train", "do_eval", "do_predict", "prediction_loss_only", "log_on_each_node",
    "logging_first_step", "logging_nan_inf_filter", "save_on_each_node", "dataloader_drop_last",
    "ignore_data_skip", "dataloader_pin_memory", "skip_memory_metrics", "group_by_length",
    "remove_unused_columns", "disable_tqdm", "gradient_checkpointing", "auto_find_batch_size",
    "eval_on_start", "batch_eval_metrics", "save_only_model", "average_tokens_across_devices",
    "include_num_input_tokens_seen", "eval_do_concat_batches",
]  # fmt: skip
SCALARS: dict[str, st.SearchStrategy[Any]] = {
    "per_device_train_batch_size": st.integers(1, 4096),
    "per_device_eval_batch_size": st.integers(1, 4096),
    "gradient_accumulation_steps": st.integers(1, 256),
    "max_steps": st.integers(-1, 10**9),
    "warmup_steps": st.integers(0, 10**6),
    "seed": st.integers(-(2**63), 2**63),
    "data_seed": st.none() | st.integers(0, 2**32),
    "save_total_limit": st.none() | st.integers(0, 100),
    "past_index": st.integers(-1, 8),
    "ddp_timeout": st.integers(1, 10**6),
    "learning_rate": _POSITIVE,
    "weight_decay": _POSITIVE,
    "adam_beta1": _UNIT,
    "adam_beta2": _UNIT,
    "adam_epsilon": _POSITIVE,
    "max_grad_norm": _POSITIVE,
    "num_train_epochs": _POSITIVE | st.integers(0, 100),
    "warmup_ratio": st.floats(0, 1),
    "label_smoothing_factor": _UNIT,
    "neftune_noise_alpha": st.none() | st.floats(1e-6, 100),
    "run_name": _TEXT,
    "length_column_name": _TEXT,
    "mp_parameters": _TEXT,
    "hub_model_id": st.none() | _TEXT,
    "optim_args": st.none() | _TEXT,
    "lr_scheduler_type": st.sampled_from(
        [s.value for s in SchedulerType if s is not SchedulerType.REDUCE_ON_PLATEAU]
    ),
    "optim": st.sampled_from([o.value for o in OptimizerNames]),
    "hub_strategy": st.sampled_from([h.value for h in HubStrategy]),
    "logging_strategy": st.sampled_from([i.value for i in IntervalStrategy]),
    "save_strategy": st.sampled_from([s for s in SaveStrategy if s is not SaveStrategy.BEST]),
    "eval_strategy": st.sampled_from(list(IntervalStrategy)),
    "log_level": st.sampled_from(["debug", "info", "warning", "error", "critical", "passive"]),
    "fp16_opt_level": st.sampled_from(["O0", "O1", "O2", "O3"]),
    **{name: st.booleans() for name in _BOOL_FIELDS},
}


@settings(max_examples=50, deadline=None)
@given(values=st.fixed_dictionaries({}, optional=SCALARS))
def test_scalar_fields_round_trip_through_every_path(values: dict[str, Any]) -> None:
    try:
        args = TrainingArguments(output_dir="prop_out", report_to="tensorboard", **values)
    except ValueError:
        reject()  # a combination TrainingArguments itself refuses: nothing to round-trip
    data = args.to_dict()
    assert PARSER.parse_dict(data) == (args,)
    assert PARSER.parse_dict(json.loads(json.dumps(data))) == (args,)
    yaml_text = yaml.dump(data, Dumper=_YAML_DUMPER)
    assert PARSER.parse_dict(yaml.load(yaml_text, Loader=_YAML_LOADER)) == (args,)
    assert from_argv(PARSER.to_command_line(data)) == args
    assert from_argv(PARSER.to_command_line(args)) == args


def test_a_value_without_a_command_line_spelling_names_its_field(tmp_path: Path) -> None:
    args = TrainingArguments(str(tmp_path), include_num_input_tokens_seen="non_padding")
    with pytest.raises(ValueError, match="field 'include_num_input_tokens_seen' holds"):
        HfArgumentParser(TrainingArguments).to_command_line(args)
