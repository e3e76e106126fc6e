"""The runtime for fully sharded data parallel training with torch's ``fully_shard`` (FSDP2).

Each process holds a shard of every parameter (as a ``DTensor``), all-gathers a layer's
parameters just before using it and reduce-scatters its gradients after. accelerate's FSDP
plugin is not used: on the CPU it silently trains plain DDP instead, while ``fully_shard``
really shards there too (over gloo), so CPU runs test the same code GPU runs use.

The model is modified in place (``fully_shard`` swaps the module's class), so the module
the loop holds is both the "wrapper" and the user's module: :meth:`unwrap_model` returns
it, and its state dicts are gathered or kept sharded through
``torch.distributed.checkpoint``.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import nn

from trainer_dist._ddp import DistributedRuntime
from trainer_dist._fsdp_settings import FSDPSettings
from trainer_dist._models import compile_model, unwrap_model
from trainer_dist._single import _NULL_CONTEXT
from trainer_dist._state_io import (
    full_model_state,
    full_optimizer_state,
    load_full_model_state,
    load_full_optimizer_state,
)


def is_fully_sharded(model: Any) -> bool:
    """Whether ``fully_shard`` was applied to ``model`` (the root)."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def layers_to_wrap(model: nn.Module, settings: FSDPSettings) -> list[nn.Module]:
    """The submodules that become separate FSDP units, in forward (definition) order.

    A module holding one name of a tied parameter but not the others (an output
    projection tied to the input embedding) never becomes a unit of its own: FSDP2
    cannot shard one parameter in two units, so such modules stay in the root unit, as
    the reference's documentation promises for shared embeddings.

    Raises:
        ValueError: ``transformer_layer_cls_to_wrap`` names a class the model lacks, or
            a class whose modules hold only part of a tied parameter.
    """
    if not settings.wraps_layers:
        return []
    ties = _tied_parameter_names(model)
    if settings.min_num_params > 0:
        return _size_based_layers(model, settings.min_num_params, ties)
    names = settings.layer_classes
    if names is None:
        names = tuple(getattr(model, "_no_split_modules", None) or ())
    if not names:
        return []
    layers = [
        (p, m) for p, m in model.named_modules() if m is not model and type(m).__name__ in names
    ]
    missing = sorted(set(names) - {type(m).__name__ for _, m in layers})
    if missing:
        raise ValueError(
            f"fsdp_config['transformer_layer_cls_to_wrap'] names {missing}, which "
            f"{type(model).__name__} does not contain. Name the class of its repeated "
            f"layers instead: {_layer_class_candidates(model)}."
        )
    for path, layer in layers:
        if _splits_a_tie(path, ties):
            raise ValueError(
                f"fsdp_config['transformer_layer_cls_to_wrap'] names {type(layer).__name__}, "
                f"whose module {path!r} holds a parameter tied to one outside it; FSDP "
                f"cannot shard a tied parameter in two units. Wrap another class, or "
                f"untie the weights."
            )
    return [layer for _, layer in layers]


def _layer_class_candidates(model: nn.Module) -> list[str]:
    """The model's ``_no_split_modules``, else the classes repeated inside its lists."""
    declared = list(getattr(model, "_no_split_modules", None) or ())
    if declared:
        return declared
    repeated = {
        type(child).__name__
        for module in model.modules()
        if isinstance(module, nn.ModuleList)
        for child in module
    }
    return sorted(repeated)[:5]


def _tied_parameter_names(model: nn.Module) -> list[tuple[str, ...]]:
    """The qualified names of each parameter reachable under more than one name."""
    names: dict[int, list[str]] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(parameter), []).append(name)
    return [tuple(group) for group in names.values() if len(group) > 1]


def _splits_a_tie(path: str, ties: list[tuple[str, ...]]) -> bool:
    """Whether the module at ``path`` holds some, but not all, names of a tied parameter."""
    inside = f"{path}."
    for names in ties:
        held = [name.startswith(inside) for name in names]
        if any(held) and not all(held):
            return True
    return False


