"""ZeRO-3 models partitioned while ``from_pretrained`` builds them (``deepspeed.zero.Init``).

With a ZeRO-3 config, a model should never exist whole on every process: transformers'
``from_pretrained`` builds it inside ``deepspeed.zero.Init`` (each process keeps only its
partition of every weight) and loads the checkpoint into the partitions. It does so when
a DeepSpeed config is registered with it (``transformers.integrations.deepspeed``, a
module-level weak reference that ``is_deepspeed_zero3_enabled()`` and
``deepspeed_config()`` read). The reference registers it while building its
``TrainingArguments``; trainer-args cannot (it never imports torch), so it calls the
arguments hooks, and :func:`register_zero3_init` is trainer-dist's.

What the hook does, when the arguments ask for ZeRO-3 (``deepspeed=`` with stage 3, or
``accelerate launch`` with DeepSpeed at stage 3 and ``zero3_init_flag`` not false) and
transformers is installed:

1. fills the config's ``"auto"`` entries that the arguments decide (batch sizes,
   clipping, optimizer values, precision); those that need the model or the run's length
   stay ``"auto"``, which DeepSpeed's ``zero.Init`` ignores;
2. joins the launcher's processes into the process group (gloo on the CPU) and hands it
   to DeepSpeed's communication layer, as the reference's arguments do: ``zero.Init``
   reads the world size from it to check the batch sizes (before it would start a group
   itself, it would find a world of one), and partitions over it;
3. registers the config with transformers and keeps the registered object on the
   arguments (``args.hf_deepspeed_config``), so the registration lives as long as they do.

Arguments that ask for DeepSpeed without ZeRO-3 init withdraw an earlier registration,
as building new arguments replaces the reference's.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

from trainer_dist._connector import (
    deepspeed_argument_values,
    requested_deepspeed_config,
    start_group_for,
    uses_cpu,
)
from trainer_dist._deepspeed_config import DeepSpeedConfig

logger = logging.getLogger(__name__)

ZERO3_INIT_VARIABLE = "ACCELERATE_DEEPSPEED_ZERO3_INIT"
"""What ``accelerate launch`` sets from ``zero3_init_flag`` (absent when not configured)."""

_TRANSFORMERS_DEEPSPEED = "transformers.integrations.deepspeed"


def wants_zero3_init(
    config: DeepSpeedConfig, *, from_accelerate: bool, environ: Mapping[str, str]
) -> bool:
    """Whether models should be partitioned while they are built, for ``config``.

    Only ZeRO-3 partitions parameters. With the ``deepspeed`` argument that is enough
    (the reference registers every such config). With a config ``accelerate launch``
    announced, its ``zero3_init_flag`` (:data:`ZERO3_INIT_VARIABLE`) decides, and when
    it is absent ZeRO-3 means yes, as accelerate's ``DeepSpeedPlugin`` defaults it.
    """
    if config.zero_stage != 3:
        return False
    if not from_accelerate:
        return True
    raw = environ.get(ZERO3_INIT_VARIABLE, "").strip().lower()
    if raw in ("", "none"):
        return True
    if raw in ("1", "true", "t", "yes", "y", "on"):
        return True
    if raw in ("0", "false", "f", "no", "n", "off"):
        return False
    raise ValueError(
        f"{ZERO3_INIT_VARIABLE}={environ[ZERO3_INIT_VARIABLE]!r} is not a boolean. accelerate "
        f"launch sets it from zero3_init_flag: write true or false in the accelerate config."
    )


def zero3_init_config(args: Any, environ: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """The config to register for ``zero.Init``, or ``None`` when the run needs none.

    The config is the one the runtime will train with (``args.deepspeed``, else the one
    ``accelerate launch`` announced), with the entries the arguments decide filled in;
    the model-dependent ones stay ``"auto"``. Imports neither deepspeed nor transformers.

    Raises:
        DeepSpeedConfigMismatchError: a value written out in the config contradicts the
            arguments (the same check the runtime makes, made before any model exists).
    """
    env = os.environ if environ is None else environ
    config = requested_deepspeed_config(args, env)
    if config is None:
        return None
    from_accelerate = not getattr(args, "deepspeed", None)
    resolved = config.resolve_arguments(deepspeed_argument_values(args, env))  # fills "auto" stage
    if not wants_zero3_init(resolved, from_accelerate=from_accelerate, environ=env):
        return None
    return resolved.to_dict()


def register_zero3_init(args: Any) -> Any | None:
    """The arguments hook: register ``args``' ZeRO-3 config with transformers.

    Returns the registered ``transformers.integrations.HfDeepSpeedConfig`` (also stored as
    ``args.hf_deepspeed_config``), or ``None`` when nothing was registered: not ZeRO-3,
    ``zero3_init_flag`` false, or transformers not installed (then no ``from_pretrained``
    can use it). Starts the process group when it registers (see the module docstring).

    Raises:
        DeepSpeedConfigMismatchError: the config contradicts the arguments.
        trainer_core.MissingExtraError: deepspeed is not installed.
        ValueError: ``use_cpu`` on a GPU machine, or a setting DeepSpeed cannot run here.
        RuntimeError: the launcher's processes did not form one group.
    """
    config = zero3_init_config(args)
    if config is None:
        _withdraw_registration()
        return None
    if importlib.util.find_spec("transformers") is None:
        logger.info("ZeRO-3 without transformers installed: nothing to register for zero.Init.")
        return None
    start_deepspeed_group(args, config)
    from transformers.integrations.deepspeed import HfDeepSpeedConfig

    registered = HfDeepSpeedConfig(config)  # registers itself (a weak reference)
    args.hf_deepspeed_config = registered  # keeps it alive as long as the arguments
    logger.info("ZeRO-3: models built from now on are partitioned as they load (zero.Init).")
    return registered


def start_deepspeed_group(args: Any, config: dict[str, Any]) -> None:
    """Join the launcher's processes as the runtime will (same backend and timeout), with
    the CPU adjustments the engine will make to ``config`` (in place)."""
    from trainer_dist._deepspeed import _drop_nvme_offload
    from trainer_dist._deepspeed_process import prepare_deepspeed_process

    if prepare_deepspeed_process(DeepSpeedConfig(config), use_cpu=uses_cpu(args)):
        _drop_nvme_offload(config)  # as the engine will: no compiled I/O kernels here
    start_group_for(args)
    import deepspeed
    import torch.distributed as dist

    # DeepSpeed's own communication layer must know the group too: zero.Init reads the
    # world size through it to check the batch sizes before it would start one itself.
    deepspeed.init_distributed(dist_backend=dist.get_backend())


def _withdraw_registration() -> None:
    """Forget a config registered by earlier arguments (only if transformers' DeepSpeed
    module was loaded: otherwise nothing was ever registered)."""
    module = sys.modules.get(_TRANSFORMERS_DEEPSPEED)
    if module is not None:
        module.unset_hf_deepspeed_config()
