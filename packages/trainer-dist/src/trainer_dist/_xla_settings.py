"""XLA FSDP's ``fsdp`` words and ``fsdp_config`` keys, checked and translated without torch_xla.

``fsdp_config['xla']=True`` asks for PyTorch/XLA's ``XlaFullyShardedDataParallel``
(TPUs) instead of torch's FSDP. Everything that can be decided from the arguments and the
model alone is decided here, before torch_xla is imported and before any XLA device is
touched, so that a wrong setting fails at once with a message that says what to change:

* the ``fsdp`` words: ``full_shard`` (parameters resharded after each forward) or
  ``shard_grad_op`` (kept gathered until backward: ``reshard_after_forward=False``), plus
  ``auto_wrap``; XLA FSDP has no hybrid, no-shard or CPU-offload mode, so those words are
  refused;
* ``xla_fsdp_settings``: keyword arguments of ``XlaFullyShardedDataParallel``, passed
  through, with dtype names (``"bfloat16"``) turned into torch dtypes as the reference
  does for ``compute_dtype`` and ``buffer_dtype``;
* the auto-wrap policy: size-based (``min_num_params``) or by layer class
  (``transformer_layer_cls_to_wrap``, defaulting to the model's ``_no_split_modules``),
  with class names resolved against the model's modules;
* ``xla_fsdp_grad_ckpt``: gradient checkpointing of each auto-wrapped layer, which needs
  an auto-wrap policy;
* ``xla_fsdp_v2`` (SPMD-based FSDPv2) is refused: this runtime implements FSDPv1;
* ``bf16=True`` becomes the wrapper's ``compute_dtype`` (:func:`precision_options`);
  fp16, half-precision full evaluation and ``torch_compile`` are refused
  (:func:`refuse_unsupported_options`), and so are replica layouts the Trainer cannot
  train with (:func:`check_replicas`, given what torch_xla reports).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from trainer_args import fsdp_flag
from trainer_dist._fsdp_settings import option_words, parse_fsdp, unprefixed

logger = logging.getLogger(__name__)

XLA_STRATEGIES = ("full_shard", "shard_grad_op")
"""The ``fsdp`` sharding words XLA FSDP implements."""

_REFUSED_WORDS = {
    "hybrid_shard": "XLA FSDP shards over all devices; it has no hybrid (per-node) sharding",
    "hybrid_shard_zero2": "XLA FSDP shards over all devices; it has no hybrid (per-node) sharding",
    "no_shard": "XLA FSDP always shards; for plain data parallelism unset fsdp_config['xla']",
    "offload": "XLA FSDP keeps parameters on the XLA device; it has no CPU offload",
}

_XLA_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
}
_DTYPE_OPTIONS = ("compute_dtype", "buffer_dtype")

_SET_BY_RUNTIME = {
    "module": "the runtime passes the model",
    "auto_wrap_policy": (
        "set fsdp_config['min_num_params'] or fsdp_config['transformer_layer_cls_to_wrap']"
    ),
    "auto_wrapper_callable": "set fsdp_config['xla_fsdp_grad_ckpt']=True to checkpoint layers",
    "sharding_groups": "it shards over all processes (mixing FSDP with model parallelism "
    "through sharding groups is not supported)",
    "sharding_rank": "it shards over all processes, each process's rank being its ordinal",
    "sharding_world_size": "it shards over all processes",
}

_GPU_FSDP_KEYS = (
    "backward_prefetch",
    "forward_prefetch",
    "limit_all_gathers",
    "sync_module_states",
    "use_orig_params",
    "cpu_ram_efficient_loading",
)
"""``fsdp_config`` keys of torch's FSDP that XLA FSDP has no equivalent for (ignored)."""