def _size_based_layers(
    model: nn.Module, min_num_params: int, ties: list[tuple[str, ...]]
) -> list[nn.Module]:
    """Post-order: a module becomes a unit once its not-yet-wrapped parameters reach the
    threshold (the policy of torch's ``size_based_auto_wrap_policy``), unless it would
    split a tied parameter; its parameters then count towards its parent."""
    chosen: list[nn.Module] = []

    def visit(module: nn.Module, path: str) -> int:
        remaining = sum(
            visit(child, f"{path}.{name}" if path else name)
            for name, child in module.named_children()
        )
        remaining += sum(p.numel() for p in module.parameters(recurse=False))
        if module is not model and remaining >= min_num_params and not _splits_a_tie(path, ties):
            chosen.append(module)
            return 0
        return remaining

    visit(model, "")
    return chosen


class FSDPRuntime(DistributedRuntime):
    """:class:`trainer_core.Runtime` that shards the model with FSDP2 (``fully_shard``).

    Strategies: ``full_shard`` (parameters resharded after forward, ZeRO-3-like),
    ``shard_grad_op`` (kept gathered between forward and backward, ZeRO-2-like),
    ``hybrid_shard`` / ``hybrid_shard_zero2`` (sharded within a node, replicated across
    nodes), ``no_shard`` (replicated everywhere: DDP through FSDP). ``offload`` keeps
    the parameter shards, their gradients and the optimizer state on the CPU
    (``CPUOffloadPolicy``, with pinned memory on CUDA). A CPU run gets the same policy:
    it saves nothing there, but FSDP2 runs it, so the CPU tests exercise the offload
    path's wrapping, training and checkpoints (the copies to and from a GPU are left to
    the GPU check).

    Args:
        settings: the parsed ``fsdp`` / ``fsdp_config`` (see :func:`parse_fsdp`).
        **kwargs: as for :class:`DistributedRuntime`.
    """

    def __init__(self, settings: FSDPSettings, **kwargs: Any) -> None:
        kwargs.pop("ddp", None)
        super().__init__(**kwargs)
        self.settings = settings

    # ----------------------------------------------------------------------- prepare
    def prepare_model(self, model: nn.Module, *, training: bool) -> nn.Module:
        """Shard ``model`` in place (once) and return it; layers first, then the root.

        The model is not moved to the device whole: ``fully_shard`` moves each unit's
        parameters there as it shards them (and, with ``offload``, puts the shards back
        on the CPU), so a model that fits a GPU only once sharded never has to fit it
        whole, as under the reference, whose Trainer leaves FSDP models where they are.
        """
        if is_fully_sharded(model):
            return model
        if self.settings.sync_module_states:
            _broadcast_from_main(model, self._device)
        layers = layers_to_wrap(model, self.settings)
        if self.settings.activation_checkpointing:
            self._checkpoint_layers(model, layers)
        options = self._shard_options()
        for layer in layers:
            self._fully_shard(layer, options)
        self._fully_shard(model, options)
        self._set_prefetch(layers)
        if self._compile:
            model = compile_model(model, **self._compile_options)
        return model

    def _fully_shard(self, module: nn.Module, options: dict[str, Any]) -> None:
        from torch.distributed.fsdp import fully_shard

        fully_shard(module, **options)

    def _shard_options(self) -> dict[str, Any]:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy

        strategy, world = self.settings.strategy, self.num_processes
        device_type = self._device.type
        if strategy in ("full_shard", "shard_grad_op"):
            mesh = init_device_mesh(device_type, (world,))
        else:
            replicas = world if strategy == "no_shard" else max(world // _local_world(), 1)
            mesh = init_device_mesh(
                device_type, (replicas, world // replicas), mesh_dim_names=("replicate", "shard")
            )
        options: dict[str, Any] = {
            "mesh": mesh,
            "reshard_after_forward": strategy in ("full_shard", "hybrid_shard"),
        }
        if self.settings.offload:
            options["offload_policy"] = CPUOffloadPolicy(pin_memory=device_type == "cuda")
        if self._amp_dtype is not None:
            # Under fp16/bf16 the gathered parameters are cast to that dtype (half the
            # all-gather traffic and memory of fp32), as accelerate's FSDP mixed precision
            # does; gradients are reduced, and the sharded master weights kept, in fp32.
            # Autocast still runs on top, keeping its fp32 ops (softmax, norms, losses).
            options["mp_policy"] = MixedPrecisionPolicy(
                param_dtype=self._amp_dtype, reduce_dtype=torch.float32
            )
        return options

    def _checkpoint_layers(self, model: nn.Module, layers: list[nn.Module]) -> None:
        # The composable checkpoint keeps parameter names unchanged (a wrapper module
        # would add a prefix to every key of the state dict); it is torch's private API.
        from torch.distributed._composable import checkpoint

        if not layers:
            raise ValueError(
                f"fsdp_config['activation_checkpointing']=True needs layers to checkpoint, but "
                f"no submodule of {type(model).__name__} is wrapped: add 'auto_wrap' to fsdp "
                f"and set fsdp_config['transformer_layer_cls_to_wrap'] (or give the model "
                f"_no_split_modules)."
            )
        for layer in layers:
            checkpoint(layer)

    def _set_prefetch(self, layers: list[nn.Module]) -> None:
        if self.settings.forward_prefetch:
            for current, following in itertools.pairwise(layers):
                current.set_modules_to_forward_prefetch([following])  # type: ignore[operator]  # an FSDPModule now
        if self.settings.backward_prefetch == "no_prefetch":
            for layer in layers:
                layer.set_modules_to_backward_prefetch([])  # type: ignore[operator]  # an FSDPModule now

    # ------------------------------------------------------------ per-step hot path
    def no_sync(self, model: Any) -> AbstractContextManager[None]:
        """Skip the gradient reduce-scatter on accumulation micro-steps."""
        if not is_fully_sharded(model):
            return _NULL_CONTEXT
        return _without_gradient_sync(model)

    def clip_grad_norm(self, parameters: Iterable[torch.Tensor], max_norm: float) -> torch.Tensor:
        """Clip sharded gradients by their global norm; return that norm (a plain tensor)."""
        from torch.distributed.tensor import DTensor

        self._steps.unscale_gradients()
        params = [p for p in parameters if p.grad is not None]
        norm = nn.utils.get_total_norm([p.grad for p in params])
        if isinstance(norm, DTensor):
            norm = norm.full_tensor()
        nn.utils.clip_grads_with_norm_(params, max_norm, norm)
        return norm

    # ----------------------------------------------------------------- state
    @property
    def shards_parameters(self) -> bool:
        """``True`` unless the strategy is ``no_shard`` (every process keeps all weights)."""
        return self.settings.strategy != "no_shard"

    @property
    def checkpoint_format(self) -> Literal["full", "sharded"]:
        """``"sharded"`` with ``state_dict_type=SHARDED_STATE_DICT``, else ``"full"``."""
        return "sharded" if self.settings.state_dict_type == "SHARDED_STATE_DICT" else "full"

    def state_dict(self, model: Any) -> dict[str, Any]:
        """The full state dict (a collective), on the CPU of every node's main process.

        Other processes get an empty dict. Every node's main process gets it so that
        ``save_on_each_node`` writes complete weights on each node.
        """
        return full_model_state(unwrap_model(model), keep=self.is_local_main_process)

    def load_state_dict(self, model: Any, state: dict[str, Any]) -> None:
        """Load a full state dict; each process keeps its shards of it."""
        load_full_model_state(unwrap_model(model), state)

    def optimizer_state_dict(self, model: Any, optimizer: Any) -> dict[str, Any]:
        """The optimizer's state keyed by parameter name (a collective), on the CPU of
        every node's main process (empty elsewhere)."""
        return full_optimizer_state(unwrap_model(model), optimizer, keep=self.is_local_main_process)

    def load_optimizer_state_dict(self, model: Any, optimizer: Any, state: dict[str, Any]) -> None:
        """Load :meth:`optimizer_state_dict` output into the sharded optimizer state."""
        load_full_optimizer_state(unwrap_model(model), optimizer, state)


def _local_world() -> int:
    import os

    return int(os.environ.get("LOCAL_WORLD_SIZE", dist.get_world_size()))


def _broadcast_from_main(model: nn.Module, device: torch.device) -> None:
    """The main process's parameters and buffers to every process, one tensor at a time
    through ``device`` (NCCL only sends GPU tensors; the model may still be on the CPU)."""
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.device == device:
                dist.broadcast(tensor.data, src=0)
                continue
            staged = tensor.data.to(device)
            dist.broadcast(staged, src=0)
            tensor.data.copy_(staged)


@contextlib.contextmanager
def _without_gradient_sync(model: Any) -> Iterator[None]:
    model.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)
