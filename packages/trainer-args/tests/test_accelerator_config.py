"""``accelerator_config`` is kept as an ``AcceleratorConfig``, as transformers keeps it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer_args import AcceleratorConfig, HfArgumentParser, TrainingArguments, syncs_each_batch


def test_every_option_reads_as_an_attribute_with_its_default() -> None:
    config = TrainingArguments("out").accelerator_config
    assert isinstance(config, AcceleratorConfig)
    assert (config.split_batches, config.dispatch_batches, config.even_batches) == (
        False,
        None,
        True,
    )
    assert config.use_seedable_sampler is True and config.non_blocking is False
    assert config.gradient_accumulation_kwargs is None and config.use_configured_state is False


@pytest.mark.parametrize(
    "given",
    [
        {"split_batches": True, "gradient_accumulation_kwargs": {"sync_each_batch": True}},
        '{"split_batches": true, "gradient_accumulation_kwargs": {"sync_each_batch": true}}',
        AcceleratorConfig(
            split_batches=True, gradient_accumulation_kwargs={"sync_each_batch": True}
        ),
    ],
    ids=["dict", "json-text", "object"],
)
def test_a_dict_text_or_object_becomes_the_same_config(given: object) -> None:
    args = TrainingArguments("out", accelerator_config=given)
    assert args.accelerator_config.split_batches is True
    assert args.accelerator_config["split_batches"] is True  # read as the dict it was
    assert args.accelerator_config.get("even_batches") is True
    assert args.accelerator_config.get("no_such_option", "fallback") == "fallback"
    assert syncs_each_batch(args)
    assert args.accelerator_config is not given  # an object passed in is not shared


def test_a_json_file_and_its_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "accelerate.json"
    path.write_text(json.dumps({"even_batches": False}))
    assert AcceleratorConfig.from_json_file(path) == AcceleratorConfig(even_batches=False)
    assert TrainingArguments("out", accelerator_config=str(path)).accelerator_config == (
        AcceleratorConfig(even_batches=False)
    )
    path.write_text(json.dumps({"even_batch": False}))
    with pytest.raises(ValueError, match=r"unknown keys \['even_batch'\]"):
        AcceleratorConfig.from_json_file(path)
    with pytest.raises(ValueError, match="even_batch"):
        TrainingArguments("out", accelerator_config=str(path))


def test_to_dict_copies_and_pop_resets_to_the_default() -> None:
    config = AcceleratorConfig(gradient_accumulation_kwargs={"num_steps": 2}, even_batches=False)
    options = config.to_dict()
    options["gradient_accumulation_kwargs"]["num_steps"] = 3
    assert config.gradient_accumulation_kwargs == {"num_steps": 2}
    assert config.pop("gradient_accumulation_kwargs") == {"num_steps": 2}
    assert config.gradient_accumulation_kwargs is None
    assert config.pop("no_such_option", "fallback") == "fallback"
    with pytest.raises(KeyError):
        config["no_such_option"]


def test_a_deprecated_option_beside_an_object_takes_only_its_own_place() -> None:
    """The object's other options are defaults it carries, not a conflicting choice."""
    with pytest.warns(FutureWarning, match="split_batches is deprecated"):
        args = TrainingArguments(
            "out", accelerator_config=AcceleratorConfig(even_batches=False), split_batches=True
        )
    assert args.accelerator_config == AcceleratorConfig(split_batches=True, even_batches=False)
    with (
        pytest.raises(ValueError, match="Give only accelerator_config"),
        pytest.warns(FutureWarning),
    ):
        TrainingArguments(
            "out", accelerator_config=AcceleratorConfig(split_batches=True), split_batches=False
        )


def test_serialized_arguments_rebuild_the_same_config(tmp_path: Path) -> None:
    args = TrainingArguments(str(tmp_path), accelerator_config={"non_blocking": True})
    stored = json.loads(args.to_json_string())["accelerator_config"]
    assert stored == AcceleratorConfig(non_blocking=True).to_dict()
    assert TrainingArguments(**args.to_dict()).accelerator_config == args.accelerator_config
    (parsed,) = HfArgumentParser(TrainingArguments).parse_args_into_dataclasses(
        ["--output_dir", str(tmp_path), "--accelerator_config", json.dumps(stored)]
    )
    assert parsed.accelerator_config == args.accelerator_config


def test_a_dict_assigned_after_construction_is_still_read() -> None:
    args = TrainingArguments("out")
    args.accelerator_config = {"gradient_accumulation_kwargs": {"sync_each_batch": True}}
    assert syncs_each_batch(args)


@pytest.mark.slow
def test_transformers_own_config_object_is_accepted() -> None:
    transformers = pytest.importorskip("transformers")
    theirs = transformers.trainer_pt_utils.AcceleratorConfig(split_batches=True)
    config = TrainingArguments("out", accelerator_config=theirs).accelerator_config
    assert config == AcceleratorConfig(split_batches=True)
    assert config.to_dict() == theirs.to_dict()  # the same options, the same defaults


def test_it_reads_as_the_mapping_the_arguments_kept_before() -> None:
    config = TrainingArguments("out", accelerator_config={"split_batches": True}).accelerator_config
    assert "split_batches" in config and "no_such_option" not in config
    assert dict(config) == {**config} == config.to_dict()
    assert dict(config)["split_batches"] is True and len(config) == 7
    assert config != {"split_batches": True}  # equal only to a config, as transformers' is


@pytest.mark.parametrize(("old", "value"), [("split_batches", True), ("dispatch_batches", False)])
def test_arguments_rebuilt_from_to_dict_take_a_deprecated_option(old: str, value: bool) -> None:
    """to_dict() spells out every option's default; a deprecated option given beside
    them replaces a default, and contradicts only a value someone chose."""
    stored = TrainingArguments("out").to_dict()
    with pytest.warns(FutureWarning, match=old):
        rebuilt = TrainingArguments(**{**stored, old: value})
    assert rebuilt.accelerator_config[old] is value