@dataclass(frozen=True)
class XlaFSDPSettings:
    """What ``XlaFullyShardedDataParallel`` is asked to do.

    Attributes:
        wrapper_options: keyword arguments for ``XlaFullyShardedDataParallel`` (from
            ``xla_fsdp_settings``, dtypes translated; ``reshard_after_forward=False`` for
            ``shard_grad_op``). The auto-wrap arguments are not among them.
        min_num_params: size-based auto-wrap threshold (0: off).
        layer_classes: class names to wrap as separate units; ``None`` means the model's
            ``_no_split_modules``.
        grad_ckpt: wrap each auto-wrapped layer in ``checkpoint_module`` as well.
        checkpoint_format: ``"sharded"`` (each process writes its shards and their
            metadata, as the reference does; the default) or ``"full"``
            (``state_dict_type='FULL_STATE_DICT'``: full weights gathered for the main
            process).
        ignored_keys: ``fsdp_config`` keys of torch's FSDP that XLA FSDP ignores.
    """

    wrapper_options: dict[str, Any] = field(default_factory=dict)
    min_num_params: int = 0
    layer_classes: tuple[str, ...] | None = None
    grad_ckpt: bool = False
    checkpoint_format: Literal["full", "sharded"] = "sharded"
    ignored_keys: tuple[str, ...] = ()


def wants_xla(fsdp_config: Mapping[str, Any] | None) -> bool:
    """Whether ``fsdp_config`` turns XLA FSDP on (``xla`` / ``fsdp_xla`` true)."""
    config = fsdp_config or {}
    return any(_is_true(config, key) for key in ("xla", "fsdp_xla"))


def _is_true(config: Mapping[str, Any], key: str) -> bool:
    """``config[key]`` read as the other FSDP flags are (yes/on/1 ... too); a value no
    flag reading accepts counts as false here, and :func:`parse_fsdp` reports it."""
    value = config.get(key)
    if value is None:
        return False
    try:
        return fsdp_flag(key, value)
    except ValueError:
        return False


def parse_xla_fsdp(fsdp: Any, fsdp_config: Mapping[str, Any] | None) -> XlaFSDPSettings:
    """Check ``fsdp`` / ``fsdp_config`` for XLA FSDP and return the settings they describe.

    The checks torch's FSDP shares (unknown keys, flag types, both auto-wrap policies at
    once) are :func:`trainer_dist.parse_fsdp`'s; keys may carry the ``fsdp_`` prefix.

    Raises:
        ValueError: ``fsdp`` is empty, or names a mode XLA FSDP lacks (hybrid, no_shard,
            offload); ``activation_checkpointing`` instead of ``xla_fsdp_grad_ckpt``; an
            ``xla_fsdp_settings`` key the runtime sets itself, or a dtype XLA FSDP cannot
            compute in; ``reshard_after_forward=True`` with ``shard_grad_op``.
        NotImplementedError: ``xla_fsdp_v2=True`` (SPMD FSDPv2).
    """
    words = option_words(fsdp)
    base = parse_fsdp(words, dict(fsdp_config or {}))
    config = unprefixed(fsdp_config)
    _check_words(words)
    if _is_true(config, "xla_fsdp_v2"):
        raise NotImplementedError(
            "fsdp_config['xla_fsdp_v2']=True asks for SPMD-based FSDPv2, which this runtime "
            "does not implement. Set xla_fsdp_v2=False to train with XlaFullyShardedDataParallel "
            "(FSDPv1, one process per XLA device)."
        )
    if base.activation_checkpointing:
        raise ValueError(
            "fsdp_config['activation_checkpointing']=True is torch FSDP's option; with "
            "fsdp_config['xla']=True set fsdp_config['xla_fsdp_grad_ckpt']=True instead, "
            "which checkpoints each auto-wrapped layer."
        )
    options = translate_wrapper_options(config.get("xla_fsdp_settings") or {})
    _apply_strategy(options, base.strategy)
    return XlaFSDPSettings(
        wrapper_options=options,
        min_num_params=base.min_num_params,
        layer_classes=base.layer_classes,
        grad_ckpt=_is_true(config, "xla_fsdp_grad_ckpt"),
        checkpoint_format=_checkpoint_format(config.get("state_dict_type")),
        ignored_keys=tuple(key for key in _GPU_FSDP_KEYS if key in config),
    )


