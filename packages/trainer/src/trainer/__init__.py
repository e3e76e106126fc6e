"""The documented Trainer API in one import: `from trainer import Trainer, TrainingArguments`."""

from __future__ import annotations

__all__: list[str] = []
