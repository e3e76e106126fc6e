"""Where this process stands in a run: rank, device, logging role, batch sizes.

Rank and world size come from a running process group when the runtime has started one
(torch already imported), otherwise from the launcher's environment variables, so no
torch is needed to ask "am I the main process?". ``device`` and ``n_gpu`` import torch on
first use. Only ``device``, ``distributed_state`` and ``main_process_first`` may start a
process group, through the runtime package's hook, and only in a launched process of
several.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from trainer_args._device import DevicePlan, plan_device, require_torch, torch_if_installed
from trainer_args._enums import TRAINER_LOG_LEVELS, ParallelMode
from trainer_args._launch_env import read_launch_env

if TYPE_CHECKING:
    from datetime import timedelta

PROCESS_GROUP_HOOKS_GROUP = "trainer.process_group_hooks"
"""``trainer_core.PROCESS_GROUP_HOOKS_GROUP``, spelled out so that ``import trainer_args``
does not load the plugin loader."""

DEFAULT_PROCESS_GROUP_TIMEOUT_S = 1800
"""torch's default collective timeout (``default_pg_timeout``), used when ``ddp_timeout``
is None."""

TRAINER_LOGGER = "trainer"
"""Name of the package logger whose level ``log_level="passive"`` leaves in place."""


def running_group() -> Any | None:
    """``torch.distributed`` when its default process group is initialised, else ``None``.

    Never imports torch: if nobody imported it, no process group can exist.
    """
    torch = sys.modules.get("torch")
    dist = None if torch is None else getattr(torch, "distributed", None)
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return None
    return dist


class ProcessMixin:
    """Properties and helpers of TrainingArguments that depend on the running process."""

    use_cpu: bool
    local_rank: int
    log_on_each_node: bool
    save_on_each_node: bool
    per_device_train_batch_size: int
    per_device_eval_batch_size: int
    fsdp: list[Any]
    deepspeed: Any
    log_level: str
    log_level_replica: str
    ddp_timeout: int | None

    # --- ranks (environment only) --------------------------------------------------------

    @property
    def world_size(self) -> int:
        """Number of processes in the run (1 when alone)."""
        group = running_group()
        return group.get_world_size() if group else read_launch_env().world_size

    @property
    def process_index(self) -> int:
        """Index of this process among all processes (0 when alone)."""
        group = running_group()
        return group.get_rank() if group else read_launch_env().rank

    @property
    def local_process_index(self) -> int:
        """Index of this process on its machine.

        The launcher's local rank, else the ``local_rank`` argument, else, inside a
        process group started without launcher variables (``torch.multiprocessing``
        on one machine), the global rank; 0 when alone.
        """
        launched = read_launch_env()
        if launched.local_rank != -1:
            return launched.local_rank
        if self.local_rank != -1:
            return self.local_rank
        group = running_group()
        return group.get_rank() if group else 0

    @property
    def should_log(self) -> bool:
        """Whether this process logs: the main process of each node, or of node 0 only."""
        if self.log_on_each_node:
            return self.local_process_index == 0
        return self.process_index == 0

    @property
    def should_save(self) -> bool:
        """Whether this process writes checkpoints (each node's main one, or node 0's)."""
        if self.save_on_each_node:
            return self.local_process_index == 0
        return self.process_index == 0

    @property
    def _is_launched(self) -> bool:
        return self.local_rank != -1 or self.world_size > 1

    # --- devices (torch on demand) ------------------------------------------------------

    def _device_plan(self, torch: Any) -> DevicePlan:
        return plan_device(
            torch,
            use_cpu=self.use_cpu,
            distributed=self._is_launched,
            local_rank=self.local_process_index,
        )

    @property
    def device(self) -> Any:
        """The ``torch.device`` this process uses: cpu if ``use_cpu``, else cuda, mps, cpu.

        Raises:
            ImportError: torch is not installed.
        """
        torch = require_torch("TrainingArguments.device")
        self._join_launched_group()
        return torch.device(self._device_plan(torch).as_string())

    @property
    def distributed_state(self) -> Any:
        """accelerate's ``PartialState`` for this process (``distributed_type``,
        ``process_index``, ``num_processes``, ``device``, ...), as the reference's
        arguments expose it. The process group is joined first as the runtime joins it
        (see :meth:`_join_launched_group`), so that the state describes that group
        rather than starting one of its own.

        Raises:
            ImportError: accelerate is not installed (it comes with trainer-dist).
        """
        self._join_launched_group()
        try:
            from accelerate import PartialState
        except ImportError as error:
            raise ImportError(
                "TrainingArguments.distributed_state needs accelerate, which comes with "
                "the runtime: pip install trainer-dist (or trainer)."
            ) from error
        return PartialState(cpu=bool(self.use_cpu))

    def _join_launched_group(self) -> Any | None:
        """``torch.distributed`` with its group running, or ``None`` when there is none.

        In a process a launcher started among several, a group nobody started yet is
        started first by the installed process-group hooks (trainer-dist's starts the
        one its runtime would), as the reference's arguments form it when set up; so a
        script may coordinate its processes before building a ``Trainer``. Without a
        hook installed (trainer-args alone) there is still no group.
        """
        group = running_group()
        if group is not None or read_launch_env().world_size < 2:
            return group
        from trainer_core import run_hooks

        run_hooks(PROCESS_GROUP_HOOKS_GROUP, self)
        return running_group()

    @property
    def n_gpu(self) -> int:
        """Accelerators this process drives: 0 on CPU or without torch, 1 per launched
        process, every visible GPU when one process drives several (DataParallel)."""
        if self.use_cpu:
            return 0
        torch = torch_if_installed()
        return 0 if torch is None else self._device_plan(torch).n_gpu

    @property
    def parallel_mode(self) -> ParallelMode:
        """How this process takes part in training (see :class:`ParallelMode`)."""
        import os

        if os.environ.get("PJRT_DEVICE", "").upper() == "TPU":
            return ParallelMode.TPU
        if self._is_launched:
            return ParallelMode.DISTRIBUTED
        if self.n_gpu > 1:
            return ParallelMode.NOT_DISTRIBUTED
        return ParallelMode.NOT_PARALLEL

    @property
    def train_batch_size(self) -> int:
        """Batch size of one training step of this process: per device x max(1, n_gpu)."""
        return self.per_device_train_batch_size * max(1, self.n_gpu)

    @property
    def eval_batch_size(self) -> int:
        """Batch size of one evaluation step of this process: per device x max(1, n_gpu)."""
        return self.per_device_eval_batch_size * max(1, self.n_gpu)

    @property
    def ddp_timeout_delta(self) -> timedelta:
        """``ddp_timeout`` as the ``datetime.timedelta`` that
        ``torch.distributed.init_process_group`` takes; ``None`` gives torch's own default,
        30 minutes (transformers fails on it). ``datetime`` is imported here, not with the
        package."""
        from datetime import timedelta

        seconds = DEFAULT_PROCESS_GROUP_TIMEOUT_S if self.ddp_timeout is None else self.ddp_timeout
        return timedelta(seconds=seconds)

    @property
    def place_model_on_device(self) -> bool:
        """Whether the loop should move the model to ``device`` itself.

        False when FSDP or DeepSpeed is configured, in the arguments or by ``accelerate
        launch`` (``ACCELERATE_USE_FSDP`` / ``ACCELERATE_USE_DEEPSPEED``): they place (and
        shard) the model, which may already be partitioned (ZeRO-3 ``zero.Init``).
        """
        launched_sharding = any(
            os.environ.get(name, "").strip().lower() == "true"
            for name in ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED")
        )
        return not (self.fsdp or self.deepspeed or launched_sharding)

    # --- logging ------------------------------------------------------------------------

    def get_process_log_level(self) -> int:
        """The ``logging`` level this process should use.

        The main process (see :attr:`should_log`) uses ``log_level``, the others
        ``log_level_replica``; ``"passive"`` means the level the application already
        chose: transformers' verbosity when transformers is imported (as the reference
        answers: example scripts call ``transformers.utils.logging.set_verbosity_info()``
        and then set every logger to this level), else the current effective level of
        the ``trainer`` logger (``logging.WARNING`` unless changed).
        """
        name = self.log_level if self.should_log else self.log_level_replica
        level = TRAINER_LOG_LEVELS[name]
        if level == -1:
            import logging

            hf_logging = sys.modules.get("transformers.utils.logging")
            if hf_logging is not None:  # never imported here: only read when loaded
                return int(hf_logging.get_verbosity())
            return logging.getLogger(TRAINER_LOGGER).getEffectiveLevel()
        return level

    # --- coordination -------------------------------------------------------------------

    @contextlib.contextmanager
    def main_process_first(self, local: bool = True, desc: str = "work") -> Iterator[None]:
        """Run the block on the main process first; replicas wait, then run it too.

        Typical use: ``datasets.map`` on the main process writes a cache the replicas
        then read. In a launched process of several, the group is started first if
        nothing started it yet (see :meth:`_join_launched_group`); alone, the block
        simply runs.

        Args:
            local: main = rank 0 of each node (node-local filesystems); ``False``: rank 0
                of the whole run only (shared filesystem).
            desc: what the block does, for debug logs.
        """
        dist = self._join_launched_group()
        if dist is None or dist.get_world_size() < 2:
            yield
            return
        is_main = (self.local_process_index if local else dist.get_rank()) == 0
        import logging

        log = logging.getLogger(TRAINER_LOGGER)
        if not is_main:
            log.debug("%s: waiting for the main process to run %s", desc, desc)
            dist.barrier()
        try:
            yield
        finally:
            if is_main:
                log.debug("%s: main process done, releasing the replicas", desc)
                dist.barrier()
