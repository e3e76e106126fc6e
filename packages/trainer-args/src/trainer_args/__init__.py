"""TrainingArguments, Seq2SeqTrainingArguments and HfArgumentParser, importable without torch."""

from __future__ import annotations

__all__: list[str] = []
