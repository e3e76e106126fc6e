"""to_dict, to_json_string, to_sanitized_dict and repr: plain data, never a token."""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path
from typing import Any

import pytest

from trainer_args import Seq2SeqTrainingArguments, TrainingArguments

SECRET = "hf_very_secret_value_123"


def _all_views(args: TrainingArguments) -> list[str]:
    return [
        str(args.to_dict()),
        args.to_json_string(),
        str(args.to_sanitized_dict()),
        repr(args),
        str(args),
        f"{args}",
    ]


def test_no_view_contains_the_hub_token() -> None:
    args = TrainingArguments("out", hub_token=SECRET, push_to_hub=True)
    for view in _all_views(args):
        assert SECRET not in view
    assert args.to_dict()["hub_token"] == "<HUB_TOKEN>"
    assert args.hub_token == SECRET  # masking never changes the object


def test_tokens_given_through_setters_and_deprecated_spelling_are_masked() -> None:
    args = TrainingArguments("out").set_push_to_hub("me/model", token=SECRET)
    for view in _all_views(args):
        assert SECRET not in view
    with pytest.warns(FutureWarning):
        old = TrainingArguments("out", push_to_hub_token=SECRET)
    for view in _all_views(old):
        assert SECRET not in view


def test_unset_tokens_stay_none() -> None:
    data = TrainingArguments("out").to_dict()
    assert data["hub_token"] is None and data["push_to_hub_token"] is None


def test_to_dict_holds_plain_values_only() -> None:
    args = TrainingArguments(
        "out", eval_strategy="steps", fsdp="full_shard auto_wrap", debug="underflow_overflow"
    )
    data = args.to_dict()
    assert data["eval_strategy"] == "steps" and type(data["eval_strategy"]) is str
    assert data["optim"] == "adamw_torch" and type(data["optim"]) is str
    assert data["fsdp"] == ["full_shard", "auto_wrap"]
    assert all(type(item) is str for item in data["fsdp"] + data["debug"])
    assert json.loads(args.to_json_string()) == data


def test_to_dict_is_a_copy() -> None:
    args = TrainingArguments("out", lr_scheduler_kwargs={"power": 2.0})
    args.to_dict()["lr_scheduler_kwargs"]["power"] = 9.0
    assert args.lr_scheduler_kwargs == {"power": 2.0}


def test_to_sanitized_dict_for_tensorboard_hparams() -> None:
    args = TrainingArguments("out", per_device_train_batch_size=4, use_cpu=True)
    data = args.to_sanitized_dict()
    assert all(isinstance(value, (bool, int, float, str)) for value in data.values())
    assert data["train_batch_size"] == 4 and data["eval_batch_size"] == 8
    assert data["report_to"] == "[]" and data["eval_delay"] == 0
    assert data["fsdp_config"].startswith("{")


def test_repr_rebuilds_an_equal_object() -> None:
    args = TrainingArguments("out", eval_strategy="epoch", save_strategy="epoch")
    namespace: dict[str, Any] = {"TrainingArguments": TrainingArguments}
    assert eval(repr(args), namespace) == args


def test_copy_and_pickle_keep_equality_and_alias_mirroring() -> None:
    args = TrainingArguments("out", eval_strategy="epoch")
    for clone in (copy.copy(args), copy.deepcopy(args), pickle.loads(pickle.dumps(args))):
        assert clone == args
        clone.eval_strategy = "steps"
        assert clone.evaluation_strategy == "steps"
    assert args.evaluation_strategy == "epoch"


class _GenerationConfigLike:
    """What transformers' GenerationConfig offers to serialisation: a to_dict() method."""

    def __init__(self, **values: Any) -> None:
        self.values = values

    def to_dict(self) -> dict[str, Any]:
        return dict(self.values)


def test_seq2seq_to_dict_turns_the_generation_config_into_a_dict() -> None:
    config = _GenerationConfigLike(num_beams=4, max_length=32)
    args = Seq2SeqTrainingArguments("out", generation_config=config)
    assert args.generation_config is config
    assert args.to_dict()["generation_config"] == {"num_beams": 4, "max_length": 32}
    assert json.loads(args.to_json_string())["generation_config"]["num_beams"] == 4


@pytest.mark.slow
def test_seq2seq_with_transformers_generation_config() -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.GenerationConfig(num_beams=3)
    args = Seq2SeqTrainingArguments("out", generation_config=config)
    assert args.to_dict()["generation_config"]["num_beams"] == 3


def test_seq2seq_generation_config_path_is_a_string(tmp_path: Path) -> None:
    args = Seq2SeqTrainingArguments("out", generation_config=tmp_path)
    assert args.generation_config == str(tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"generation_max_length": 0}, "generation_max_length"),
        ({"generation_num_beams": 0}, "generation_num_beams"),
    ],
)
def test_seq2seq_rules(kwargs: dict[str, Any], argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        Seq2SeqTrainingArguments("out", **kwargs)
    with pytest.raises(TypeError, match="generation_config"):
        Seq2SeqTrainingArguments("out", generation_config=5)