def _check_words(words: list[str]) -> None:
    if not words:
        raise ValueError(
            "fsdp_config['xla']=True configures XLA FSDP, which fsdp turns on, but fsdp is "
            "empty. Set fsdp='full_shard' (or 'shard_grad_op'), or remove "
            "fsdp_config['xla'] to train without sharding."
        )
    for word in words:
        if word in _REFUSED_WORDS:
            raise ValueError(
                f"fsdp={' '.join(words)!r} with fsdp_config['xla']=True: {word!r} is not "
                f"available ({_REFUSED_WORDS[word]}). Use one of {list(XLA_STRATEGIES)}, "
                f"optionally with 'auto_wrap'."
            )


def _apply_strategy(options: dict[str, Any], strategy: str) -> None:
    if strategy != "shard_grad_op":
        return
    if options.get("reshard_after_forward", False) is not False:
        raise ValueError(
            "fsdp='shard_grad_op' keeps parameters gathered between forward and backward, "
            "but fsdp_config['xla_fsdp_settings'] sets reshard_after_forward="
            f"{options['reshard_after_forward']!r}. Use fsdp='full_shard' to reshard after "
            "forward, or drop reshard_after_forward."
        )
    options["reshard_after_forward"] = False


def _checkpoint_format(state_dict_type: Any) -> Literal["full", "sharded"]:
    if state_dict_type is None:
        return "sharded"
    return "full" if str(state_dict_type).upper() == "FULL_STATE_DICT" else "sharded"


