"""Joining the launcher's processes when a script asks its arguments to coordinate them.

Under the reference, building ``TrainingArguments`` in a launched process already forms
the process group, so a script may coordinate its processes before any ``Trainer``
exists: ``with args.main_process_first(): dataset.map(...)`` (the replicas wait for the
main process's cache), or ``torch.distributed.barrier()`` after reading ``args.device``.
trainer-args never imports torch, so it asks through the process-group hooks
(:data:`trainer_core.PROCESS_GROUP_HOOKS_GROUP`) when such a call needs the group, and
this is trainer-dist's hook: it starts the group the runtime would start, with the same
backend and timeout, which the runtime then finds and keeps.
"""

from __future__ import annotations

import os
from typing import Any

from trainer_dist._connector import requested_deepspeed_config, start_group_for
from trainer_dist._xla_settings import wants_xla
from trainer_dist._zero_init import start_deepspeed_group


def join_launched_group(args: Any) -> None:
    """The process-group hook: join the launcher's processes as the runtime for ``args``
    will (a DeepSpeed run prepares DeepSpeed first, as its runtime does).

    XLA runs are left alone: torch_xla starts its own kind of group when the runtime is
    built.

    Raises:
        ValueError: ``ddp_backend`` cannot run here (e.g. ``nccl`` without CUDA).
        RuntimeError: the launcher's processes did not form one group.
    """
    if wants_xla(getattr(args, "fsdp_config", None) or {}):
        return
    config = requested_deepspeed_config(args, os.environ)
    if config is not None:
        start_deepspeed_group(args, config.to_dict())
        return
    start_group_for(args)
