"""Values that used to pass construction and fail (or misbehave) later are normalised or
refused when the arguments are built, naming the argument and the fix."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from trainer_args import TrainingArguments


def _build(**kwargs: Any) -> TrainingArguments:
    return TrainingArguments("out", **kwargs)


# ------------------------------------------------------------------ label_names


def test_a_single_label_name_becomes_a_list_of_that_name() -> None:
    assert _build(label_names="labels").label_names == ["labels"]
    assert _build(label_names=("start", "end")).label_names == ["start", "end"]
    assert _build(label_names=[]).label_names == []
    assert _build().label_names is None


def test_normalised_label_names_survive_a_round_trip() -> None:
    args = _build(label_names="labels")
    assert TrainingArguments(**args.to_dict()).label_names == ["labels"]


@pytest.mark.parametrize("value", [3, ["labels", 3], [None], {"labels": 1}, b"labels"])
def test_label_names_that_are_not_names_are_refused(value: Any) -> None:
    with pytest.raises(TypeError, match=r"label_names=.*e\.g\. label_names=\['labels'\]"):
        _build(label_names=value)


def test_an_empty_label_name_is_refused() -> None:
    with pytest.raises(ValueError, match=r"label_names=\[''\].*non-empty"):
        _build(label_names=[""])


# ------------------------------------------------------------- torch_compile_backend


def test_the_usual_compile_backends_are_accepted_without_importing_torch() -> None:
    probe = (
        "import sys, trainer_args\n"
        "for name in ('inductor', 'eager', 'aot_eager', 'cudagraphs'):\n"
        "    trainer_args.TrainingArguments('out', torch_compile_backend=name)\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "False"


def test_a_misspelt_compile_backend_is_refused_with_the_closest_name() -> None:
    pytest.importorskip("torch")
    with pytest.raises(
        ValueError, match=r"torch_compile_backend='inductr'.*Did you mean 'inductor'"
    ):
        _build(torch_compile_backend="inductr")


def test_the_deprecated_torchdynamo_spelling_is_checked_too() -> None:
    pytest.importorskip("torch")
    with (
        pytest.warns(FutureWarning, match="torchdynamo"),
        pytest.raises(ValueError, match=r"torch_compile_backend='eagr'"),
    ):
        _build(torchdynamo="eagr")


def test_a_backend_torch_lists_is_accepted() -> None:
    torch_dynamo = pytest.importorskip("torch._dynamo")
    name = torch_dynamo.list_backends(exclude_tags=())[0]
    assert _build(torch_compile_backend=name).torch_compile_backend == name


def test_a_compile_backend_that_is_not_a_name_is_refused() -> None:
    with pytest.raises(TypeError, match=r"torch_compile_backend=3 .*a backend name"):
        _build(torch_compile_backend=3)


def test_the_backend_is_not_checked_when_torch_is_missing(monkeypatch) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *rest: None if name == "torch" else real_find_spec(name, *rest),
    )
    assert _build(torch_compile_backend="my_backend").torch_compile_backend == "my_backend"


@pytest.mark.parametrize(
    ("given", "stored"),
    [("false", False), ("True", True), ("no", False), ("all", True), (0, False), (True, True)],
)
def test_token_count_words_from_a_config_file_mean_what_they_say(
    given: object, stored: bool
) -> None:
    args = TrainingArguments(output_dir="out", include_num_input_tokens_seen=given)
    assert args.include_num_input_tokens_seen is stored


def test_token_count_keeps_non_padding_and_refuses_other_words() -> None:
    kept = TrainingArguments(output_dir="out", include_num_input_tokens_seen="non_padding")
    assert kept.include_num_input_tokens_seen == "non_padding"
    with pytest.raises(ValueError, match=r"include_num_input_tokens_seen='bogus'.*'non_padding'"):
        TrainingArguments(output_dir="out", include_num_input_tokens_seen="bogus")
