"""The names of ``transformers.trainer_pt_utils`` we implement, under ``trainer``."""

from __future__ import annotations

from trainer_args import AcceleratorConfig
from trainer_loop import LabelSmoother, LengthGroupedSampler, get_parameter_names

__all__ = ["AcceleratorConfig", "LabelSmoother", "LengthGroupedSampler", "get_parameter_names"]
