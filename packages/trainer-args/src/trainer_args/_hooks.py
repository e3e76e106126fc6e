"""Hooks other packages run on finished arguments, found through entry points.

Some settings must act before the model exists, at the moment the arguments are built:
with a ZeRO-3 DeepSpeed config, ``from_pretrained`` must already see the config to
partition the model while it loads it (``deepspeed.zero.Init``), as it does under the
reference, whose ``TrainingArguments`` registers the config with transformers. That work
needs torch, DeepSpeed and transformers, which this package never imports, so it lives in
the runtime package (trainer-dist), registered under
:data:`trainer_core.ARGUMENTS_HOOKS_GROUP`; this module only calls what is registered.
trainer-dist also checks any DeepSpeed config against the arguments there, so that a
contradiction is refused where the arguments are built.

The hooks run only when DeepSpeed is asked for (``deepspeed=`` or ``accelerate launch``
with DeepSpeed): every other run pays nothing, not even the entry-point scan.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

ARGUMENTS_HOOKS_GROUP = "trainer.arguments_hooks"
"""The entry-point group read (``trainer_core.ARGUMENTS_HOOKS_GROUP``, spelled out so that
``import trainer_args`` does not load the plugin loader and ``importlib.metadata``)."""


def wants_deepspeed(args: Any, environ: Mapping[str, str] | None = None) -> bool:
    """Whether these arguments train with DeepSpeed: ``deepspeed`` is set, or
    ``accelerate launch`` announced DeepSpeed (``ACCELERATE_USE_DEEPSPEED=true``)."""
    env = os.environ if environ is None else environ
    if getattr(args, "deepspeed", None):
        return True
    return env.get("ACCELERATE_USE_DEEPSPEED", "false").strip().lower() == "true"


def run_argument_hooks(args: Any, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Call every installed arguments hook with ``args`` when DeepSpeed is asked for.

    Returns each hook's result by name (empty when nothing ran). A hook that cannot be
    loaded raises :class:`trainer_core.PluginHookError`; an error a hook raises about the
    arguments (a DeepSpeed config contradicting them) propagates unchanged, so that a
    bad configuration fails where the arguments are built, as in the reference.
    """
    if not wants_deepspeed(args, environ):
        return {}
    from trainer_core import run_hooks

    return run_hooks(ARGUMENTS_HOOKS_GROUP, args)
