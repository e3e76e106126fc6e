"""Old spellings warn and map onto their replacements; aliases agree; rebuilds are equal."""

from __future__ import annotations

import dataclasses
import json
import warnings
from typing import Any

import pytest

from trainer_args import (
    AcceleratorConfig,
    DebugOption,
    IntervalStrategy,
    OptimizerNames,
    Seq2SeqTrainingArguments,
    TrainingArguments,
)

# (old keyword arguments, {attribute: value expected after construction})
MAPPINGS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    (
        {"per_gpu_train_batch_size": 4},
        {"per_device_train_batch_size": 4, "per_gpu_train_batch_size": None},
    ),
    (
        {"per_gpu_eval_batch_size": 16},
        {"per_device_eval_batch_size": 16, "per_gpu_eval_batch_size": None},
    ),
    ({"no_cuda": True}, {"use_cpu": True, "no_cuda": False}),
    ({"fp16_backend": "apex"}, {"half_precision_backend": "apex", "fp16_backend": "auto"}),
    (
        {"push_to_hub_model_id": "model", "push_to_hub_organization": "org"},
        {
            "hub_model_id": "org/model",
            "push_to_hub_model_id": None,
            "push_to_hub_organization": None,
        },
    ),
    ({"push_to_hub_model_id": "model"}, {"hub_model_id": "model"}),
    ({"push_to_hub_organization": "org"}, {"hub_model_id": "org/out"}),
    ({"push_to_hub_token": "hf_old"}, {"hub_token": "hf_old", "push_to_hub_token": None}),
    ({"use_mps_device": True}, {"use_mps_device": False, "use_cpu": False}),
    (
        {"torchdynamo": "eager"},
        {"torch_compile_backend": "eager", "torch_compile": True, "torchdynamo": None},
    ),
    ({"adafactor": True}, {"optim": OptimizerNames.ADAFACTOR, "adafactor": False}),
    (
        {"tpu_metrics_debug": True},
        {"debug": [DebugOption.TPU_METRICS_DEBUG], "tpu_metrics_debug": False},
    ),
    ({"fsdp_min_num_params": 1000}, {"fsdp_min_num_params": 0}),
    (
        {"fsdp_transformer_layer_cls_to_wrap": "BertLayer,GPT2Block"},
        {"fsdp_transformer_layer_cls_to_wrap": None},
    ),
    (
        {"dispatch_batches": False},
        {"accelerator_config": AcceleratorConfig(dispatch_batches=False), "dispatch_batches": None},
    ),
    (
        {"split_batches": True},
        {"accelerator_config": AcceleratorConfig(split_batches=True), "split_batches": None},
    ),
]


@pytest.mark.parametrize(("old", "expected"), MAPPINGS, ids=[next(iter(o)) for o, _ in MAPPINGS])
def test_deprecated_argument_warns_and_maps(old: dict[str, Any], expected: dict[str, Any]) -> None:
    with pytest.warns(FutureWarning, match=next(iter(old))):
        args = TrainingArguments("out", **old)
    for name, value in expected.items():
        assert getattr(args, name) == value, name


@pytest.mark.parametrize(("old", "expected"), MAPPINGS, ids=[next(iter(o)) for o, _ in MAPPINGS])
def test_rebuilding_a_migrated_object_is_silent_and_equal(
    old: dict[str, Any], expected: dict[str, Any]
) -> None:
    with pytest.warns(FutureWarning):
        args = TrainingArguments("out", **old)
    data = args.to_dict()
    data["hub_token"] = args.hub_token  # to_dict masks it; the rebuild needs the real one
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert TrainingArguments(**data) == args


def test_fsdp_fields_move_into_fsdp_config() -> None:
    with pytest.warns(FutureWarning):
        args = TrainingArguments(
            "out",
            fsdp="full_shard auto_wrap",
            fsdp_transformer_layer_cls_to_wrap="BertLayer,GPT2Block",
        )
    assert args.fsdp_config["transformer_layer_cls_to_wrap"] == ["BertLayer", "GPT2Block"]
    with pytest.warns(FutureWarning):
        sized = TrainingArguments("out", fsdp="full_shard auto_wrap", fsdp_min_num_params=1000)
    assert sized.fsdp_config["min_num_params"] == 1000


