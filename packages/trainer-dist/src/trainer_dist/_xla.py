"""The runtime for PyTorch/XLA fully sharded data parallel training (``fsdp_config['xla']``).

Run on real torch_xla 2.9 with XLA on the CPU (``PJRT_DEVICE=CPU``, one process:
``tools/xla_check.sh`` and ``tests/test_xla_real.py`` in a separate virtualenv); the
unit tests use a stand-in for the thin :class:`TorchXla` layer that follows torch_xla's
real API. Several processes need TPUs or GPUs (PJRT's CPU client cannot join processes),
so collectives across processes ran only against the stand-in.

Every call into torch_xla goes through :class:`TorchXla`, one thin method per call, so
that the rest is plain torch and can be checked without an XLA device. Behaviour follows
the reference's Trainer with ``fsdp_config['xla']=True``:

* the model is wrapped in ``XlaFullyShardedDataParallel`` with ``xla_fsdp_settings``
  passed through, auto-wrapping layers by size or class, and ``checkpoint_module`` around
  each auto-wrapped layer with ``xla_fsdp_grad_ckpt``;
* the optimizer step is ``optimizer.step()`` without ``xm.optimizer_step``'s gradient
  all-reduce (FSDP reduce-scatters gradients in backward), followed by ``torch_xla.sync()``;
  prepared dataloaders also mark a step before each batch, as ``MpDeviceLoader`` does, so
  that the lazy graph is cut per batch in evaluation too;
* gradients are clipped by the wrapper's ``clip_grad_norm_``; collectives use ``xm``;
* ``bf16=True`` is the wrapper's ``compute_dtype=torch.bfloat16`` rather than autocast
  (see :func:`~trainer_dist._xla_settings.precision_options`);
* checkpoints: each process writes its shards and the shard metadata with ``xm.save``
  (``rank<r>-of-<n>-pytorch_model.bin``, as the reference names them), which load back
  on any number of processes; :func:`consolidate_xla_fsdp_checkpoint` turns them into
  full weights. Full weights for ``save_model`` are gathered with ``xm.all_gather``.

Processes are started the way torch_xla starts them (PJRT: ``torch_xla.launch`` /
``xmp.spawn``, or ``torchrun`` with ``PJRT_DEVICE`` set); ranks come from
``torch_xla.runtime``. With several processes the runtime also starts torch.distributed's
``"xla"`` process group, so that ``TrainingArguments.process_index`` and ``should_save``
see the XLA ranks.
"""

from __future__ import annotations

import functools
import inspect
import logging
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any, Literal

import torch
from torch import nn

from trainer_core import ReduceOp, import_optional
from trainer_dist._batches import DeviceDataLoader
from trainer_dist._collectives import apply_nested
from trainer_dist._environment import ProcessPlacement, launched_world_size
from trainer_dist._models import can_move, unwrap_model
from trainer_dist._precision import MixedPrecision
from trainer_dist._sharding import DealtDataLoader, GatherLimit, ShardedDataLoader, can_shard
from trainer_dist._single import _NULL_CONTEXT, SingleProcessRuntime
from trainer_dist._xla_collectives import (
    chunks,
    gather_uneven,
    main_first,
    pad_to_largest,
    reduce_copy,
)
from trainer_dist._xla_settings import (
    WrapPolicy,
    XlaFSDPSettings,
    check_fp32_parameters,
    check_grad_ckpt,
    check_replicas,
    check_wrapper_options,
    disable_cache_for_checkpointing,
    precision_options,
    refuse_unsupported_options,
    resolve_wrap_policy,
)
from trainer_dist._xla_shards import (
    ShardedEntry,
    assign_param_groups,
    describe_shards,
    full_state,
    gather_model_state,
    gather_optimizer_state,
    gathered_from_full,
    keyed_optimizer_state,
    load_gathered_model,
    load_gathered_optimizer,
    local_optimizer_state,
    local_state,
    rank_file,
    rank_files,
    read_rank_file,
    state_key,
)

logger = logging.getLogger(__name__)

