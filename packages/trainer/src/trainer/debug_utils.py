"""The names of ``transformers.debug_utils`` that TrainingArguments uses, under ``trainer``."""

from __future__ import annotations

from trainer_args import DebugOption

__all__ = ["DebugOption"]
