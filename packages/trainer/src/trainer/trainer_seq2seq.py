"""The names of ``transformers.trainer_seq2seq``, at the same path under ``trainer``."""

from __future__ import annotations

from trainer_loop import Seq2SeqTrainer

__all__ = ["Seq2SeqTrainer"]
