"""The names of ``transformers.trainer_pt_utils`` we implement, under ``trainer``."""

from __future__ import annotations

from trainer_loop import LabelSmoother, LengthGroupedSampler, get_parameter_names

__all__ = ["LabelSmoother", "LengthGroupedSampler", "get_parameter_names"]
