"""Old spellings that still work: each warns once and is moved onto its replacement.

After a move the old field is reset to its default, so an object rebuilt from
``to_dict()`` neither warns again nor differs from the original. When the old and the
new spelling are both given with different values, the error names both.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from trainer_args._accelerator_config import ACCELERATOR_DEFAULTS
from trainer_args._enums import DebugOption
from trainer_args._messages import conflict

# user code -> dataclass __init__ -> __post_init__ -> finalize -> apply_deprecations
# -> one mapping function -> _warn.
_STACKLEVEL = 7


def _warn(message: str) -> None:
    warnings.warn(message, FutureWarning, stacklevel=_STACKLEVEL)


def _set_once(
    args: Any, new: str, value: Any, *, old: str, default: Any, secret: bool = False
) -> None:
    """Set ``new`` to ``value`` unless the user already gave ``new`` a different value."""
    current = getattr(args, new)
    if current not in (default, value):
        raise conflict(
            old,
            "<hidden>" if secret else value,
            new,
            "<hidden>" if secret else current,
            f"{old} is the deprecated spelling of {new}; give only {new}.",
        )
    setattr(args, new, value)


def _per_gpu_batch_sizes(args: Any) -> None:
    for split in ("train", "eval"):
        old, new = f"per_gpu_{split}_batch_size", f"per_device_{split}_batch_size"
        value = getattr(args, old)
        if value is not None:
            _warn(f"{old} is deprecated; use {new} (now set to {value}).")
            setattr(args, new, value)
            setattr(args, old, None)


def _no_cuda(args: Any) -> None:
    if args.no_cuda:
        _warn("no_cuda is deprecated; use use_cpu=True (now set).")
        args.use_cpu = True
        args.no_cuda = False


def _use_mps_device(args: Any) -> None:
    if args.use_mps_device:
        _warn(
            "use_mps_device is deprecated and has no effect: the MPS device is selected "
            "automatically when it is available (pass use_cpu=True to avoid it)."
        )
        args.use_mps_device = False


def _fp16_backend(args: Any) -> None:
    if args.fp16_backend != "auto":
        _warn(f"fp16_backend is deprecated; use half_precision_backend={args.fp16_backend!r}.")
        _set_once(
            args, "half_precision_backend", args.fp16_backend, old="fp16_backend", default="auto"
        )
        args.fp16_backend = "auto"


def _push_to_hub_token(args: Any) -> None:
    if args.push_to_hub_token is not None:
        _warn("push_to_hub_token is deprecated; use hub_token.")
        _set_once(
            args,
            "hub_token",
            args.push_to_hub_token,
            old="push_to_hub_token",
            default=None,
            secret=True,
        )
        args.push_to_hub_token = None


def _push_to_hub_repo(args: Any) -> None:
    model_id, organization = args.push_to_hub_model_id, args.push_to_hub_organization
    if model_id is None and organization is None:
        return
    name = model_id or os.path.basename(os.path.normpath(args.output_dir))
    repo = f"{organization}/{name}" if organization else name
    used = [n for n in ("push_to_hub_model_id", "push_to_hub_organization") if getattr(args, n)]
    verb = "is" if len(used) == 1 else "are"
    _warn(f"{' and '.join(used)} {verb} deprecated; use hub_model_id={repo!r}.")
    _set_once(args, "hub_model_id", repo, old=" + ".join(used), default=None)
    args.push_to_hub_model_id = None
    args.push_to_hub_organization = None


def _torchdynamo(args: Any) -> None:
    if args.torchdynamo is not None:
        _warn(
            f"torchdynamo is deprecated; use torch_compile_backend={args.torchdynamo!r} "
            f"(it turns torch_compile on)."
        )
        _set_once(args, "torch_compile_backend", args.torchdynamo, old="torchdynamo", default=None)
        args.torch_compile = True
        args.torchdynamo = None


def _adafactor(args: Any) -> None:
    if args.adafactor:
        _warn("adafactor=True is deprecated; use optim='adafactor'.")
        # "adamw_torch" is optim's default, so it cannot be told apart from "not given".
        if args.optim not in ("adamw_torch", "adafactor"):
            _set_once(args, "optim", "adafactor", old="adafactor", default="adamw_torch")
        args.optim = "adafactor"
        args.adafactor = False


def _tpu_metrics_debug(args: Any) -> None:
    if args.tpu_metrics_debug:
        _warn("tpu_metrics_debug is deprecated; use debug='tpu_metrics_debug'.")
        if DebugOption.TPU_METRICS_DEBUG not in args.debug:
            args.debug = [*args.debug, DebugOption.TPU_METRICS_DEBUG]
        args.tpu_metrics_debug = False


def _fsdp_fields(args: Any) -> None:
    """Move the two top-level FSDP fields into ``fsdp_config`` (already a dict here)."""
    moves = (
        ("fsdp_min_num_params", "min_num_params", 0),
        ("fsdp_transformer_layer_cls_to_wrap", "transformer_layer_cls_to_wrap", None),
    )
    for old, key, default in moves:
        value = getattr(args, old)
        if value == default:
            continue
        _warn(f"{old} is deprecated; use fsdp_config={{{key!r}: {value!r}}}.")
        if isinstance(value, str):
            value = [name.strip() for name in value.split(",") if name.strip()]
        current = args.fsdp_config.get(key, default)
        if current not in (default, value):
            raise conflict(old, value, f"fsdp_config[{key!r}]", current, "Give only fsdp_config.")
        args.fsdp_config[key] = value
        setattr(args, old, default)


def _accelerator_fields(args: Any) -> None:
    """Move ``dispatch_batches`` / ``split_batches`` into ``accelerator_config``."""
    for old in ("dispatch_batches", "split_batches"):
        value = getattr(args, old)
        if value is None:
            continue
        _warn(f"{old} is deprecated; use accelerator_config={{{old!r}: {value!r}}}.")
        config = dict(args.accelerator_config or {})
        # A default there is no choice to contradict: arguments rebuilt from to_dict()
        # spell out every option of accelerator_config.
        if config.get(old, value) not in (value, ACCELERATOR_DEFAULTS[old]):
            raise conflict(
                old,
                value,
                f"accelerator_config[{old!r}]",
                config[old],
                "Give only accelerator_config.",
            )
        config[old] = value
        args.accelerator_config = config
        setattr(args, old, None)


_MAPPINGS = (
    _per_gpu_batch_sizes,
    _no_cuda,
    _use_mps_device,
    _fp16_backend,
    _push_to_hub_token,
    _push_to_hub_repo,
    _torchdynamo,
    _adafactor,
    _tpu_metrics_debug,
    _fsdp_fields,
    _accelerator_fields,
)


def apply_deprecations(args: Any) -> None:
    """Move every deprecated argument that was given onto its replacement, with a warning.

    Expects ``fsdp_config`` and ``accelerator_config`` already loaded as dicts (or
    ``None`` for the latter) and ``debug`` already parsed into a list.
    """
    for mapping in _MAPPINGS:
        mapping(args)