def test_warning_points_at_the_callers_line() -> None:
    with pytest.warns(FutureWarning) as record:
        TrainingArguments("out", no_cuda=True)
    assert record[0].filename == __file__
    with pytest.warns(FutureWarning) as record:
        Seq2SeqTrainingArguments("out", no_cuda=True)
    assert record[0].filename == __file__


# (keyword arguments giving old and new spellings different values, names in the error)
CONFLICTS: list[tuple[dict[str, Any], tuple[str, str]]] = [
    (
        {"fp16_backend": "apex", "half_precision_backend": "cpu_amp"},
        ("fp16_backend", "half_precision_backend"),
    ),
    (
        {"push_to_hub_model_id": "a", "hub_model_id": "me/b"},
        ("push_to_hub_model_id", "hub_model_id"),
    ),
    (
        {"torchdynamo": "eager", "torch_compile_backend": "inductor"},
        ("torchdynamo", "torch_compile_backend"),
    ),
    ({"adafactor": True, "optim": "sgd"}, ("adafactor", "optim")),
    (
        {"dispatch_batches": True, "accelerator_config": {"dispatch_batches": False}},
        ("dispatch_batches", "accelerator_config"),
    ),
    (
        {"fsdp_min_num_params": 5, "fsdp_config": {"min_num_params": 7}},
        ("fsdp_min_num_params", "fsdp_config"),
    ),
]


@pytest.mark.parametrize(("kwargs", "names"), CONFLICTS, ids=[n[0] for _, n in CONFLICTS])
def test_old_and_new_spelling_with_different_values_is_an_error(
    kwargs: dict[str, Any], names: tuple[str, str]
) -> None:
    with pytest.warns(FutureWarning), pytest.raises(ValueError) as caught:
        TrainingArguments("out", **kwargs)
    for name in names:
        assert name in str(caught.value)


def test_token_conflict_never_shows_either_token() -> None:
    with pytest.warns(FutureWarning), pytest.raises(ValueError, match="hub_token") as caught:
        TrainingArguments("out", push_to_hub_token="hf_old_secret", hub_token="hf_new_secret")
    assert "secret" not in str(caught.value)


# --- aliases: both spellings in the spec, no warning ------------------------------------


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, "no"),
        ({"evaluation_strategy": "epoch"}, "epoch"),
        ({"eval_strategy": "steps"}, "steps"),
        ({"eval_strategy": "epoch", "evaluation_strategy": "epoch"}, "epoch"),
        ({"eval_strategy": "no", "evaluation_strategy": "no"}, "no"),
    ],
)
def test_eval_strategy_spellings_hold_the_same_value(kwargs: dict[str, Any], expected: str) -> None:
    args = TrainingArguments("out", **kwargs)
    assert args.eval_strategy == expected == args.evaluation_strategy
    assert isinstance(args.eval_strategy, IntervalStrategy)


def test_eval_strategy_spellings_with_different_values_name_both() -> None:
    with pytest.raises(ValueError, match="eval_strategy") as caught:
        TrainingArguments("out", eval_strategy="steps", evaluation_strategy="epoch")
    assert "evaluation_strategy" in str(caught.value)


@pytest.mark.filterwarnings("error")
def test_assigning_either_spelling_updates_the_other() -> None:
    args = TrainingArguments("out")
    args.eval_strategy = "epoch"
    assert args.evaluation_strategy is IntervalStrategy.EPOCH
    args.evaluation_strategy = "steps"
    assert args.eval_strategy is IntervalStrategy.STEPS
    with pytest.raises(ValueError, match="eval_strategy"):
        args.eval_strategy = "sometimes"


@pytest.mark.filterwarnings("error")
def test_include_inputs_for_metrics_and_include_for_metrics_agree() -> None:
    assert TrainingArguments("out", include_inputs_for_metrics=True).include_for_metrics == [
        "inputs"
    ]
    listed = TrainingArguments("out", include_for_metrics=["loss", "inputs"])
    assert listed.include_inputs_for_metrics is True
    assert TrainingArguments("out", include_for_metrics="loss").include_for_metrics == ["loss"]
    listed.include_inputs_for_metrics = False
    assert listed.include_for_metrics == ["loss"]
    listed.include_for_metrics = ["inputs"]
    assert listed.include_inputs_for_metrics is True


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, False),
        ({"gradient_checkpointing": True}, True),
        ({"activation_checkpointing": True}, True),
        ({"activation_checkpointing": False}, False),
        ({"activation_checkpointing": True, "gradient_checkpointing": True}, True),
    ],
)
def test_activation_checkpointing_is_gradient_checkpointings_newer_name(
    kwargs: dict[str, Any], expected: bool
) -> None:
    args = TrainingArguments("out", **kwargs)
    assert args.activation_checkpointing is expected
    assert args.gradient_checkpointing is expected


