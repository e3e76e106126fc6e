"""The runtime for several processes training one model with DistributedDataParallel.

Processes are started by a launcher (``torchrun``, ``accelerate launch``,
``python -m torch.distributed.launch``); the runtime
joins them into one process group through accelerate's ``PartialState``, which knows
every launcher's environment. Precision, autocast, backward and the optimizer step are
the single-process runtime's; this class adds what several processes need: the DDP
wrapper, data sharding, collectives, barriers and gradient-sync suppression.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from trainer_core import ReduceOp
from trainer_dist._batches import DeviceDataLoader
from trainer_dist._collectives import (
    apply_nested,
    broadcast_object,
    gather_tensor,
    pad_tensor,
    reduce_tensor,
)
from trainer_dist._environment import (
    ProcessPlacement,
    detect_placement,
    launched_world_size,
    placement_in_group,
)
from trainer_dist._models import can_move, compile_model, is_data_parallel, unwrap_model
from trainer_dist._precision import MixedPrecision
from trainer_dist._sharding import (
    DealtDataLoader,
    GatherLimit,
    ShardedDataLoader,
    ShardingOptions,
    can_shard,
)
from trainer_dist._single import _NULL_CONTEXT, SingleProcessRuntime

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DDPOptions:
    """Arguments of ``torch.nn.parallel.DistributedDataParallel`` chosen by the user.

    Attributes:
        find_unused_parameters: ``None`` lets the runtime decide as the reference does:
            ``False`` when the model uses gradient checkpointing, else ``True``.
        bucket_cap_mb: gradient bucket size; ``None`` keeps torch's default (25 MB).
        broadcast_buffers: sync buffers from rank 0 at each forward; ``None`` keeps
            torch's default (``True``).
        static_graph: promise that the graph is the same every step.
    """

    find_unused_parameters: bool | None = None
    bucket_cap_mb: int | None = None
    broadcast_buffers: bool | None = None
    static_graph: bool | None = None

    def wrapper_kwargs(self, model: nn.Module) -> dict[str, Any]:
        """Keyword arguments for ``DistributedDataParallel`` around ``model``."""
        find_unused = self.find_unused_parameters
        if find_unused is None:
            find_unused = not _checkpoints_activations(model)
        kwargs: dict[str, Any] = {"find_unused_parameters": find_unused}
        if self.bucket_cap_mb is not None:
            kwargs["bucket_cap_mb"] = self.bucket_cap_mb
        if self.broadcast_buffers is not None:
            kwargs["broadcast_buffers"] = self.broadcast_buffers
        if self.static_graph:
            kwargs["static_graph"] = True
        return kwargs


def _checkpoints_activations(model: nn.Module) -> bool:
    """Whether ``model`` recomputes activations in backward (gradient checkpointing).

    Asks transformers 5's ``is_activation_checkpointing`` first: its older spelling
    ``is_gradient_checkpointing`` still answers there but warns (FutureWarning) on every
    process; models that only have the old one (older transformers) are asked that.
    """
    flag = getattr(model, "is_activation_checkpointing", None)
    if flag is None:
        flag = getattr(model, "is_gradient_checkpointing", False)
    return bool(flag)


def start_process_group(
    *, cpu: bool, backend: str | None, timeout_seconds: int | None
) -> ProcessPlacement:
    """Join the processes the launcher started into one group; return this one's placement.

    accelerate's ``PartialState`` reads the launcher's environment and starts the group;
    when it does not (a launcher that started a single process), the group is started
    here, so that FSDP also runs under ``torchrun --nproc_per_node 1``.

    Raises:
        ValueError: ``backend`` cannot run here (e.g. ``nccl`` without CUDA).
        RuntimeError: the group that formed is not as large as the launcher announced:
            each process would otherwise train alone on the full data.
    """
    from accelerate import PartialState

    _check_backend(backend, cpu=cpu)
    kwargs: dict[str, Any] = {}
    if backend:
        kwargs["backend"] = backend
    if timeout_seconds is not None:
        kwargs["timeout"] = datetime.timedelta(seconds=timeout_seconds)
    PartialState(cpu=cpu, **kwargs)
    if not dist.is_initialized():
        default = "nccl" if torch.cuda.is_available() and not cpu else "gloo"
        timeout = {"timeout": kwargs["timeout"]} if "timeout" in kwargs else {}
        dist.init_process_group(backend=backend or default, **timeout)
    placement = detect_placement("cpu" if cpu else None)
    announced = launched_world_size()
    if dist.get_world_size() == announced:
        placement = placement_in_group(placement, size=announced, rank=dist.get_rank())
        if placement.device.type == "cuda":
            # NCCL's collectives and FSDP2's device mesh work on the current device; it
            # must be this process's GPU even where the group's ranks corrected
            # accelerate's view of the launch (which set the device from that view).
            torch.cuda.set_device(placement.device)
        return placement
    raise RuntimeError(
        f"The launcher announced {announced} processes but the process group has "
        f"{dist.get_world_size()}; the processes would not train together. Check the "
        f"launch command (e.g. `torchrun --nproc_per_node 2 train.py`) and MASTER_ADDR/PORT."
    )


def _check_backend(backend: str | None, *, cpu: bool) -> None:
    if backend == "nccl" and (cpu or not torch.cuda.is_available()):
        raise ValueError(
            f"ddp_backend='nccl' needs CUDA GPUs, but this run is on the CPU "
            f"(use_cpu={cpu}, CUDA available: {torch.cuda.is_available()}). Use "
            f"ddp_backend='gloo' (or leave it unset to pick gloo on the CPU)."
        )


class DistributedRuntime(SingleProcessRuntime):
    """:class:`trainer_core.Runtime` for several processes with DistributedDataParallel.

    Each process drives one device (its local GPU, or the CPU over gloo). Data loaders
    are sharded so that one global step of ``P`` processes covers the samples a single
    process would see with a ``P`` times larger batch, in the same order; the last step
    is padded so all processes step alike, and :meth:`gather` drops the padding rows.

    Args:
        use_cpu: train on the CPU (gloo) even when GPUs are present.
        backend: the ``torch.distributed`` backend (``ddp_backend``); ``None`` picks
            nccl on CUDA, gloo on CPU (accelerate's choice for other devices).
        timeout_seconds: collective timeout (``ddp_timeout``).
        ddp: DDP wrapper options.
        sharding: how loaders are shared among the processes (``split_batches``,
            ``even_batches`` of ``accelerator_config``); the defaults when ``None``.
        **precision: ``mixed_precision``, ``half_precision_backend``, ``fp16_full_eval``,
            ``bf16_full_eval``, ``tf32``, ``torch_compile``, ``torch_compile_backend``,
            ``torch_compile_mode``, as for :class:`SingleProcessRuntime`.

    Raises:
        RuntimeError: no multi-process group could be formed.
        ValueError: a precision or backend setting this machine cannot run.
    """

    def __init__(
        self,
        *,
        use_cpu: bool = False,
        backend: str | None = None,
        timeout_seconds: int | None = None,
        ddp: DDPOptions | None = None,
        sharding: ShardingOptions | None = None,
        mixed_precision: MixedPrecision = "no",
        **precision: Any,
    ) -> None:
        placement = start_process_group(
            cpu=use_cpu, backend=backend, timeout_seconds=timeout_seconds
        )
        self._configure(
            placement,
            mixed_precision=mixed_precision,
            half_precision_backend=precision.pop("half_precision_backend", "auto"),
            fp16_full_eval=precision.pop("fp16_full_eval", False),
            bf16_full_eval=precision.pop("bf16_full_eval", False),
            tf32=precision.pop("tf32", None),
            use_ipex=False,
            torch_compile=precision.pop("torch_compile", False),
            torch_compile_backend=precision.pop("torch_compile_backend", None),
            torch_compile_mode=precision.pop("torch_compile_mode", None),
        )
        if precision:
            raise TypeError(f"Unknown runtime options: {sorted(precision)}.")
        self._ddp = ddp or DDPOptions()
        self.sharding = sharding or ShardingOptions()
        self._limit = GatherLimit()
        self.backend = dist.get_backend()

    # ----------------------------------------------------------------------- prepare
    def prepare_model(self, model: nn.Module, *, training: bool) -> nn.Module:
        """Move ``model`` to this process's device and, for training, wrap it in DDP.

        Evaluation needs no gradient sync, so ``training=False`` only moves the model.
        A model already wrapped for data parallelism is not wrapped again.
        """
        if can_move(model):
            model = model.to(self._device)
        if training and not is_data_parallel(model):
            model = self._wrap(model)
        if self._compile:
            model = compile_model(model, **self._compile_options)
        return model

    def _wrap(self, model: nn.Module) -> nn.Module:
        device_ids = [self._device.index] if self._device.type == "cuda" else None
        kwargs = self._ddp.wrapper_kwargs(model)
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids, **kwargs)

    def prepare_dataloader(self, dataloader: Any) -> DeviceDataLoader:
        """Shard ``dataloader`` across processes; batches arrive on :attr:`device`.

        A map-style ``DataLoader`` is re-sampled (each process collates only its rows);
        anything else (streams, custom batch samplers) is dealt batch by batch, each
        process reading the whole stream. A loader prepared already is returned as it is.
        :attr:`sharding` decides between whole batches per process and slices of each
        batch (``split_batches``), and how an incomplete last step is completed.

        Raises:
            ValueError: ``split_batches`` with a batch size that is not a multiple of
                the number of processes.
        """
        if isinstance(dataloader, (ShardedDataLoader, DealtDataLoader)):
            return dataloader
        if isinstance(dataloader, DeviceDataLoader):
            dataloader = dataloader.base_dataloader
        shard = ShardedDataLoader if can_shard(dataloader) else DealtDataLoader
        return shard(
            dataloader,
            self._device,
            num_processes=self.num_processes,
            process_index=self.process_index,
            limit=self._limit,
            sharding=self.sharding,
        )

    # ------------------------------------------------------------ per-step hot path
    def no_sync(self, model: Any) -> AbstractContextManager[None]:
        """DDP's ``no_sync()``: gradients accumulate locally until the window's last step."""
        inner = unwrap_compiled(model)
        if isinstance(inner, nn.parallel.DistributedDataParallel):
            return inner.no_sync()
        return _NULL_CONTEXT

    # -------------------------------------------------------------------- collectives
    def gather(self, tensor: Any) -> Any:
        """Concatenate ``tensor`` (or each tensor in a nested structure) from every process.

        First dimensions may differ between processes. While the padded last step of a
        prepared loader is being consumed, rows that padding duplicated are dropped, so
        evaluation results hold exactly one row per sample.
        """
        size = self.num_processes
        return apply_nested(tensor, lambda t: self._limit.apply(gather_tensor(t, size)))

    def pad_across_processes(self, tensor: Any, *, dim: int = 0, pad_index: int = -100) -> Any:
        """Pad each tensor along ``dim`` with ``pad_index`` to the largest size among processes."""
        size = self.num_processes
        return apply_nested(
            tensor, lambda t: pad_tensor(t, dim=dim, pad_index=pad_index, world_size=size)
        )

    def reduce(self, tensor: Any, op: ReduceOp = "mean") -> Any:
        """All-reduce (a copy of) each tensor with ``op`` ("mean", "sum", "max", "min")."""
        size = self.num_processes
        return apply_nested(tensor, lambda t: reduce_tensor(t, op, size))

    def wait_for_everyone(self) -> None:
        """Barrier across all processes."""
        dist.barrier()

    def broadcast_object(self, obj: Any, *, src: int = 0) -> Any:
        """Rank ``src``'s ``obj`` on every process (pickled; for small host values)."""
        return broadcast_object(obj, src)

    def gather_objects(self, items: list[Any], *, drop_padding: bool = True) -> list[Any]:
        """Every process's list of picklable ``items`` (one per sample), concatenated in
        rank order: :meth:`gather` for objects, the padding of an uneven last
        evaluation step dropped likewise unless ``drop_padding`` is off (an extension of
        the runtime port)."""
        parts: list[Any] = [None] * self.num_processes
        dist.all_gather_object(parts, list(items))
        joined = [item for part in parts for item in part]
        return self._limit.apply_to_rows(joined) if drop_padding else joined

    def main_process_first(self, *, local: bool = True) -> AbstractContextManager[None]:
        """Run the block on the main process (of the node if ``local``) while the others
        wait at a barrier; then they run it too."""
        is_main = self.is_local_main_process if local else self.is_main_process
        return _main_first(is_main)

    # ----------------------------------------------------------------- state
    def state_dict(self, model: Any) -> dict[str, Any]:
        """The unwrapped module's state dict; every process holds the same full copy."""
        return unwrap_model(model).state_dict()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(device={self._device}, backend={self.backend!r}, "
            f"process={self.process_index}/{self.num_processes}, "
            f"mixed_precision={self._mixed_precision!r})"
        )


def unwrap_compiled(model: Any) -> Any:
    """``model`` without an outer ``torch.compile`` wrapper."""
    inner = getattr(model, "_orig_mod", None)
    return inner if isinstance(inner, nn.Module) else model


@contextlib.contextmanager
def _main_first(is_main: bool) -> Iterator[None]:
    if not is_main:
        dist.barrier()
    try:
        yield
    finally:
        if is_main:
            dist.barrier()