_FEATURE = "fsdp_config['xla']=True (XLA FSDP)"
_REDUCE_OPS = ("mean", "sum", "max", "min")
_GATHER_CHUNK_BYTES = 256 * 2**20


class TorchXla:
    """The thin layer over torch_xla: the only code here that calls it.

    Raises:
        trainer_core.MissingExtraError: torch_xla is not installed (``pip install torch-xla``).
    """

    def __init__(self) -> None:
        self._torch_xla = _import("torch_xla")
        self._xm = _import("torch_xla.core.xla_model")
        self._xr = _import("torch_xla.runtime")
        self._fsdp = _import("torch_xla.distributed.fsdp")
        self._policies = _import("torch_xla.distributed.fsdp.wrap")

    def device(self) -> torch.device:
        """This process's XLA device (``torch_xla.device()``, ``xm.xla_device()`` before 2.5)."""
        make = getattr(self._torch_xla, "device", None)
        return make() if callable(make) else self._xm.xla_device()

    def world_size(self) -> int:
        """Processes (replicas) training together: ``xr.world_size()``."""
        return int(self._xr.world_size())

    def ordinal(self) -> int:
        """This process's global rank: ``xr.global_ordinal()``."""
        return int(self._xr.global_ordinal())

    def local_ordinal(self) -> int:
        """This process's rank on its host: ``xr.local_ordinal()``."""
        return int(self._xr.local_ordinal())

    def devices_per_process(self) -> int:
        """XLA devices this process drives: ``xr.addressable_device_count()`` (more than
        one when replicas run as threads: TPU v2/v3, or ``CPU_NUM_DEVICES`` under
        ``xmp.spawn``)."""
        return int(self._xr.addressable_device_count())

    def join_process_group(self) -> None:
        """Start torch.distributed's ``"xla"`` process group (``init_method="xla://"``).

        Collectives here go through ``xm``; the group is for code that asks
        ``torch.distributed`` who this process is (``TrainingArguments.process_index``,
        ``should_save``), which otherwise sees one process everywhere.
        """
        import torch.distributed as dist

        if dist.is_initialized():
            return
        _import("torch_xla.distributed.xla_backend")  # registers the "xla" backend
        dist.init_process_group("xla", init_method="xla://")

    def mark_step(self) -> None:
        """Cut the lazy graph and run it: ``torch_xla.sync()``, or ``xm.mark_step()`` where
        ``sync`` is missing (torch_xla 2.9 deprecates ``mark_step`` with a warning)."""
        sync = getattr(self._torch_xla, "sync", None)
        if callable(sync):
            sync()
        else:
            self._xm.mark_step()

    def all_reduce(self, op: str, tensor: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """``xm.all_reduce`` of one tensor with ``op`` ("sum", "max" or "min"), scaled."""
        reduce_type = {"sum": self._xm.REDUCE_SUM, "max": self._xm.REDUCE_MAX}.get(
            op, self._xm.REDUCE_MIN
        )
        return self._xm.all_reduce(reduce_type, tensor, scale=scale)

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """``xm.all_gather`` along dim 0 (every process passes the same shape)."""
        return self._xm.all_gather(tensor, dim=0)

    def rendezvous(self, tag: str) -> None:
        """Barrier across processes: ``xm.rendezvous(tag)`` (nothing to wait for alone).

        torch_xla 2.9's ``rendezvous`` calls its own deprecated ``xm.xla_device()``; that
        warning is silenced here, since callers cannot act on it.
        """
        if self.world_size() == 1:
            return
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message="Use torch_xla.device instead", category=DeprecationWarning
            )
            self._xm.rendezvous(tag)

    def save(self, data: Any, path: str) -> None:
        """``xm.save`` from this process (moved to the CPU first), whatever its rank."""
        self._xm.save(data, path, master_only=False)

    def set_seed(self, seed: int) -> None:
        """Seed the XLA device's generator: ``xm.set_rng_state(seed)``."""
        self._xm.set_rng_state(seed)

    def is_wrapper(self, model: Any) -> bool:
        """Whether ``model`` is an ``XlaFullyShardedDataParallel``."""
        return isinstance(model, self._fsdp.XlaFullyShardedDataParallel)

    def user_module(self, wrapper: Any) -> nn.Module:
        """The user's module inside a wrapper (its flatten-params wrapper's ``module``)."""
        return wrapper.module.module

    def wrapper_parameters(self) -> list[str]:
        """Keyword parameters the installed ``XlaFullyShardedDataParallel`` accepts."""
        signature = inspect.signature(self._fsdp.XlaFullyShardedDataParallel.__init__)
        return [name for name in signature.parameters if name not in ("self", "module")]

    def wrap(
        self,
        model: nn.Module,
        *,
        policy: WrapPolicy | None,
        checkpoint_layers: bool,
        options: dict[str, Any],
    ) -> nn.Module:
        """``XlaFullyShardedDataParallel(model, auto_wrap_policy=..., **options)``."""
        wrapper_cls = self._fsdp.XlaFullyShardedDataParallel
        auto_wrap_policy = None
        if policy is not None and policy.min_num_params > 0:
            auto_wrap_policy = functools.partial(
                self._policies.size_based_auto_wrap_policy, min_num_params=policy.min_num_params
            )
        elif policy is not None:
            auto_wrap_policy = functools.partial(
                self._policies.transformer_auto_wrap_policy,
                transformer_layer_cls=set(policy.layer_classes),
            )
        wrap_layer = None
        if checkpoint_layers:
            checkpoint_module = self._fsdp.checkpoint_module

            def wrap_layer(module: nn.Module, *args: Any, **kwargs: Any) -> nn.Module:
                return wrapper_cls(checkpoint_module(module), *args, **kwargs)

        return wrapper_cls(
            model, auto_wrap_policy=auto_wrap_policy, auto_wrapper_callable=wrap_layer, **options
        )


