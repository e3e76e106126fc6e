"""Differences from transformers 5.24's TrainingArguments found by running both side by side.

``data/transformers_training_args.json`` holds what ``transformers.TrainingArguments(
**kwargs).to_json_string()`` wrote (transformers 5.24.0) for a default and a typical
fine-tuning configuration: the ``training_args.json`` users feed back to a constructor.
It is stored so that these tests need only this package.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from trainer_args import HfArgumentParser, TrainingArguments

REFERENCE = json.loads(
    (Path(__file__).parent / "data" / "transformers_training_args.json").read_text()
)


def _rebuild(case: str, tmp_path: Path, **overrides: Any) -> TrainingArguments:
    saved = {**REFERENCE[case]["to_dict"], "output_dir": str(tmp_path), **overrides}
    return TrainingArguments(**saved)


@pytest.mark.parametrize("case", ["defaults", "fine_tuning"])
def test_transformers_to_dict_builds_equivalent_arguments(case: str, tmp_path: Path) -> None:
    """Every field transformers 5 writes is accepted, and means what it meant there."""
    args = _rebuild(case, tmp_path)
    saved = REFERENCE[case]["to_dict"]
    assert args.hub_token is None  # the "<HUB_TOKEN>" mask is no token
    assert args.include_num_input_tokens_seen is (saved["include_num_input_tokens_seen"] == "all")
    grouped = saved["train_sampling_strategy"] == "group_by_length"
    assert args.group_by_length is grouped
    assert args.get_warmup_steps(100) == (10 if case == "fine_tuning" else 0)
    assert args.dataloader_multiprocessing_context == saved["dataloader_multiprocessing_context"]
    assert (args.project, args.use_cache, args.dataloader_in_order) == ("huggingface", False, True)
    assert TrainingArguments(**args.to_dict()).to_dict() == args.to_dict()


@pytest.mark.parametrize("case", ["defaults", "fine_tuning"])
def test_transformers_training_args_json_parses_as_the_constructor_builds_it(
    case: str, tmp_path: Path
) -> None:
    """What transformers 5 writes (hub_private_repo null, fsdp true, "all") goes through
    HfArgumentParser's JSON path as it goes through the constructor."""
    path = tmp_path / "training_args.json"
    path.write_text(json.dumps({**REFERENCE[case]["to_dict"], "output_dir": str(tmp_path)}))
    (parsed,) = HfArgumentParser(TrainingArguments).parse_json_file(path)
    assert parsed.to_dict() == _rebuild(case, tmp_path).to_dict()


def test_our_to_dict_parses_back_whatever_the_constructor_took(tmp_path: Path) -> None:
    built = TrainingArguments(
        str(tmp_path), include_num_input_tokens_seen="non_padding", warmup_steps=0.1
    )
    (parsed,) = HfArgumentParser(TrainingArguments).parse_dict(built.to_dict())
    assert parsed.to_dict() == built.to_dict()


def test_transformers5_only_fields_take_transformers_defaults(tmp_path: Path) -> None:
    args = TrainingArguments(str(tmp_path))
    defaults = {
        name: REFERENCE["defaults"]["to_dict"][name]
        for name in (
            "use_liger_kernel",
            "liger_kernel_config",
            "use_cache",
            "project",
            "trackio_space_id",
            "trackio_bucket_id",
            "trackio_static_space_id",
            "enable_jit_checkpoint",
            "parallelism_config",
            "dataloader_multiprocessing_context",
            "dataloader_in_order",
            "train_sampling_strategy",
        )
    }
    assert {name: getattr(args, name) for name in defaults} == defaults


@pytest.mark.parametrize(
    ("name", "value", "fix"),
    [
        ("use_liger_kernel", True, "apply_liger_kernel_to_"),
        ("parallelism_config", {"tp_size": 2}, "fsdp or deepspeed"),
        ("train_sampling_strategy", "batch_rebalance", "'group_by_length'"),
    ],
)
def test_transformers5_behaviours_not_implemented_are_refused(
    name: str, value: Any, fix: str, tmp_path: Path
) -> None:
    """Training silently another way than asked would be worse than stopping."""
    with pytest.raises(ValueError, match=rf"{name}=.* is not supported: .*{fix}"):
        TrainingArguments(str(tmp_path), **{name: value})


@pytest.mark.parametrize(
    ("name", "value"), [("enable_jit_checkpoint", True), ("train_sampling_strategy", "sequential")]
)
def test_transformers5_behaviours_the_loop_implements_are_accepted(
    name: str, value: Any, tmp_path: Path
) -> None:
    """The loop saves a checkpoint on SIGTERM and trains in the dataset's order."""
    args = TrainingArguments(str(tmp_path), **{name: value})
    assert getattr(args, name) == value
    assert getattr(TrainingArguments(**args.to_dict()), name) == value


def test_sequential_order_and_group_by_length_stay_apart(tmp_path: Path) -> None:
    args = TrainingArguments(str(tmp_path), train_sampling_strategy="sequential")
    assert args.group_by_length is False
    args.group_by_length = False  # grouping stays off: the order is still sequential
    assert args.train_sampling_strategy == "sequential"
    args.group_by_length = True
    assert args.train_sampling_strategy == "group_by_length"
    with pytest.raises(ValueError, match="group_by_length=True and train_sampling_strategy"):
        TrainingArguments(str(tmp_path), group_by_length=True, train_sampling_strategy="sequential")


