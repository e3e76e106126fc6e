"""The runtime for one process: CPU, one GPU, an MPS device, or several GPUs via DataParallel.

Every method the loop calls per step (:meth:`~SingleProcessRuntime.autocast`,
:meth:`~SingleProcessRuntime.backward`, :meth:`~SingleProcessRuntime.no_sync`,
:meth:`~SingleProcessRuntime.clip_grad_norm`, :meth:`~SingleProcessRuntime.optimizer_step`)
is a thin call into plain torch: in fp32 they allocate nothing (the no-op contexts are one
shared ``nullcontext``) and never synchronise the host with the device.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any, Literal

import torch
from torch import nn

from trainer_core import ReduceOp, import_optional
from trainer_dist._batches import DeviceDataLoader
from trainer_dist._environment import (
    ProcessPlacement,
    detect_placement,
    launched_world_size,
    set_tf32,
    supports_tf32,
)
from trainer_dist._models import (
    can_move,
    compile_model,
    ipex_optimize,
    is_data_parallel,
    unwrap_model,
)
from trainer_dist._precision import (
    MixedPrecision,
    PlainSteps,
    ScaledSteps,
    autocast_dtype,
    check_precision,
)
from trainer_dist._seed import set_seed
from trainer_dist._state_io import load_sharded, save_sharded

# nullcontext keeps no state, so one instance serves every caller and every nesting level.
_NULL_CONTEXT: AbstractContextManager[None] = contextlib.nullcontext()
_REDUCE_OPS = frozenset(("mean", "sum", "max", "min"))


def refuse_multi_process(world_size: int) -> None:
    """Raise when a launcher started several processes: they must not each train alone.

    Raises:
        NotImplementedError: ``world_size`` is larger than 1.
    """
    if world_size > 1:
        raise NotImplementedError(
            f"This process is one of {world_size} launched processes (WORLD_SIZE={world_size}), "
            f"but SingleProcessRuntime trains alone. Use build_runtime(args), which picks "
            f"DistributedRuntime (DDP) or FSDPRuntime under a launcher, or run the script "
            f"without a launcher (plain `python script.py`) to train in one process."
        )


class SingleProcessRuntime:
    """:class:`trainer_core.Runtime` for one process with no launcher.

    Collectives return their input, barriers return at once, ``no_sync`` is a no-op.
    When several CUDA GPUs are visible and no device was pinned, :meth:`prepare_model`
    wraps the model in ``torch.nn.DataParallel`` (``n_gpu`` > 1), as the reference does.

    Args:
        device: the device to use (``"cpu"``, ``"cuda:1"``); ``None`` picks the best
            available one (CUDA, then MPS and other accelerators, else CPU).
        mixed_precision: ``"no"``, ``"fp16"`` (autocast + dynamic loss scaling; CUDA
            only) or ``"bf16"`` (autocast; CPU, and GPUs with bf16 support).
        half_precision_backend: ``"auto"``, ``"cuda_amp"`` or ``"cpu_amp"`` all mean
            native ``torch.amp`` on the device; ``"apex"`` is refused.
        fp16_full_eval: validated here (fp16 must be able to run on the device); casting
            the model for evaluation is the loop's job, see :attr:`full_eval_dtype`.
        bf16_full_eval: as ``fp16_full_eval``, for bf16.
        tf32: ``True`` enables TF32 matmuls (Ampere or newer GPU required), ``False``
            disables them on CUDA, ``None`` keeps torch's default.
        use_ipex: apply Intel Extension for PyTorch in :meth:`prepare_model`.
        torch_compile: ``torch.compile`` the model in :meth:`prepare_model`.
        torch_compile_backend: the compile backend (default ``"inductor"``).
        torch_compile_mode: the compile mode (torch's default when ``None``).

    Raises:
        NotImplementedError: a launcher started several processes.
        ValueError: a precision, device or tf32 setting this machine cannot run.
        trainer_core.MissingExtraError: ``use_ipex`` without the extension installed.
    """

    def __init__(
        self,
        *,
        device: str | torch.device | None = None,
        mixed_precision: MixedPrecision = "no",
        half_precision_backend: str = "auto",
        fp16_full_eval: bool = False,
        bf16_full_eval: bool = False,
        tf32: bool | None = None,
        use_ipex: bool = False,
        torch_compile: bool = False,
        torch_compile_backend: str | None = None,
        torch_compile_mode: str | None = None,
    ) -> None:
        refuse_multi_process(launched_world_size())
        placement = detect_placement(device)
        refuse_multi_process(placement.num_processes)
        self._configure(
            placement,
            mixed_precision=mixed_precision,
            half_precision_backend=half_precision_backend,
            fp16_full_eval=fp16_full_eval,
            bf16_full_eval=bf16_full_eval,
            tf32=tf32,
            use_ipex=use_ipex,
            torch_compile=torch_compile,
            torch_compile_backend=torch_compile_backend,
            torch_compile_mode=torch_compile_mode,
        )

    def _configure(
        self,
        placement: ProcessPlacement,
        *,
        mixed_precision: MixedPrecision,
        half_precision_backend: str,
        fp16_full_eval: bool,
        bf16_full_eval: bool,
        tf32: bool | None,
        use_ipex: bool,
        torch_compile: bool,
        torch_compile_backend: str | None,
        torch_compile_mode: str | None,
    ) -> None:
        """Validate precision for ``placement`` and set up what every runtime shares."""
        check_precision(
            mixed_precision=mixed_precision,
            half_precision_backend=half_precision_backend,
            device=placement.device,
            fp16_full_eval=fp16_full_eval,
            bf16_full_eval=bf16_full_eval,
        )
        _apply_tf32(tf32, placement.device)
        self._placement: ProcessPlacement = placement
        self._device = placement.device
        self._mixed_precision: MixedPrecision = mixed_precision
        self._amp_dtype = autocast_dtype(mixed_precision)
        self._full_eval_dtype = autocast_dtype(
            "fp16" if fp16_full_eval else "bf16" if bf16_full_eval else "no"
        )
        self._steps = ScaledSteps(self._device.type) if mixed_precision == "fp16" else PlainSteps()
        self._ipex = _load_ipex() if use_ipex else None
        self._compile = torch_compile
        self._compile_options = {"backend": torch_compile_backend, "mode": torch_compile_mode}

    # ----------------------------------------------------------------- process facts
    @property
    def device(self) -> torch.device:
        """The device this process computes on (with its index: ``cuda:0``, ``mps:0``)."""
        return self._device

    @property
    def num_processes(self) -> int:
        """1 here; the group's size in the multi-process runtimes built on this class."""
        return self._placement.num_processes

    @property
    def process_index(self) -> int:
        """This process's global rank (0)."""
        return self._placement.process_index

    @property
    def local_process_index(self) -> int:
        """This process's rank on its node (0)."""
        return self._placement.local_process_index

    @property
    def is_main_process(self) -> bool:
        """Whether this is global rank 0 (always, with one process)."""
        return self._placement.process_index == 0

    @property
    def is_local_main_process(self) -> bool:
        """Whether this is rank 0 of its node (always, with one process)."""
        return self._placement.local_process_index == 0

    @property
    def n_gpu(self) -> int:
        """GPUs this process drives: 0 on CPU, >1 when the model is wrapped in DataParallel."""
        return self._placement.n_gpu

    @property
    def mixed_precision(self) -> MixedPrecision:
        """``"no"``, ``"fp16"`` or ``"bf16"``: what :meth:`autocast` applies."""
        return self._mixed_precision

    @property
    def full_eval_dtype(self) -> torch.dtype | None:
        """The dtype to cast the model to for evaluation (fp16/bf16_full_eval), or ``None``."""
        return self._full_eval_dtype

    # ----------------------------------------------------------------------- prepare
    def prepare_model(self, model: nn.Module, *, training: bool) -> nn.Module:
        """Move ``model`` to the device, optimise (ipex), wrap (DataParallel) and compile it.

        Models placed by their loader (``device_map`` over several devices, quantized
        models) are not moved; a model already wrapped for data parallelism or already
        compiled is not wrapped or compiled again.
        """
        movable = can_move(model)
        if movable:
            model = model.to(self._device)
        if self._ipex is not None:
            dtype = self._amp_dtype if self._mixed_precision == "bf16" else torch.float32
            model = ipex_optimize(self._ipex, model, training=training, dtype=dtype)
        if self.n_gpu > 1 and movable and not is_data_parallel(model):
            model = nn.DataParallel(model)
        if self._compile:
            model = compile_model(model, **self._compile_options)
        return model

    def prepare_optimizer(self, optimizer: Any) -> Any:
        """Return ``optimizer`` itself; with fp16 the loss scaler starts tracking it."""
        self._steps.track(optimizer)
        return optimizer

    def prepare_scheduler(self, scheduler: Any) -> Any:
        """Return ``scheduler`` itself."""
        return scheduler

    def prepare_training(
        self,
        model: Any,
        *,
        create_optimizer: Callable[[], Any],
        create_scheduler: Callable[[Any], Any],
        num_training_steps: int,
    ) -> tuple[Any, Any, Any]:
        """:meth:`prepare_model`, then the optimizer and the scheduler built for it.

        The model is prepared first (moved, wrapped, sharded by subclasses) so that the
        optimizer is built on the parameters that will be trained. ``num_training_steps``
        is not needed here: the Trainer's scheduler factory knows it.
        """
        model = self.prepare_model(model, training=True)
        optimizer = self.prepare_optimizer(create_optimizer())
        return model, optimizer, self.prepare_scheduler(create_scheduler(optimizer))

    def prepare_dataloader(self, dataloader: Any) -> DeviceDataLoader:
        """Wrap ``dataloader`` so that its batches arrive on :attr:`device`.

        No sharding with one process. The wrapper delegates ``len()`` and attributes to
        the dataloader; on the CPU iterating it is iterating the dataloader itself.
        """
        if isinstance(dataloader, DeviceDataLoader) and dataloader.device == self._device:
            return dataloader
        return DeviceDataLoader(dataloader, self._device)

    def unwrap_model(self, model: Any) -> Any:
        """The user's module inside DataParallel / DDP / ``torch.compile`` wrappers."""
        return unwrap_model(model)

    # ------------------------------------------------------------ per-step hot path
    def autocast(self, *, enabled: bool = True) -> AbstractContextManager[Any]:
        """Autocast for forward passes; in fp32, one shared no-op context.

        ``enabled=False`` under mixed precision returns a context that turns autocast
        off, also inside an enclosing autocast region (evaluation of a model already cast
        to half precision).
        """
        dtype = self._amp_dtype
        if dtype is None:
            return _NULL_CONTEXT
        if enabled:
            return torch.autocast(self._device.type, dtype=dtype)
        return torch.autocast(self._device.type, enabled=False)

    def backward(self, loss: torch.Tensor) -> None:
        """``loss.backward()``, with the loss scaled first under fp16."""
        self._steps.backward(loss)

    def no_sync(self, model: Any) -> AbstractContextManager[None]:
        """No gradient synchronisation exists with one process: a shared no-op context."""
        return _NULL_CONTEXT

    def clip_grad_norm(self, parameters: Iterable[torch.Tensor], max_norm: float) -> torch.Tensor:
        """Clip gradients to ``max_norm``; return the pre-clip total norm as a device tensor.

        Under fp16 the gradients of the optimizer(s) given to :meth:`prepare_optimizer`
        are unscaled first, so the norm and the threshold are in true units.
        """
        self._steps.unscale_gradients()
        return nn.utils.clip_grad_norm_(parameters, max_norm)

    def optimizer_step(self, optimizer: Any) -> bool:
        """Step ``optimizer``; ``False`` when fp16 loss scaling skipped it (overflow)."""
        return self._steps.step(optimizer)

    # -------------------------------------------------------------------- collectives
    def gather(self, tensor: Any) -> Any:
        """Return ``tensor``: with one process the concatenation is the input itself."""
        return tensor

    def pad_across_processes(self, tensor: Any, *, dim: int = 0, pad_index: int = -100) -> Any:
        """Return ``tensor``: it is already the largest among one process."""
        return tensor

    def reduce(self, tensor: Any, op: ReduceOp = "mean") -> Any:
        """Return ``tensor``: every reduction over one process is the identity.

        Raises:
            ValueError: ``op`` is not one of "mean", "sum", "max", "min".
        """
        if op not in _REDUCE_OPS:
            allowed = sorted(_REDUCE_OPS)
            raise ValueError(f"reduce op={op!r} is not supported; use one of {allowed}.")
        return tensor

    def wait_for_everyone(self) -> None:
        """Return at once: there is nobody else to wait for."""

    def broadcast_object(self, obj: Any, *, src: int = 0) -> Any:
        """Return ``obj``: with one process, ``src`` is this one."""
        return obj

    def gather_objects(self, items: list[Any], *, drop_padding: bool = True) -> list[Any]:
        """``items`` as a list: with one process there is nobody else's to add.

        Raises:
            NotImplementedError: a subclass running several processes that does not
                provide an object gather of its own (XLA).
        """
        if self.num_processes > 1:
            raise NotImplementedError(
                f"Gathering objects across {self.num_processes} processes is not provided "
                f"by {type(self).__name__}; gather tensors, or run with DDP."
            )
        return list(items)

    def main_process_first(self, *, local: bool = True) -> AbstractContextManager[None]:
        """Run the block now: this process is the main one (a shared no-op context)."""
        return _NULL_CONTEXT

    # ----------------------------------------------------------------- state and seeds
    def set_seed(self, seed: int, *, deterministic: bool = False) -> None:
        """Seed python, numpy and torch; see :func:`trainer_dist.set_seed`."""
        set_seed(seed, deterministic=deterministic)

    def state_dict(self, model: Any) -> dict[str, Any]:
        """The unwrapped module's ``state_dict()`` (no ``module.`` / ``_orig_mod.`` prefixes)."""
        return unwrap_model(model).state_dict()

    def load_state_dict(self, model: Any, state: dict[str, Any]) -> None:
        """Load a full state dict (as :meth:`state_dict` returns) into the unwrapped module."""
        unwrap_model(model).load_state_dict(state)

    def optimizer_state_dict(self, model: Any, optimizer: Any) -> dict[str, Any]:
        """``optimizer.state_dict()``: with one process the optimizer holds all its state."""
        return optimizer.state_dict()

    def load_optimizer_state_dict(self, model: Any, optimizer: Any, state: dict[str, Any]) -> None:
        """``optimizer.load_state_dict(state)``."""
        optimizer.load_state_dict(state)

    @property
    def shards_parameters(self) -> bool:
        """Always ``False``: one process holds every weight."""
        return False

    @property
    def checkpoint_format(self) -> Literal["full", "sharded"]:
        """Always ``"full"``: one process holds every weight."""
        return "full"

    def save_sharded_state(self, directory: str, model: Any, optimizer: Any | None = None) -> None:
        """Write model (and optimizer) state as ``torch.distributed.checkpoint`` folders.

        Any number of processes can load them back with :meth:`load_sharded_state`.
        """
        save_sharded(directory, unwrap_model(model), optimizer)

    def load_sharded_state(self, directory: str, model: Any, optimizer: Any | None = None) -> None:
        """Load folders written by ``save_sharded_state`` on any number of processes."""
        load_sharded(directory, unwrap_model(model), optimizer)

    def scaler_state_dict(self) -> dict[str, Any]:
        """The fp16 loss scaler's state for a checkpoint (empty without fp16)."""
        return self._steps.state_dict()

    def load_scaler_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state saved by :meth:`scaler_state_dict` (ignored without fp16)."""
        self._steps.load_state_dict(state)

    def __repr__(self) -> str:
        return (
            f"SingleProcessRuntime(device={self._device}, mixed_precision="
            f"{self._mixed_precision!r}, n_gpu={self.n_gpu})"
        )


def _apply_tf32(tf32: bool | None, device: torch.device) -> None:
    if tf32 is None:
        return
    if tf32 and not supports_tf32(device):
        raise ValueError(
            f"tf32=True needs an NVIDIA GPU of the Ampere generation or newer (compute "
            f"capability 8.0+) and a CUDA build of torch, but this process runs on {device}. "
            f"Leave tf32 unset (None) to keep torch's default, or pass tf32=False."
        )
    if device.type == "cuda":
        set_tf32(tf32)


def _load_ipex() -> Any:
    return import_optional(
        "intel_extension_for_pytorch",
        package="intel-extension-for-pytorch",
        extra=None,
        feature="use_ipex=True (Intel Extension for PyTorch)",
    )
