"""The names of ``transformers.hf_argparser``, at the same path under ``trainer``."""

from __future__ import annotations

from trainer_args import HfArgumentParser

__all__ = ["HfArgumentParser"]