def test_greedy_scheduler_steps_on_the_loss_and_needs_evaluations(tmp_path: Path) -> None:
    """As in transformers 5: the metric defaults to the loss; no evaluation is refused."""
    args = TrainingArguments(str(tmp_path), lr_scheduler_type="greedy", eval_strategy="steps")
    assert (args.lr_scheduler_type, args.metric_for_best_model, args.greater_is_better) == (
        "greedy", "loss", False,
    )  # fmt: skip
    chosen = TrainingArguments(
        str(tmp_path), lr_scheduler_type="greedy", eval_strategy="epoch",
        metric_for_best_model="accuracy",
    )  # fmt: skip
    assert (chosen.metric_for_best_model, chosen.greater_is_better) == ("accuracy", True)
    with pytest.raises(ValueError, match="lr_scheduler_type='greedy' and eval_strategy='no'"):
        TrainingArguments(str(tmp_path), lr_scheduler_type="greedy")
    warm = TrainingArguments(str(tmp_path), lr_scheduler_type="cosine_warmup_with_min_lr")
    assert warm.lr_scheduler_type == "cosine_warmup_with_min_lr"


def test_train_sampling_strategy_group_by_length_is_group_by_length(tmp_path: Path) -> None:
    spelled_new = TrainingArguments(str(tmp_path), train_sampling_strategy="group_by_length")
    assert spelled_new.group_by_length is True
    spelled_old = TrainingArguments(str(tmp_path), group_by_length=True)
    assert spelled_old.train_sampling_strategy == "group_by_length"
    spelled_old.group_by_length = False
    assert spelled_old.train_sampling_strategy == "random"
    spelled_old.train_sampling_strategy = "group_by_length"
    assert spelled_old.group_by_length is True
    with pytest.raises(ValueError, match="train_sampling_strategy='bogus'"):
        TrainingArguments(str(tmp_path), train_sampling_strategy="bogus")
    (parsed,) = HfArgumentParser(TrainingArguments).parse_args_into_dataclasses(
        ["--output_dir", str(tmp_path), "--train_sampling_strategy", "group_by_length"]
    )
    assert parsed.group_by_length is True


@pytest.mark.parametrize(("value", "stored"), [("no", False), ("all", True)])
def test_include_num_input_tokens_seen_words(value: str, stored: Any, tmp_path: Path) -> None:
    """transformers 5 writes "no" for off; kept as a string it would switch counting on."""
    args = TrainingArguments(str(tmp_path), include_num_input_tokens_seen=value)
    assert args.include_num_input_tokens_seen == stored
    assert bool(args.include_num_input_tokens_seen) is (value != "no")


def test_a_masked_token_is_no_token(tmp_path: Path) -> None:
    """to_dict writes "<HUB_TOKEN>" for a token; built back, it must not be sent to the Hub."""
    args = TrainingArguments(str(tmp_path), hub_token="hf_abc")
    assert args.to_dict()["hub_token"] == "<HUB_TOKEN>"
    assert TrainingArguments(**args.to_dict()).hub_token is None
    assert TrainingArguments(str(tmp_path), hub_token="<OTHER>").hub_token == "<OTHER>"


def test_metric_for_best_model_must_be_a_name(tmp_path: Path) -> None:
    """transformers fails with "'int' object has no attribute 'endswith'"."""
    with pytest.raises(TypeError, match=r"metric_for_best_model=5 has type int"):
        TrainingArguments(str(tmp_path), metric_for_best_model=5)


@pytest.mark.parametrize("value", [-0.5, math.nan, math.inf])
def test_a_float_warmup_that_is_no_fraction_is_a_value_error(value: float, tmp_path: Path) -> None:
    """A float is a valid warmup_steps (a fraction); only its value is wrong. transformers
    raises ValueError for a negative one too."""
    with pytest.raises(ValueError, match=r"warmup_steps=.* or a fraction of the run"):
        TrainingArguments(str(tmp_path), warmup_steps=value)


def test_get_warmup_steps_reads_a_fraction_assigned_after_construction(tmp_path: Path) -> None:
    args = TrainingArguments(str(tmp_path))
    args.warmup_steps = 0.1
    assert args.get_warmup_steps(95) == 10
    args.warmup_steps = 7.0
    assert args.get_warmup_steps(95) == 7


def test_set_dataloader_takes_the_transformers5_worker_options(tmp_path: Path) -> None:
    args = TrainingArguments(str(tmp_path)).set_dataloader(
        num_workers=2,
        persistent_workers=True,
        prefetch_factor=4,
        multiprocessing_context="spawn",
        in_order=False,
    )
    assert (
        args.dataloader_persistent_workers,
        args.dataloader_prefetch_factor,
        args.dataloader_multiprocessing_context,
        args.dataloader_in_order,
    ) == (True, 4, "spawn", False)
    # Left out, they return to their defaults with the worker count, as in transformers
    # (keeping prefetch_factor=4 with num_workers=0 would be refused).
    args.set_dataloader(train_batch_size=16)
    assert (args.dataloader_prefetch_factor, args.dataloader_persistent_workers) == (None, False)
    with pytest.raises(ValueError, match="dataloader_multiprocessing_context='thread'"):
        args.set_dataloader(num_workers=1, multiprocessing_context="thread")


def test_reduce_lr_on_plateau_tracks_the_loss_by_default(tmp_path: Path) -> None:
    """The scheduler steps on metric_for_best_model; transformers defaults it to the loss."""
    args = TrainingArguments(
        str(tmp_path), lr_scheduler_type="reduce_lr_on_plateau", eval_strategy="epoch"
    )
    assert (args.metric_for_best_model, args.greater_is_better) == ("loss", False)