def translate_wrapper_options(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``xla_fsdp_settings`` as keyword arguments for ``XlaFullyShardedDataParallel``.

    The mapping is copied (the arguments stay serialisable); ``compute_dtype`` and
    ``buffer_dtype`` given as names (``"bfloat16"``, ``"torch.float16"``, ``"bf16"``)
    become torch dtypes. Whether the other keys exist is checked against the installed
    torch_xla when the model is wrapped (:func:`check_wrapper_options`).

    Raises:
        ValueError: a key the runtime sets itself (``module``, ``auto_wrap_policy``,
            ``auto_wrapper_callable``), or a dtype other than float32, bfloat16, float16.
    """
    options = dict(settings)
    for key, reason in _SET_BY_RUNTIME.items():
        if key in options:
            raise ValueError(
                f"fsdp_config['xla_fsdp_settings'] sets {key!r}, which the runtime sets "
                f"itself: {reason}. Remove {key!r} from xla_fsdp_settings."
            )
    for key in _DTYPE_OPTIONS:
        if key in options:
            options[key] = _xla_dtype(key, options[key])
    return options


def _xla_dtype(key: str, value: Any) -> torch.dtype:
    dtype: Any = value
    if isinstance(value, str):
        dtype = _XLA_DTYPES.get(value.strip().lower().removeprefix("torch."))
    if not isinstance(dtype, torch.dtype) or dtype not in _XLA_DTYPES.values():
        raise ValueError(
            f"fsdp_config['xla_fsdp_settings'][{key!r}]={value!r} is not a dtype XLA FSDP "
            f"can use; give one of 'float32', 'bfloat16', 'float16' (or a torch.dtype)."
        )
    return dtype


def precision_options(options: Mapping[str, Any], mixed_precision: str) -> dict[str, Any]:
    """The wrapper options with ``bf16=True`` expressed as XLA FSDP's ``compute_dtype``.

    Under bf16 the wrapper all-gathers the fp32 shards as bf16 and computes in bf16 (the
    mixed precision XLA FSDP implements), rather than running under
    ``torch.autocast("xla")``: torch's autocast policy for the ``xla`` device casts
    matmuls but not ``scaled_dot_product_attention``, so models that use SDPA
    (transformers' default attention) fail there with mixed query/value dtypes.

    Raises:
        ValueError: ``bf16=True`` with ``xla_fsdp_settings['compute_dtype']`` set to
            another dtype.
    """
    result = dict(options)
    if mixed_precision != "bf16":
        return result
    chosen = result.setdefault("compute_dtype", torch.bfloat16)
    if chosen != torch.bfloat16:
        raise ValueError(
            f"bf16=True asks XLA FSDP to compute in bfloat16, but "
            f"fsdp_config['xla_fsdp_settings']['compute_dtype'] is {chosen}. Drop one of "
            f"them: bf16=True alone computes in bfloat16, compute_dtype alone sets the dtype."
        )
    return result


def check_wrapper_options(options: Mapping[str, Any], accepted: Collection[str]) -> None:
    """Refuse ``options`` the installed ``XlaFullyShardedDataParallel`` does not take.

    Args:
        options: the settings' ``wrapper_options``.
        accepted: the wrapper's keyword parameter names (from its signature).

    Raises:
        ValueError: naming the unknown keys and listing the accepted ones.
    """
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        public = sorted(
            name for name in accepted if not name.startswith("_") and name not in _SET_BY_RUNTIME
        )
        raise ValueError(
            f"fsdp_config['xla_fsdp_settings'] has key(s) {unknown} that the installed "
            f"XlaFullyShardedDataParallel does not accept; it accepts {public}."
        )


@dataclass(frozen=True)
class WrapPolicy:
    """Which submodules become XLA FSDP units of their own (the rest stays in the root).

    Exactly one of the two is set: ``min_num_params`` (size-based: a submodule holding at
    least this many parameters not yet wrapped) or ``layer_classes`` (every instance of
    these classes).
    """

    min_num_params: int = 0
    layer_classes: tuple[type[nn.Module], ...] = ()


def resolve_wrap_policy(model: nn.Module, settings: XlaFSDPSettings) -> WrapPolicy | None:
    """The auto-wrap policy for ``model``, or ``None`` when only the root is wrapped.

    As in the reference, ``min_num_params`` wins; otherwise the layer class names are
    ``transformer_layer_cls_to_wrap`` or, when unset, the model's ``_no_split_modules``.
    Names are case-sensitive class names of modules inside ``model``.

    Raises:
        ValueError: a class name no module of ``model`` has.
    """
    if settings.min_num_params > 0:
        return WrapPolicy(min_num_params=settings.min_num_params)
    names = settings.layer_classes
    if names is None:
        names = tuple(getattr(model, "_no_split_modules", None) or ())
    if not names:
        return None
    classes: dict[str, list[type[nn.Module]]] = {}
    for module in model.modules():
        bucket = classes.setdefault(type(module).__name__, [])
        if type(module) not in bucket:
            bucket.append(type(module))
    missing = [name for name in names if name not in classes]
    if missing:
        raise ValueError(
            f"fsdp_config['transformer_layer_cls_to_wrap'] (or the model's _no_split_modules) "
            f"names {missing}, but {type(model).__name__} has no module of "
            f"{'that class' if len(missing) == 1 else 'those classes'}. Its module classes "
            f"are {sorted(classes)}."
        )
    return WrapPolicy(layer_classes=tuple(cls for name in names for cls in classes[name]))


def check_grad_ckpt(policy: WrapPolicy | None, settings: XlaFSDPSettings, model: nn.Module) -> None:
    """Refuse ``xla_fsdp_grad_ckpt`` when no layer is auto-wrapped (nothing to checkpoint).

    Raises:
        ValueError: ``settings.grad_ckpt`` without an auto-wrap policy.
    """
    if settings.grad_ckpt and policy is None:
        raise ValueError(
            f"fsdp_config['xla_fsdp_grad_ckpt']=True checkpoints each auto-wrapped layer, but "
            f"no layer of {type(model).__name__} is auto-wrapped: set "
            f"fsdp_config['transformer_layer_cls_to_wrap'] (e.g. the class of its transformer "
            f"blocks) or fsdp_config['min_num_params'], or give the model _no_split_modules."
        )


def check_fp32_parameters(model: nn.Module) -> None:
    """Refuse a model with non-fp32 parameters: XLA FSDP shards fp32 parameters only.

    Raises:
        ValueError: naming (up to five of) the offending parameters and their dtypes.
    """
    offending = [
        f"{name} ({param.dtype})"
        for name, param in model.named_parameters()
        if param.dtype != torch.float32
    ]
    if offending:
        raise ValueError(
            f"XLA FSDP shards float32 parameters only, but {type(model).__name__} has "
            f"{len(offending)} parameter(s) of another dtype: {offending[:5]}. Load the model "
            f"in float32 (model.float()) and compute in bf16 with "
            f"fsdp_config['xla_fsdp_settings']={{'compute_dtype': 'bfloat16'}}."
        )


def disable_cache_for_checkpointing(model: nn.Module) -> None:
    """Turn off a transformers model's KV cache, which gradient checkpointing cannot use.

    The reference does the same (with a warning) when ``xla_fsdp_grad_ckpt`` is on.
    """
    config = getattr(model, "config", None)
    if getattr(config, "use_cache", False):
        logger.warning(
            "use_cache=True is incompatible with xla_fsdp_grad_ckpt; setting "
            "model.config.use_cache=False."
        )
        config.use_cache = False


def refuse_unsupported_options(
    *, mixed_precision: str, fp16_full_eval: bool, bf16_full_eval: bool, torch_compile: bool
) -> None:
    """Refuse options this runtime cannot honour, before torch_xla is touched.

    Raises:
        ValueError: fp16 (XLA devices train in bf16 or fp32 here), a half-precision
            full evaluation (it would cast the sharded model, which must stay fp32), or
            ``torch_compile``.
    """
    if mixed_precision == "fp16" or fp16_full_eval:
        raise ValueError(
            "fp16 is not supported with XLA FSDP: TPUs compute in bf16. Use bf16=True, or "
            "fsdp_config['xla_fsdp_settings']={'compute_dtype': 'bfloat16'}, or train in fp32."
        )
    if bf16_full_eval:
        raise ValueError(
            "bf16_full_eval=True would cast the model to bf16, but XLA FSDP shards fp32 "
            "parameters only. Evaluate in bf16 with fsdp_config['xla_fsdp_settings']="
            "{'compute_dtype': 'bfloat16'} (or bf16=True) instead."
        )
    if torch_compile:
        raise ValueError(
            "torch_compile is not supported with XLA FSDP by this runtime (XLA compiles the "
            "lazy graph itself); unset torch_compile, torch_compile_backend and "
            "torch_compile_mode."
        )


def check_replicas(world_size: int, launched: int, devices_per_process: int) -> None:
    """Refuse replica layouts this runtime cannot train with, before any group starts.

    Args:
        world_size: XLA replicas training together (``xr.world_size()``).
        launched: processes the launcher announced (``WORLD_SIZE``; 1 without one).
        devices_per_process: XLA devices this process drives.

    Raises:
        RuntimeError: the launcher started more processes than XLA joined (PJRT's CPU
            client, for one, cannot join processes: each would train alone and they
            would overwrite each other's checkpoints), or several replicas run as
            threads of this process (the Trainer, torch.distributed and accelerate
            keep one rank per process).
    """
    if launched > world_size:
        raise RuntimeError(
            f"The launcher started {launched} processes (WORLD_SIZE={launched}), but "
            f"torch_xla joined them into {world_size} replica(s), so each would train on its "
            f"own and overwrite the others' checkpoints. PJRT's CPU client "
            f"(PJRT_DEVICE=CPU) has no collectives across processes: train in one process "
            f"there. On TPUs and GPUs, start one process per device with torch_xla.launch, "
            f"xmp.spawn, or torchrun with PJRT_DEVICE set to the accelerator."
        )
    if world_size > 1 and devices_per_process > 1:
        raise RuntimeError(
            f"This process drives {devices_per_process} of the {world_size} XLA replicas as "
            f"threads (TPU v2/v3, or CPU_NUM_DEVICES>1 under xmp.spawn), but XLA FSDP "
            f"training here needs one process per replica: torch.distributed, accelerate "
            f"and the Trainer keep one rank per process. Run one device per process "
            f"(TPU v4 and later), or unset CPU_NUM_DEVICES and train in one process."
        )