@pytest.mark.filterwarnings("error")
def test_activation_checkpointing_kwargs_fill_gradient_checkpointing_kwargs() -> None:
    args = TrainingArguments(
        "out",
        activation_checkpointing=True,
        activation_checkpointing_kwargs='{"use_reentrant": false}',
    )
    assert args.gradient_checkpointing_kwargs == {"use_reentrant": False}
    assert args.activation_checkpointing_kwargs == {"use_reentrant": False}
    old = TrainingArguments("out", gradient_checkpointing_kwargs={"use_reentrant": True})
    assert old.activation_checkpointing_kwargs == {"use_reentrant": True}
    assert TrainingArguments(**args.to_dict()) == args


@pytest.mark.parametrize(
    "kwargs",
    [
        {"gradient_checkpointing": True, "activation_checkpointing": False},
        {
            "gradient_checkpointing_kwargs": {"use_reentrant": True},
            "activation_checkpointing_kwargs": {"use_reentrant": False},
        },
    ],
)
def test_activation_checkpointing_spellings_that_disagree_are_refused(
    kwargs: dict[str, Any],
) -> None:
    with pytest.raises(ValueError, match="two spellings of one setting") as caught:
        TrainingArguments("out", **kwargs)
    assert "gradient_checkpointing" in str(caught.value)


def test_assigning_either_checkpointing_spelling_updates_the_other() -> None:
    args = TrainingArguments("out")
    args.activation_checkpointing = True
    assert args.gradient_checkpointing is True
    args.gradient_checkpointing_kwargs = {"use_reentrant": False}
    assert args.activation_checkpointing_kwargs == {"use_reentrant": False}
    assert args.set_training(activation_checkpointing=True).gradient_checkpointing is True
    with pytest.raises(ValueError, match="two spellings"):
        args.set_training(gradient_checkpointing=True, activation_checkpointing=False)


@pytest.mark.filterwarnings("error")
def test_rebuilding_from_to_dict_gives_an_equal_object_for_a_busy_configuration() -> None:
    args = TrainingArguments(
        "~/out",
        eval_strategy="steps",
        eval_steps=50,
        save_steps=100,
        load_best_model_at_end=True,
        fsdp="full_shard auto_wrap",
        fsdp_config={"fsdp_transformer_layer_cls_to_wrap": "Block"},
        debug="underflow_overflow",
        report_to="tensorboard",
        torch_compile_mode="default",
        include_for_metrics=["inputs"],
        accelerator_config='{"even_batches": false}',
        lr_scheduler_kwargs={"power": 2.0},
        logging_steps=0.01,
    )
    rebuilt = TrainingArguments(**args.to_dict())
    assert rebuilt == args
    assert TrainingArguments(**rebuilt.to_dict()).to_dict() == args.to_dict()


@pytest.mark.filterwarnings("error")
def test_seq2seq_rebuild_is_equal() -> None:
    args = Seq2SeqTrainingArguments(
        "out",
        predict_with_generate=True,
        generation_max_length=64,
        generation_config={"num_beams": 4},
    )
    assert Seq2SeqTrainingArguments(**args.to_dict()) == args


# --- edits in copies: dataclasses.replace and to_dict rebuilds ----------------------------

