"""``trainer.accelerator``: the members of accelerate's ``Accelerator`` that Trainer
subclasses use, answered by our runtime.

TRL, sentence-transformers and many research repositories call ``self.accelerator``
inside ``compute_loss``, ``evaluate`` or ``save_model``: ``unwrap_model``,
``gather_for_metrics``, ``is_main_process``, ``reduce``, ``autocast``, ``backward``,
``state.deepspeed_plugin`` and so on. A second, real ``Accelerator`` would keep its own
view of mixed precision, gradient accumulation and DeepSpeed, and could disagree with the
runtime that actually trains. This adapter has no state of its own: every member asks
the runtime (the same device, process group, wrapper, autocast and collectives the loop
uses). Members it does not have raise an ``AttributeError`` that names what to use.

Where accelerate's defaults differ from the runtime's, the adapter keeps accelerate's:
``reduce`` sums by default, ``pad_across_processes`` pads with 0, and
``gradient_accumulation_steps`` is 1 because the Trainer (as transformers 5's does)
scales the loss for accumulation itself, so ``backward`` must not scale it again (and
``accumulate`` lets every step synchronise). The Trainer reports through callbacks
(``report_to``), never through accelerate's trackers, as transformers' Trainer does: its
``Accelerator`` has no trackers either, so ``trackers`` is empty, ``log`` logs nowhere
and ``get_tracker`` gives accelerate's blank tracker, as there.
"""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from trainer_dist._batches import holds_tensor
from trainer_dist._models import unwrap_model as _unwrap_wrappers

if TYPE_CHECKING:
    from accelerate.utils import DistributedType

# Device type of a multi-process run -> accelerate's distributed type for it.
_MULTI_TYPES = {
    "cuda": "MULTI_GPU",
    "cpu": "MULTI_CPU",
    "xpu": "MULTI_XPU",
    "npu": "MULTI_NPU",
    "mlu": "MULTI_MLU",
    "hpu": "MULTI_HPU",
}

# Runtimes whose class fixes the distributed type, by the module defining them (looked
# up only once that module is imported: a runtime of it cannot exist before).
_RUNTIME_KINDS = (
    ("trainer_dist._deepspeed", "DeepSpeedRuntime", "DEEPSPEED"),
    ("trainer_dist._xla", "XlaFSDPRuntime", "XLA"),
    ("trainer_dist._fsdp", "FSDPRuntime", "FSDP"),
)

# Process-only helpers of accelerate's PartialState that are safe to hand over to it.
_PARTIAL_STATE_MEMBERS = frozenset(
    {"split_between_processes", "on_main_process", "on_local_main_process", "on_process"}
)


@dataclass(frozen=True)
class DeepSpeedPluginView:
    """What subclasses read of ``accelerator.state.deepspeed_plugin`` (TRL builds its
    reference model's engine from ``deepspeed_config``): the runtime's resolved config."""

    zero_stage: int
    deepspeed_config: dict[str, Any] = field(default_factory=dict)

    @property
    def hf_ds_config(self) -> Any:
        """accelerate's ``HfDeepSpeedConfig`` over the resolved config (``.config``,
        ``is_zero3()``, ``get_value(...)``), as TRL-style code queries it."""
        from accelerate.utils.deepspeed import HfDeepSpeedConfig

        return HfDeepSpeedConfig(self.deepspeed_config)


@dataclass(frozen=True)
class FSDPPluginView:
    """``accelerator.state.fsdp_plugin`` under our FSDP runtime: torch's ``fully_shard``."""

    fsdp_version: int = 2


class FacadeState:
    """``accelerator.state``: the process facts and the plugins, read from the facade."""

    def __init__(self, facade: AcceleratorFacade) -> None:
        self._facade = facade

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in {"state", "prepare"}:
            raise AttributeError(name)
        return getattr(self._facade, name)


