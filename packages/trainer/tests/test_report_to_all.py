"""``report_to="all"`` picks the reporters whose library is installed, and only those.

The meta-package installs trainer-reporting without its extras, so a plain install has
the reporters' entry points but none of their libraries; "all" must then start no
reporter instead of failing on the first missing library. In the full workspace every
library is installed and "all" must pick every reporter.
"""

from __future__ import annotations

import importlib.util

import torch

from trainer import Trainer, TrainingArguments

REPORTER_MODULES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def test_all_means_the_reporters_whose_library_is_installed(tmp_path) -> None:
    args = TrainingArguments(str(tmp_path), report_to="all", use_cpu=True)
    expected = sorted(name for name, module in REPORTER_MODULES.items() if _installed(module))
    assert [name for name in args.report_to if name in REPORTER_MODULES] == expected
    trainer = Trainer(model=torch.nn.Linear(2, 2), args=args)
    started = {getattr(callback, "name", None) for callback in trainer.callback_handler.callbacks}
    assert started & set(REPORTER_MODULES) == set(expected)