def _import(module: str) -> Any:
    return import_optional(module, package="torch-xla", extra=None, feature=_FEATURE)


class StepMarkingLoader:
    """A prepared dataloader that cuts the lazy XLA graph before handing out each batch.

    What ``MpDeviceLoader`` does: without it, the operations of many evaluation batches
    would pile up in one graph. ``len()`` and other attributes are the wrapped loader's.

    Args:
        loader: the sharded, device-moving loader.
        mark_step: called before each batch is yielded.
    """

    def __init__(self, loader: Any, mark_step: Callable[[], None]) -> None:
        self.loader = loader
        self.mark_step = mark_step

    def __iter__(self) -> Iterator[Any]:
        batches = iter(self.loader)  # made now: see DeviceDataLoader.__iter__
        return self._marked(batches)

    def _marked(self, batches: Iterator[Any]) -> Iterator[Any]:
        for batch in batches:
            self.mark_step()
            yield batch

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str) -> Any:
        loader = self.__dict__.get("loader")
        if loader is None:
            raise AttributeError(name)
        return getattr(loader, name)


class XlaFSDPRuntime(SingleProcessRuntime):
    """:class:`trainer_core.Runtime` over PyTorch/XLA's ``XlaFullyShardedDataParallel``.

    One process per XLA device. Backward and seeding are the single-process runtime's;
    bf16 is the wrapper's ``compute_dtype`` (no autocast); this class adds the wrapper,
    data sharding, XLA collectives and sharded checkpoints (see the module docstring).
    The model handed to :meth:`prepare_model` is replaced by the wrapper, which keeps it
    inside: :meth:`unwrap_model` returns it, but its parameters now live in the wrapper's
    shards, so weights go through :meth:`state_dict` / :meth:`load_state_dict`.

    Args:
        settings: the parsed ``fsdp`` / ``fsdp_config`` (see :func:`parse_xla_fsdp`).
        mixed_precision: ``"no"`` or ``"bf16"`` (the wrapper computes in bfloat16);
            ``"fp16"`` is refused.
        half_precision_backend: as for :class:`SingleProcessRuntime`.
        fp16_full_eval: refused when true.
        bf16_full_eval: refused when true (see :func:`refuse_unsupported_options`).
        tf32: as for :class:`SingleProcessRuntime` (``True`` is refused off CUDA).
        torch_compile: refused when true (also via ``torch_compile_backend`` / ``_mode``).
        torch_compile_backend: see ``torch_compile``.
        torch_compile_mode: see ``torch_compile``.
        xla: the torch_xla layer (a :class:`TorchXla` by default; tests substitute one).

    Raises:
        ValueError: fp16, a half-precision full evaluation, torch_compile, or bf16 with
            another ``compute_dtype``.
        trainer_core.MissingExtraError: torch_xla is not installed.
        RuntimeError: launched processes XLA did not join, or replicas running as
            threads (see :func:`check_replicas`).
    """

    def __init__(
        self,
        settings: XlaFSDPSettings,
        *,
        mixed_precision: MixedPrecision = "no",
        half_precision_backend: str = "auto",
        fp16_full_eval: bool = False,
        bf16_full_eval: bool = False,
        tf32: bool | None = None,
        torch_compile: bool = False,
        torch_compile_backend: str | None = None,
        torch_compile_mode: str | None = None,
        xla: Any = None,
    ) -> None:
        refuse_unsupported_options(
            mixed_precision=mixed_precision,
            fp16_full_eval=fp16_full_eval,
            bf16_full_eval=bf16_full_eval,
            torch_compile=bool(torch_compile or torch_compile_backend or torch_compile_mode),
        )
        self._wrapper_options = precision_options(settings.wrapper_options, mixed_precision)
        self._xla = xla if xla is not None else TorchXla()
        check_replicas(
            self._xla.world_size(), launched_world_size(), self._xla.devices_per_process()
        )
        if self._xla.world_size() > 1:
            self._xla.join_process_group()
        placement = ProcessPlacement(
            num_processes=self._xla.world_size(),
            process_index=self._xla.ordinal(),
            local_process_index=self._xla.local_ordinal(),
            device=self._xla.device(),
            n_gpu=0,
        )
        self._configure(
            placement,
            mixed_precision=mixed_precision,
            half_precision_backend=half_precision_backend,
            fp16_full_eval=False,
            bf16_full_eval=False,
            tf32=tf32,
            use_ipex=False,
            torch_compile=False,
            torch_compile_backend=None,
            torch_compile_mode=None,
        )
        self.settings = settings
        self._limit = GatherLimit()
        self._wrappers: dict[int, nn.Module] = {}
        self._root: nn.Module | None = None
        if settings.ignored_keys:
            logger.warning(
                "fsdp_config keys %s configure torch's FSDP; XLA FSDP ignores them.",
                list(settings.ignored_keys),
            )

    # ----------------------------------------------------------------------- prepare
    def prepare_model(self, model: nn.Module, *, training: bool) -> nn.Module:
        """Wrap ``model`` for training (once); for evaluation only move it to the device.

        A model wrapped already (or the user's module of a wrapper) gives its wrapper back,
        so evaluation after training runs through the shards.

        Raises:
            ValueError: an unknown layer class, ``xla_fsdp_grad_ckpt`` without an
                auto-wrap policy, non-fp32 parameters, or an ``xla_fsdp_settings`` key
                the installed torch_xla does not accept.
        """
        if self._xla.is_wrapper(model):
            return model
        wrapper = self._wrappers.get(id(model))
        if wrapper is not None:
            return wrapper
        if not training:
            return model.to(self._device) if can_move(model) else model
        return self._wrap(model)

    def _wrap(self, model: nn.Module) -> nn.Module:
        settings = self.settings
        policy = resolve_wrap_policy(model, settings)
        check_grad_ckpt(policy, settings, model)
        check_fp32_parameters(model)
        check_wrapper_options(self._wrapper_options, self._xla.wrapper_parameters())
        if settings.grad_ckpt:
            disable_cache_for_checkpointing(model)
        _buffers_to(model, self._device)
        wrapper = self._xla.wrap(
            model,
            policy=policy,
            checkpoint_layers=settings.grad_ckpt,
            options=dict(self._wrapper_options),
        )
        self._wrappers[id(model)] = wrapper
        self._root = wrapper
        return wrapper

    def prepare_training(
        self,
        model: Any,
        *,
        create_optimizer: Callable[[], Any],
        create_scheduler: Callable[[Any], Any],
        num_training_steps: int,
    ) -> tuple[Any, Any, Any]:
        """Build the optimizer on the user's model, wrap the model, then regroup the
        optimizer onto the wrapper's shards; build the scheduler last.

        The optimizer is built first because the Trainer groups parameters by their
        names (weight decay or not), which only the unwrapped model has; wrapping
        replaces the parameters by shards, which then join their parameters' groups.
        """
        if self._xla.is_wrapper(model) or id(model) in self._wrappers:
            wrapper = self.prepare_model(model, training=True)
            optimizer = create_optimizer()
        else:
            names = {id(param): name for name, param in model.named_parameters()}
            optimizer = create_optimizer()
            wrapper = self._wrap(model)
            shards = list(wrapper.named_parameters())
            entries = self._entries(wrapper)
            assign_param_groups(optimizer, names, shards, entries)
        optimizer = self.prepare_optimizer(optimizer)
        return wrapper, optimizer, self.prepare_scheduler(create_scheduler(optimizer))

    def prepare_optimizer(self, optimizer: Any) -> Any:
        """Check that ``optimizer`` steps the wrapper's shards; return it.

        Raises:
            ValueError: it optimizes tensors that are not shards of the wrapped model
                (an optimizer built on the model before wrapping).
        """
        if self._root is not None:
            shards = {id(param) for param in self._root.parameters()}
            for group in optimizer.param_groups:
                if any(id(param) not in shards for param in group["params"]):
                    raise ValueError(
                        "The optimizer does not optimize the XLA FSDP model's shards: build "
                        "it on runtime.prepare_model(model, training=True).parameters(), or "
                        "use runtime.prepare_training(), which regroups it."
                    )
        return super().prepare_optimizer(optimizer)

    def prepare_dataloader(self, dataloader: Any) -> StepMarkingLoader:
        """Shard ``dataloader`` across processes, move batches to the XLA device and cut
        the lazy graph before each batch (see :class:`StepMarkingLoader`)."""
        if isinstance(dataloader, StepMarkingLoader):
            return dataloader
        if isinstance(dataloader, DeviceDataLoader):
            dataloader = getattr(dataloader, "original_dataloader", dataloader.base_dataloader)
        if self.num_processes == 1:
            return StepMarkingLoader(DeviceDataLoader(dataloader, self._device), self._mark_step)
        shard = ShardedDataLoader if can_shard(dataloader) else DealtDataLoader
        sharded = shard(
            dataloader,
            self._device,
            num_processes=self.num_processes,
            process_index=self.process_index,
            limit=self._limit,
        )
        return StepMarkingLoader(sharded, self._mark_step)

    def _mark_step(self) -> None:
        self._xla.mark_step()

    def unwrap_model(self, model: Any) -> Any:
        """The user's module inside the XLA FSDP wrapper (or other wrappers)."""
        if self._xla.is_wrapper(model):
            return self._xla.user_module(model)
        return unwrap_model(model)

    # ------------------------------------------------------------ per-step hot path
    def autocast(self, *, enabled: bool = True) -> AbstractContextManager[None]:
        """Always a no-op: under bf16 the wrapper computes in bf16 itself (``compute_dtype``,
        see :func:`precision_options`); a model evaluated without being wrapped runs in
        fp32."""
        return _NULL_CONTEXT

    def no_sync(self, model: Any) -> AbstractContextManager[None]:
        """The wrapper's ``no_sync()``: gradients accumulate unreduced until the last
        micro-step (full-size gradients are kept meanwhile, as in the reference)."""
        if self._xla.is_wrapper(model):
            return model.no_sync()
        return super().no_sync(model)

    def clip_grad_norm(self, parameters: Iterable[torch.Tensor], max_norm: float) -> torch.Tensor:
        """The wrapper's ``clip_grad_norm_``: the norm over every process's shards."""
        if self._root is None:
            return super().clip_grad_norm(parameters, max_norm)
        return self._root.clip_grad_norm_(max_norm)  # type: ignore[operator]  # XLA FSDP's method

    def optimizer_step(self, optimizer: Any) -> bool:
        """``optimizer.step()`` (no gradient all-reduce: FSDP reduce-scattered them), then
        ``xm.mark_step()`` to run the step's graph. Always ``True`` (no fp16 here)."""
        optimizer.step()
        self._xla.mark_step()
        return True

    # -------------------------------------------------------------------- collectives
    def gather(self, tensor: Any) -> Any:
        """Concatenate each tensor from every process along dim 0 (sizes may differ).

        Exchanging the sizes reads them on the host, which runs the pending graph.
        Rows that padding duplicated on a prepared loader's last step are dropped.
        """
        if self.num_processes == 1:
            return tensor
        return apply_nested(
            tensor, lambda t: self._limit.apply(gather_uneven(t.to(self._device), self._xla))
        )

    def pad_across_processes(self, tensor: Any, *, dim: int = 0, pad_index: int = -100) -> Any:
        """Pad each tensor along ``dim`` with ``pad_index`` to the largest size among processes."""
        if self.num_processes == 1:
            return tensor
        return apply_nested(
            tensor,
            lambda t: pad_to_largest(t.to(self._device), self._xla, dim=dim, pad_index=pad_index),
        )

    def reduce(self, tensor: Any, op: ReduceOp = "mean") -> Any:
        """All-reduce a copy of each tensor with ``op`` ("mean", "sum", "max", "min").

        Every process must use the result (or run ``xm.mark_step``): an XLA collective
        that is never executed leaves the others waiting.
        """
        if op not in _REDUCE_OPS:
            raise ValueError(f"reduce op={op!r} is not supported; use one of {list(_REDUCE_OPS)}.")
        world = self.num_processes
        return apply_nested(tensor, lambda t: reduce_copy(t.to(self._device), op, self._xla, world))

    def wait_for_everyone(self) -> None:
        """Barrier across processes (``xm.rendezvous``)."""
        self._xla.rendezvous("trainer_dist.wait_for_everyone")

    def broadcast_object(self, obj: Any, *, src: int = 0) -> Any:
        """``obj`` with one process; several XLA processes have no object broadcast here.

        Raises:
            NotImplementedError: more than one process.
        """
        if self.num_processes > 1:
            raise NotImplementedError(
                f"broadcast_object across {self.num_processes} XLA processes is not "
                "provided; run what needs it (e.g. a hyperparameter search) with DDP."
            )
        return obj

    def main_process_first(self, *, local: bool = True) -> AbstractContextManager[None]:
        """Run the block on the (local) main process while the others wait, then on them."""
        is_main = self.is_local_main_process if local else self.is_main_process
        return main_first(is_main, self._xla)

    def set_seed(self, seed: int, *, deterministic: bool = False) -> None:
        """Seed python, numpy, torch and the XLA device's generator."""
        super().set_seed(seed, deterministic=deterministic)
        self._xla.set_seed(seed)

    # ----------------------------------------------------------------- state
    @property
    def shards_parameters(self) -> bool:
        """Always ``True``: each process holds a shard of every parameter."""
        return True

    @property
    def checkpoint_format(self) -> Literal["full", "sharded"]:
        """``"sharded"`` (per-process shard files) unless ``state_dict_type`` is
        ``FULL_STATE_DICT``."""
        return self.settings.checkpoint_format

    def _entries(self, wrapper: nn.Module) -> dict[str, ShardedEntry]:
        return describe_shards(_shard_shapes(wrapper), wrapper.get_shard_metadata())  # type: ignore[operator]  # XLA FSDP's method

    def _concat(self, tensors: list[torch.Tensor], *, keep: bool) -> list[torch.Tensor] | None:
        """All-gather ``tensors`` in chunks, running each chunk's graph; CPU copies if
        ``keep``. Every process must call it with the same shapes in the same order."""
        kept: list[torch.Tensor] = []
        for chunk in chunks(tensors, _GATHER_CHUNK_BYTES // max(self.num_processes, 1)):
            gathered = [self._xla.all_gather(tensor) for tensor in chunk]
            self._xla.mark_step()
            if keep:
                kept.extend(tensor.cpu() for tensor in gathered)
        return kept if keep else None

    def state_dict(self, model: Any) -> dict[str, Any]:
        """Full weights under the user's names, on the CPU of each node's main process
        (a collective; other processes get an empty dict)."""
        wrapper = self._find_wrapper(model)
        if wrapper is None:
            return super().state_dict(model)
        keep = self.is_local_main_process
        local = wrapper.state_dict()
        entries = self._entries(wrapper)
        result = gather_model_state(local, entries, functools.partial(self._concat, keep=keep))
        if result is None:
            return {}
        gathered, buffers = result
        buffers = {key: value.cpu() for key, value in buffers.items()}
        return full_state(gathered, buffers, entries, wrapper.get_shard_metadata())

    def load_state_dict(self, model: Any, state: dict[str, Any]) -> None:
        """Load full weights (every process passes them all); each keeps its shards."""
        wrapper = self._find_wrapper(model)
        if wrapper is None:
            super().load_state_dict(model, state)
            return
        entries = self._entries(wrapper)
        buffer_keys = [key for key in wrapper.state_dict() if key not in entries]
        gathered, buffers = gathered_from_full(state, entries, buffer_keys)
        wrapper.load_state_dict(self._local(wrapper, gathered, buffers))

    def _local(self, wrapper: Any, gathered: Any, buffers: Any) -> dict[str, torch.Tensor]:
        metadata = wrapper.get_shard_metadata()
        return local_state(
            gathered,
            buffers,
            _shard_shapes(wrapper),
            rank=metadata["rank"],
            world=metadata["world_size"],
        )

    def optimizer_state_dict(self, model: Any, optimizer: Any) -> dict[str, Any]:
        """The optimizer's state keyed by shard key, shards joined (a collective), on the
        CPU of each node's main process (empty elsewhere); loads on any process count."""
        wrapper = self._find_wrapper(model)
        if wrapper is None:
            return optimizer.state_dict()
        keyed = keyed_optimizer_state(optimizer.state_dict(), _param_keys(wrapper, optimizer))
        concat = functools.partial(self._concat, keep=self.is_local_main_process)
        shapes, entries = _shard_shapes(wrapper), self._entries(wrapper)
        gathered = gather_optimizer_state(keyed, shapes, entries, concat)
        return gathered if gathered is not None else {}

    def load_optimizer_state_dict(self, model: Any, optimizer: Any, state: dict[str, Any]) -> None:
        """Load :meth:`optimizer_state_dict` output; each process keeps its shards."""
        wrapper = self._find_wrapper(model)
        if wrapper is None:
            optimizer.load_state_dict(state)
            return
        metadata = wrapper.get_shard_metadata()
        optimizer.load_state_dict(
            local_optimizer_state(
                state,
                _param_keys(wrapper, optimizer),
                _shard_shapes(wrapper),
                self._entries(wrapper),
                rank=metadata["rank"],
                world=metadata["world_size"],
            )
        )

    def _find_wrapper(self, model: Any) -> Any:
        """The XLA FSDP wrapper ``model`` is or is inside of; ``None`` if not wrapped."""
        if self._xla.is_wrapper(model):
            return model
        return self._wrappers.get(id(unwrap_model(model)))

    def _wrapper_of(self, model: Any) -> Any:
        wrapper = self._find_wrapper(model)
        if wrapper is None:
            raise ValueError(
                f"{type(model).__name__} has not been wrapped by XLA FSDP, so it has no "
                f"shards to save or load: call runtime.prepare_model(model, training=True) "
                f"(or prepare_training) first."
            )
        return wrapper

    def save_sharded_state(self, directory: str, model: Any, optimizer: Any | None = None) -> None:
        """Write this process's shards (and optimizer shards) with their metadata.

        Files: ``rank<r>-of-<n>-pytorch_model.bin`` (``{"model", "shard_metadata"}``, as
        the reference writes them) and ``rank<r>-of-<n>-optimizer.pt`` (``{"optimizer",
        "param_keys", "shard_shapes", "shard_metadata"}``). Every process calls it.
        """
        wrapper = self._wrapper_of(model)
        metadata = wrapper.get_shard_metadata()
        rank, world = self.process_index, self.num_processes
        model_state = {"model": wrapper.state_dict(), "shard_metadata": metadata}
        self._xla.save(model_state, rank_file(directory, "model", rank=rank, world=world))
        if optimizer is None:
            return
        optimizer_state = {
            "optimizer": optimizer.state_dict(),
            "param_keys": _param_keys(wrapper, optimizer),
            "shard_shapes": {key: list(shape) for key, shape in _shard_shapes(wrapper).items()},
            "shard_metadata": metadata,
        }
        self._xla.save(optimizer_state, rank_file(directory, "optimizer", rank=rank, world=world))

    def load_sharded_state(self, directory: str, model: Any, optimizer: Any | None = None) -> None:
        """Load :meth:`save_sharded_state` output, written by any number of processes.

        With as many processes as wrote them, each reads its own files; otherwise every
        process reads all of them and takes its shards of the joined tensors.

        Raises:
            FileNotFoundError: ``directory`` holds no XLA FSDP shard files (e.g. a
                checkpoint of torch's FSDP).
        """
        wrapper = self._wrapper_of(model)
        files = rank_files(directory, "model")
        if len(files) == self.num_processes:
            wrapper.load_state_dict(read_rank_file(files[self.process_index])["model"])
        else:
            gathered, buffers, _, _ = load_gathered_model(directory)
            wrapper.load_state_dict(self._local(wrapper, gathered, buffers))
        if optimizer is not None:
            self._load_optimizer_shards(directory, wrapper, optimizer)

    def _load_optimizer_shards(self, directory: str, wrapper: Any, optimizer: Any) -> None:
        files = rank_files(directory, "optimizer")
        keys = _param_keys(wrapper, optimizer)
        if len(files) == self.num_processes:
            saved = read_rank_file(files[self.process_index])
            if saved.get("param_keys", keys) == keys:
                optimizer.load_state_dict(saved["optimizer"])
                return
        entries = self._entries(wrapper)
        gathered = load_gathered_optimizer(directory, entries)
        self.load_optimizer_state_dict(wrapper, optimizer, gathered)

    def __repr__(self) -> str:
        return (
            f"XlaFSDPRuntime(device={self._device}, process={self.process_index}/"
            f"{self.num_processes}, mixed_precision={self._mixed_precision!r})"
        )


# ------------------------------------------------------------------------- helpers
def _buffers_to(model: nn.Module, device: torch.device) -> None:
    """Move ``model``'s buffers to ``device`` before it is wrapped.

    The wrapper casts floating buffers to ``buffer_dtype`` and notes their dtype on the
    cast tensor for its shard metadata (``buffer_info``, which consolidation uses to give
    buffers their dtype back); moving a CPU buffer to the device afterwards drops that
    note (seen with torch_xla 2.9), so the buffers travel first.
    """
    for module in model.modules():
        for name, buffer in module.named_buffers(recurse=False):
            if buffer is not None and buffer.device != device:
                module._buffers[name] = buffer.to(device)


def _shard_shapes(wrapper: Any) -> dict[str, tuple[int, ...]]:
    """Shard shapes under their state-dict keys (from the parameters: no state dict)."""
    return {state_key(name): tuple(param.shape) for name, param in wrapper.named_parameters()}


def _param_keys(wrapper: Any, optimizer: Any) -> list[str]:
    """The state-dict key of each parameter the optimizer numbers, in its order."""
    keys = {id(param): state_key(name) for name, param in wrapper.named_parameters()}
    try:
        return [keys[id(param)] for group in optimizer.param_groups for param in group["params"]]
    except KeyError:
        raise ValueError(
            "The optimizer holds a tensor that is not a shard of the XLA FSDP model; build it "
            "on the wrapped model's parameters."
        ) from None
