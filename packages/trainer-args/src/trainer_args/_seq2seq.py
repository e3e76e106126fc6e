"""Seq2SeqTrainingArguments: TrainingArguments plus the generation settings of evaluation."""

# typing.Union/Optional on purpose, as in _training_args (HfArgumentParser reads them).
# ruff: noqa: UP007, UP045

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from trainer_args._help import help_for as _h
from trainer_args._messages import invalid, wrong_type
from trainer_args._pipeline import finalize
from trainer_args._training_args import TrainingArguments
from trainer_args._validation import Bound, check_bounds

SEQ2SEQ_BOUNDS = {
    "generation_max_length": Bound(1, integer=True, optional=True),
    "generation_num_beams": Bound(1, integer=True, optional=True),
}


def check_generation(args: Any) -> None:
    """Generation lengths and beam counts are positive; the config is a path, dict or object."""
    check_bounds(args, SEQ2SEQ_BOUNDS)
    config = args.generation_config
    if isinstance(config, (int, float, bool, list, tuple)):
        raise wrong_type(
            "generation_config",
            config,
            "a model id or folder (str), a dict, or a GenerationConfig-like object",
        )
    if isinstance(config, os.PathLike):
        args.generation_config = config = os.fspath(config)
    if (
        isinstance(config, str)
        and _names_a_local_path(config)
        and not os.path.exists(os.path.expanduser(config))
    ):
        raise invalid(
            "generation_config",
            config,
            "an existing generation_config.json file or a folder holding one",
            "Check the path (it does not exist here), or pass a model id such as "
            "'google-t5/t5-small', a dict of generation settings, or a GenerationConfig.",
        )


def _names_a_local_path(value: str) -> bool:
    """Whether ``value`` can only be a path on this machine, not a Hub model id
    (``"name"`` or ``"namespace/name"``): absolute, relative to ``.``/``~``, or a file."""
    return (
        os.path.isabs(value)
        or value.startswith((".", "~"))
        or value.endswith(".json")
        or value.count("/") > 1
    )


@dataclass(repr=False)
class Seq2SeqTrainingArguments(TrainingArguments):
    """TrainingArguments for sequence-to-sequence models evaluated with ``generate``.

    ``generation_config`` may be a model id or folder to load a generation config from,
    a dict of generation settings, or an object with a ``to_dict()`` method (such as
    transformers' ``GenerationConfig``); :meth:`to_dict` turns the object into a dict.
    """

    sortish_sampler: bool = field(default=False, metadata=_h("sortish_sampler"))
    predict_with_generate: bool = field(default=False, metadata=_h("predict_with_generate"))
    generation_max_length: Optional[int] = field(default=None, metadata=_h("generation_max_length"))
    generation_num_beams: Optional[int] = field(default=None, metadata=_h("generation_num_beams"))
    # None second: transformers' HfArgumentParser then reads the option as a str.
    generation_config: Union[str, None, os.PathLike, dict] = field(  # noqa: RUF036
        default=None, metadata=_h("generation_config")
    )

    def __post_init__(self) -> None:
        finalize(self, extra_rules=(check_generation,))
