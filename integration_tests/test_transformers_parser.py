"""transformers' own ``HfArgumentParser`` reads our argument dataclasses.

Scripts that keep ``from transformers import HfArgumentParser`` and swap only
``TrainingArguments`` hand our dataclass to transformers' parser, which passes each
field's metadata to ``argparse`` and inspects its annotation. Both must be in a form it
accepts, and it must produce the same arguments our parser does.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from transformers import HfArgumentParser as TransformersParser

from trainer import HfArgumentParser, Seq2SeqTrainingArguments, TrainingArguments


@dataclasses.dataclass
class ModelArguments:
    model_name_or_path: str = "tiny"
    block_size: int = 128


def _argv(output_dir: Path) -> list[str]:
    return [
        "--output_dir", str(output_dir), "--model_name_or_path", "gpt2", "--block_size", "64",
        "--do_train", "--learning_rate", "3e-4", "--eval_strategy", "steps", "--eval_steps", "5",
        "--lr_scheduler_type", "cosine", "--report_to", "none", "--fsdp", "full_shard auto_wrap",
        "--optim_target_modules", "q_proj", "--label_names", "labels", "start", "--bf16",
        "--load_best_model_at_end", "--metric_for_best_model", "loss", "--save_steps", "5",
    ]  # fmt: skip


@pytest.mark.parametrize("arguments", [TrainingArguments, Seq2SeqTrainingArguments])
def test_transformers_parser_gives_what_ours_gives(arguments: type, tmp_path: Path) -> None:
    argv = _argv(tmp_path)
    theirs = TransformersParser((ModelArguments, arguments)).parse_args_into_dataclasses(argv)
    ours = HfArgumentParser((ModelArguments, arguments)).parse_args_into_dataclasses(argv)
    assert theirs[0] == ours[0]
    assert type(theirs[1]) is arguments
    assert theirs[1].to_dict() == ours[1].to_dict()
    assert [option.value for option in theirs[1].fsdp] == ["full_shard", "auto_wrap"]


def test_the_fsdp_option_alone_turns_fsdp_on_in_both_parsers(tmp_path: Path) -> None:
    argv = ["--output_dir", str(tmp_path), "--fsdp"]
    (theirs,) = TransformersParser(TrainingArguments).parse_args_into_dataclasses(argv)
    (ours,) = HfArgumentParser(TrainingArguments).parse_args_into_dataclasses(argv)
    assert theirs.fsdp == ours.fsdp and [option.value for option in ours.fsdp] == [
        "full_shard",
        "auto_wrap",
    ]


@pytest.mark.parametrize(
    ("arguments", "option", "value", "field", "expected"),
    [
        (TrainingArguments, "--warmup_steps", "0.1", "warmup_steps", 0.1),  # a share
        (TrainingArguments, "--warmup_steps", "5", "warmup_steps", 5),
        (
            Seq2SeqTrainingArguments,
            "--generation_config",
            "t5-small",
            "generation_config",
            "t5-small",
        ),
    ],
)
def test_options_whose_annotations_the_parser_once_misread(
    arguments: type, option: str, value: str, field: str, expected: object, tmp_path: Path
) -> None:
    argv = ["--output_dir", str(tmp_path), "--report_to", "none", option, value]
    for parser in (TransformersParser(arguments), HfArgumentParser(arguments)):
        (parsed,) = parser.parse_args_into_dataclasses(argv)
        assert getattr(parsed, field) == expected


@pytest.mark.parametrize("parser", [TransformersParser, HfArgumentParser])
def test_help_shows_every_argument_and_no_bookkeeping_field(parser: type) -> None:
    """``_resolved_spellings`` is a field (a copy must carry it) but no option to offer."""
    text = parser(TrainingArguments).format_help()
    assert "--per_device_train_batch_size" in text and "--accelerator_config" in text
    assert "_resolved_spellings" not in text and "RESOLVED" not in text
