"""A ``TrainingArguments`` subclass whose annotations only a type checker can resolve
(``from __future__ import annotations`` with an import under ``TYPE_CHECKING``) still
builds, and its bool fields still read words."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from trainer_args import TrainingArguments

if TYPE_CHECKING:
    from collections import OrderedDict


@dataclass
class _ScriptArguments(TrainingArguments):
    layout: Optional[OrderedDict] = field(default=None)  # noqa: UP045  # the spelling under test
    freeze_base: bool = False


def test_unresolvable_annotations_do_not_stop_construction(tmp_path) -> None:
    args = _ScriptArguments(output_dir=str(tmp_path), freeze_base="no", greater_is_better="yes")
    assert args.freeze_base is False
    assert args.greater_is_better is True