class AcceleratorFacade:
    """The commonly used members of ``accelerate.Accelerator`` over a
    :class:`trainer_core.Runtime` (see the module doc).

    Args:
        runtime: the Trainer's runtime; every member asks it.
    """

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.sync_gradients = True
        self.state = FacadeState(self)

    # ------------------------------------------------------------------ process facts
    @property
    def device(self) -> torch.device:
        """The device this process computes on."""
        return self.runtime.device

    @property
    def process_index(self) -> int:
        """Global rank."""
        return self.runtime.process_index

    @property
    def local_process_index(self) -> int:
        """Rank on this node."""
        return self.runtime.local_process_index

    @property
    def num_processes(self) -> int:
        """Processes training together."""
        return self.runtime.num_processes

    @property
    def is_main_process(self) -> bool:
        """Whether this is global rank 0."""
        return self.runtime.is_main_process

    @property
    def is_local_main_process(self) -> bool:
        """Whether this is rank 0 of its node."""
        return self.runtime.is_local_main_process

    @property
    def is_last_process(self) -> bool:
        """Whether this is the highest global rank."""
        return self.process_index == self.num_processes - 1

    @property
    def use_distributed(self) -> bool:
        """Whether several processes train together."""
        return self.num_processes > 1

    @property
    def mixed_precision(self) -> str:
        """``"no"``, ``"fp16"`` or ``"bf16"``: the autocast the runtime applies."""
        return str(self.runtime.mixed_precision)

    @property
    def gradient_accumulation_steps(self) -> int:
        """1: the Trainer scales the loss for accumulation itself (see module doc)."""
        return 1

    @property
    def distributed_type(self) -> DistributedType:
        """accelerate's name for how the runtime trains (``DEEPSPEED``, ``FSDP``,
        ``MULTI_GPU``, ``MULTI_CPU``, ``XLA`` or ``NO``)."""
        from accelerate.utils import DistributedType

        kind = _runtime_kind(self.runtime)
        if kind is None and self.num_processes > 1:
            kind = _MULTI_TYPES.get(self.device.type, "MULTI_GPU")
        return DistributedType[kind or "NO"]

    @property
    def is_fsdp2(self) -> bool:
        """Whether the model is sharded with FSDP (always torch's ``fully_shard`` here)."""
        return _runtime_kind(self.runtime) == "FSDP"

    @property
    def deepspeed_plugin(self) -> DeepSpeedPluginView | None:
        """The DeepSpeed settings of a DeepSpeed run, else None."""
        if _runtime_kind(self.runtime) != "DEEPSPEED":
            return None
        config = self.runtime.config
        return DeepSpeedPluginView(self.runtime.zero_stage, dict(config.to_dict()))

    @property
    def fsdp_plugin(self) -> FSDPPluginView | None:
        """The FSDP settings of an FSDP run, else None."""
        return FSDPPluginView() if self.is_fsdp2 else None

    # ------------------------------------------------------------------ models
    def unwrap_model(
        self, model: Any, keep_fp32_wrapper: bool = True, keep_torch_compile: bool = True
    ) -> Any:
        """The user's module inside what the runtime wrapped it in (DDP, a DeepSpeed
        engine, ``torch.compile``; FSDP2 shards in place, so the module is the model).
        The keyword arguments are accepted for accelerate's signature."""
        del keep_fp32_wrapper, keep_torch_compile
        return _unwrap_wrappers(self.runtime.unwrap_model(model))

    def get_state_dict(self, model: Any, unwrap: bool = True) -> dict[str, Any]:
        """The model's full state dict, gathered from shards when the runtime shards it
        (a collective under FSDP and ZeRO-3: every process calls it)."""
        del unwrap
        return self.runtime.state_dict(model)

    def prepare_model(
        self, model: Any, device_placement: bool | None = None, evaluation_mode: bool = False
    ) -> Any:
        """Place and wrap ``model`` as the runtime does; ``evaluation_mode`` models are
        placed only (no DDP wrapper), as accelerate does."""
        del device_placement
        return self.runtime.prepare_model(model, training=not evaluation_mode)

    def prepare(self, *objects: Any, device_placement: Any = None) -> Any:
        """Prepare models, optimizers, schedulers and data loaders through the runtime;
        anything else comes back unchanged. One object in, one out, as accelerate does."""
        del device_placement
        prepared = tuple(self._prepare_one(item) for item in objects)
        return prepared[0] if len(prepared) == 1 else prepared

    def _prepare_one(self, item: Any) -> Any:
        if isinstance(item, torch.nn.Module):
            return self.runtime.prepare_model(item, training=item.training)
        if isinstance(item, torch.optim.Optimizer):
            return self.runtime.prepare_optimizer(item)
        if isinstance(item, torch.optim.lr_scheduler.LRScheduler):
            return self.runtime.prepare_scheduler(item)
        if isinstance(item, torch.utils.data.DataLoader):
            return self.runtime.prepare_dataloader(item)
        return item

    # ------------------------------------------------------------------ step
    def autocast(self, autocast_handler: Any = None) -> contextlib.AbstractContextManager[Any]:
        """The runtime's mixed-precision context (``autocast_handler`` is not supported:
        the precision is the run's)."""
        if autocast_handler is not None:
            raise ValueError(
                "accelerator.autocast(autocast_handler=...) is not supported: the Trainer's "
                "runtime applies the run's precision (set bf16/fp16 in TrainingArguments)."
            )
        return self.runtime.autocast()

    def backward(self, loss: torch.Tensor, **kwargs: Any) -> None:
        """Back-propagate through the runtime (fp16 loss scaling, DeepSpeed's engine); the
        loss is not divided for accumulation (see :attr:`gradient_accumulation_steps`).
        accelerate's keyword arguments (``scale_wrt_gas``, ...) are accepted."""
        del kwargs
        self.runtime.backward(loss)

    def clip_grad_norm_(self, parameters: Any, max_norm: float, norm_type: float = 2) -> Any:
        """Unscale (fp16) and clip as the runtime does; only the 2-norm is supported."""
        if norm_type != 2:
            raise ValueError(f"clip_grad_norm_ supports norm_type=2 only, got {norm_type!r}.")
        return self.runtime.clip_grad_norm(parameters, max_norm)

    @contextlib.contextmanager
    def no_sync(self, model: Any) -> Iterator[None]:
        """Skip the gradient reduction of backward passes inside the block, as the
        runtime does on the micro-steps of an accumulation window (``model`` as the
        runtime prepared it; nothing happens for a model it does not wrap)."""
        with self.runtime.no_sync(model):
            yield

    @contextlib.contextmanager
    def accumulate(self, *models: Any) -> Iterator[None]:
        """accelerate's accumulation block: with :attr:`gradient_accumulation_steps` 1
        every step synchronises, so it neither delays reductions nor changes the loss
        (the Trainer accumulates itself)."""
        del models
        yield

    # ------------------------------------------------------------------ collectives
    def gather(self, tensor: Any) -> Any:
        """Concatenate ``tensor`` (or each tensor of a nested structure) from every
        process along dim 0 (a collective)."""
        return self.runtime.gather(tensor)

    def gather_for_metrics(self, input_data: Any, use_gather_object: bool = False) -> Any:
        """Gather for metrics: tensors as :meth:`gather` (the runtime drops the rows that
        padded the last evaluation step); anything else (strings, lists of objects) is
        collected as objects, lists concatenated in rank order."""
        if not use_gather_object and holds_tensor(input_data):
            return self.runtime.gather(input_data)
        if isinstance(input_data, torch.Tensor) and input_data.dim() > 0:
            input_data = list(input_data)  # as accelerate: one object a row
        return self._gather_objects(input_data, drop_padding=True)

    def gather_object(self, obj: Any) -> list[Any]:
        """Every process's picklable ``obj`` in rank order; lists are concatenated (every
        item kept, as accelerate's: :meth:`gather_for_metrics` drops the padding)."""
        return self._gather_objects(obj, drop_padding=False)

    def _gather_objects(self, obj: Any, *, drop_padding: bool) -> list[Any]:
        if self.num_processes == 1:
            return list(obj) if isinstance(obj, list) else [obj]
        gather_objects = getattr(self.runtime, "gather_objects", None)
        if isinstance(obj, list) and callable(gather_objects):
            return list(gather_objects(obj, drop_padding=drop_padding))
        parts = [self.runtime.broadcast_object(obj, src=rank) for rank in range(self.num_processes)]
        if all(isinstance(part, list) for part in parts):
            return [item for part in parts for item in part]
        return parts

    def pad_across_processes(
        self, tensor: Any, dim: int = 0, pad_index: int = 0, pad_first: bool = False
    ) -> Any:
        """Pad along ``dim`` with ``pad_index`` to the largest size among processes."""
        if pad_first:
            raise ValueError(
                "pad_across_processes(pad_first=True) is not supported; pad at the end "
                "(the default) or flip the tensor along dim before and after."
            )
        return self.runtime.pad_across_processes(tensor, dim=dim, pad_index=pad_index)

    def reduce(self, tensor: Any, reduction: str = "sum", scale: float = 1.0) -> Any:
        """All-reduce ``tensor`` with ``reduction`` ("sum", "mean", "max", "min"; sum
        by default, as accelerate's), then multiply by ``scale``."""
        reduced = self.runtime.reduce(tensor, reduction)
        return reduced if scale == 1.0 else _scale(reduced, scale)

    def wait_for_everyone(self) -> None:
        """Barrier across all processes."""
        self.runtime.wait_for_everyone()

    @contextlib.contextmanager
    def main_process_first(self) -> Iterator[None]:
        """Run the block on global rank 0 first; the others wait, then run it."""
        with self.runtime.main_process_first(local=False):
            yield

    @contextlib.contextmanager
    def local_main_process_first(self) -> Iterator[None]:
        """Run the block on each node's rank 0 first; the others wait, then run it."""
        with self.runtime.main_process_first(local=True):
            yield

    # ------------------------------------------------------------------ utilities
    def print(self, *args: Any, **kwargs: Any) -> None:
        """``print`` on each node's main process only."""
        if self.is_local_main_process:
            print(*args, **kwargs)

    def save(self, obj: Any, f: Any, safe_serialization: bool = False) -> None:
        """Write ``obj`` to ``f`` on the main process only (safetensors for a state dict
        when ``safe_serialization``)."""
        if not self.is_main_process:
            return
        if safe_serialization:
            from safetensors.torch import save_file

            save_file(obj, f, metadata={"format": "pt"})
        else:
            torch.save(obj, f)

    @property
    def trackers(self) -> list[Any]:
        """None: the Trainer reports through callbacks (see the module doc)."""
        return []

    def get_tracker(self, name: str, unwrap: bool = False) -> Any:
        """accelerate's blank tracker (its answer when it holds none): calls on it do
        nothing. Report through ``report_to`` and ``Trainer.log`` instead."""
        del name, unwrap
        from accelerate.tracking import GeneralTracker

        return GeneralTracker(_blank=True)

    def log(self, values: dict[str, Any], step: int | None = None, log_kwargs: Any = None) -> None:
        """Logs to every tracker of accelerate's: there are none (``Trainer.log`` reaches
        the ``report_to`` integrations)."""
        del values, step, log_kwargs

    def end_training(self) -> None:
        """Leave the process group at the end of a script, as accelerate does once its
        trackers (none here) are finished. Every collective afterwards fails, so this
        comes after the last ``train``/``evaluate``/``save_model``/``push_to_hub``."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()

    def free_memory(self, *objects: Any) -> list[None]:
        """Collect garbage and empty the device cache; returns None for each object given
        (rebind them: ``a, b = accelerator.free_memory(a, b)``)."""
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return [None] * len(objects)

    def clear(self, *objects: Any) -> list[None]:
        """accelerate's alias of :meth:`free_memory`."""
        return self.free_memory(*objects)

    def __getattr__(self, name: str) -> Any:
        if name in _PARTIAL_STATE_MEMBERS:
            from accelerate import PartialState

            return getattr(PartialState(), name)
        raise AttributeError(
            f"trainer.accelerator has no {name!r}: it is this Trainer's adapter over its "
            f"runtime, not an accelerate.Accelerator. Use trainer.runtime (the device, "
            f"process group, wrapping, precision and collectives) or trainer.args."
            f"distributed_state (accelerate's PartialState) instead."
        )

    def __repr__(self) -> str:
        return f"AcceleratorFacade({self.runtime!r})"


def _runtime_kind(runtime: Any) -> str | None:
    """The name of the distributed type the runtime's class fixes (None: decided by
    the number of processes)."""
    for module_name, class_name, kind in _RUNTIME_KINDS:
        module = sys.modules.get(module_name)
        if module is not None and isinstance(runtime, getattr(module, class_name)):
            return kind
    return None


def _scale(data: Any, scale: float) -> Any:
    from trainer_dist._collectives import apply_nested

    return apply_nested(data, lambda tensor: tensor * scale)
