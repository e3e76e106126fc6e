"""The names of ``transformers.training_args_seq2seq``, at the same path under ``trainer``."""

from __future__ import annotations

from trainer_args import Seq2SeqTrainingArguments

__all__ = ["Seq2SeqTrainingArguments"]
