"""The names of ``transformers.training_args``, at the same path under ``trainer``.

Scripts written for the reference import from its module paths as often as from the
package root; swapping ``transformers`` for ``trainer`` in such an import line should be
the whole change. Torch-free, like ``trainer_args``.
"""

from __future__ import annotations

from trainer_args import OptimizerNames, ParallelMode, TrainingArguments

__all__ = ["OptimizerNames", "ParallelMode", "TrainingArguments"]