TWIN_EDITS: list[tuple[dict[str, Any], str, Any, dict[str, Any]]] = [
    # (built with, spelling edited, new value, {attribute: value expected in the copy})
    ({"eval_strategy": "epoch"}, "eval_strategy", "no", {"evaluation_strategy": "no"}),
    ({"eval_strategy": "epoch"}, "evaluation_strategy", "steps", {"eval_strategy": "steps"}),
    ({"evaluation_strategy": "epoch"}, "eval_strategy", "steps", {"evaluation_strategy": "steps"}),
    (
        {"include_for_metrics": ["inputs", "loss"]},
        "include_for_metrics",
        [],
        {"include_inputs_for_metrics": False},
    ),
    (
        {"include_for_metrics": ["inputs", "loss"]},
        "include_inputs_for_metrics",
        False,
        {"include_for_metrics": ["loss"]},
    ),
    (
        {"train_sampling_strategy": "group_by_length"},
        "train_sampling_strategy",
        "random",
        {"group_by_length": False},
    ),
    (
        {"group_by_length": True},
        "group_by_length",
        False,
        {"train_sampling_strategy": "random"},
    ),
    (
        {"activation_checkpointing": True},
        "gradient_checkpointing",
        False,
        {"activation_checkpointing": False},
    ),
    (
        {"gradient_checkpointing": True},
        "activation_checkpointing",
        False,
        {"gradient_checkpointing": False},
    ),
    (
        {"gradient_checkpointing_kwargs": {"use_reentrant": True}},
        "activation_checkpointing_kwargs",
        {"use_reentrant": False},
        {"gradient_checkpointing_kwargs": {"use_reentrant": False}},
    ),
]


def _edit_by_replace(args: TrainingArguments, name: str, value: Any) -> TrainingArguments:
    return dataclasses.replace(args, **{name: value})


def _edit_by_json(args: TrainingArguments, name: str, value: Any) -> TrainingArguments:
    config = json.loads(args.to_json_string())
    config[name] = value
    return TrainingArguments(**config)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("edit", [_edit_by_replace, _edit_by_json])
@pytest.mark.parametrize(("built", "name", "value", "expected"), TWIN_EDITS)
def test_editing_either_spelling_in_a_copy_wins(
    edit: Any, built: dict[str, Any], name: str, value: Any, expected: dict[str, Any]
) -> None:
    """The other spelling still holds the old value in the copy's fields: it yields,
    and both spellings read the edited value (v4.34 code reads the old name)."""
    copy = edit(TrainingArguments("out", **built), name, value)
    assert getattr(copy, name) == value
    for other, wanted in expected.items():
        assert getattr(copy, other) == wanted


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("edit", [_edit_by_replace, _edit_by_json])
def test_an_edited_eval_strategy_reaches_what_follows_from_it(edit: Any) -> None:
    args = TrainingArguments("out", eval_strategy="epoch", eval_steps=7)
    copy = edit(args, "eval_strategy", "steps")
    assert copy.evaluation_strategy is IntervalStrategy.STEPS and copy.eval_steps == 7
    assert edit(copy, "eval_strategy", "epoch") == args


def test_a_copy_that_edits_both_spellings_differently_is_refused() -> None:
    args = TrainingArguments("out", eval_strategy="epoch")
    with pytest.raises(ValueError, match="two spellings of one setting"):
        dataclasses.replace(args, eval_strategy="no", evaluation_strategy="steps")
    agreeing = dataclasses.replace(args, eval_strategy="no", evaluation_strategy="no")
    assert agreeing.evaluation_strategy is IntervalStrategy.NO


def test_a_copy_sees_spellings_assigned_after_construction() -> None:
    """The record follows assignments, so a later copy compares against the new value."""
    args = TrainingArguments("out", eval_strategy="epoch")
    args.evaluation_strategy = "no"
    assert dataclasses.replace(args, eval_strategy="steps").evaluation_strategy == "steps"
    args.set_evaluate(strategy="epoch")
    assert dataclasses.replace(args, evaluation_strategy="no").eval_strategy == "no"


def test_the_spellings_record_is_bookkeeping_only() -> None:
    """Not compared, not shown in repr or TensorBoard's hparams; a record that is not a
    dict (hand-written) is ignored, so the usual rules apply."""
    args = TrainingArguments("out", eval_strategy="epoch")
    assert args == TrainingArguments("out", eval_strategy="epoch", _resolved_spellings={})
    assert "_resolved_spellings" not in repr(args)
    assert "_resolved_spellings" in args.to_dict()
    with pytest.raises(ValueError, match="two spellings of one setting"):
        TrainingArguments("out", eval_strategy="no", evaluation_strategy="epoch",
                          _resolved_spellings="x")  # fmt: skip
