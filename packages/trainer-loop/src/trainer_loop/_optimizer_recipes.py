"""How each ``optim`` name becomes an optimizer class and its constructor kwargs.

One table, :data:`RECIPES`, maps every name users may write in ``TrainingArguments.optim``
to a :class:`Recipe`: the optional package it needs (if any) and a small builder. The
builders import optional packages only when called, so importing this module costs
nothing beyond torch.

A builder receives the training arguments and the parsed ``optim_args``; it *removes*
from ``options`` the keys it consumed itself (for instance ``beta3`` for AdEMAMix) and
returns ``(optimizer_class, kwargs)``. The caller merges the remaining options into the
kwargs, so ``optim_args`` can tune any constructor argument of any optimizer.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch

from trainer_args import UNSUPPORTED_OPTIMIZERS
from trainer_loop._adafactor import Adafactor
from trainer_loop._optim_args import to_bool

__all__ = ["RECIPES", "TORCH_NATIVE", "UNSUPPORTED", "OptionalPackage", "Recipe"]

Builder = Callable[[Any, dict[str, Any]], tuple[type, dict[str, Any]]]


@dataclass(frozen=True)
class OptionalPackage:
    """A package some optimizers need, and how a user gets it.

    Attributes:
        module: The top-level import name, checked with ``importlib.util.find_spec``.
        install: The command or instruction that installs it.
    """

    module: str
    install: str


@dataclass(frozen=True)
class Recipe:
    """How one ``optim`` name is built: the package it needs and its builder."""

    build: Builder
    package: OptionalPackage | None = None


_BNB = OptionalPackage("bitsandbytes", "pip install bitsandbytes")
_APEX = OptionalPackage(
    "apex", "build NVIDIA apex from source with its CUDA extensions (github.com/NVIDIA/apex)"
)
_TORCHAO = OptionalPackage("torchao", "pip install torchao")
_TORCHDISTX = OptionalPackage(
    "torchdistx", "install torchdistx from its own wheel index (github.com/pytorch/torchdistx)"
)
_XLA = OptionalPackage("torch_xla", "pip install torch-xla")
_NPU = OptionalPackage("torch_npu", "pip install torch-npu")
_SCHEDULEFREE = OptionalPackage("schedulefree", "pip install schedulefree")
_GROK = OptionalPackage("grokadamw", "pip install grokadamw")
_OPTIMI = OptionalPackage("optimi", "pip install torch-optimi")

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _adam_kwargs(args: Any) -> dict[str, Any]:
    return {
        "lr": args.learning_rate,
        "betas": (args.adam_beta1, args.adam_beta2),
        "eps": args.adam_epsilon,
    }


def _attribute(module_names: tuple[str, ...], name: str) -> type:
    """Return ``name`` from the first of ``module_names`` that imports and defines it."""
    for module_name in module_names:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if hasattr(module, name):
            return getattr(module, name)
    raise ImportError(
        f"None of the modules {', '.join(module_names)} provides {name}; the installed "
        f"version of {module_names[0].split('.')[0]} is not one this trainer supports."
    )


# --- optimizers that plain torch provides -------------------------------------------------


def _torch_adamw(args: Any, options: dict[str, Any], *, fused: bool = False) -> tuple[type, dict]:
    kwargs = _adam_kwargs(args)
    if fused:
        kwargs["fused"] = True
    return torch.optim.AdamW, kwargs


def _adafactor(args: Any, options: dict[str, Any]) -> tuple[type, dict]:
    """Our Adafactor as the reference's Trainer configures it: the arguments' learning
    rate, no relative step, no parameter scaling (``optim_args`` may change them)."""
    kwargs = {"lr": args.learning_rate, "scale_parameter": False, "relative_step": False}
    return Adafactor, kwargs


def _torch_lr_only(class_name: str, args: Any, options: dict[str, Any]) -> tuple[type, dict]:
    return getattr(torch.optim, class_name), {"lr": args.learning_rate}


# --- optimizers from optional packages ---------------------------------------------------


def _bnb_adamw(
    args: Any, options: dict[str, Any], *, bits: int, paged: bool = False
) -> tuple[type, dict]:
    cls = _attribute(("bitsandbytes.optim",), "AdamW")
    return cls, {**_adam_kwargs(args), "optim_bits": bits, "is_paged": paged}


def _bnb_lion(
    args: Any, options: dict[str, Any], *, bits: int, paged: bool = False
) -> tuple[type, dict]:
    cls = _attribute(("bitsandbytes.optim",), "Lion")
    kwargs = {"lr": args.learning_rate, "betas": (args.adam_beta1, args.adam_beta2)}
    return cls, {**kwargs, "optim_bits": bits, "is_paged": paged}


def _bnb_ademamix(
    args: Any, options: dict[str, Any], *, bits: int, paged: bool = False
) -> tuple[type, dict]:
    """AdEMAMix takes three betas; ``optim_args`` may set beta1, beta2 and beta3."""
    cls = _attribute(("bitsandbytes.optim",), "AdEMAMix")
    betas = (
        _number("beta1", options.pop("beta1", args.adam_beta1)),
        _number("beta2", options.pop("beta2", args.adam_beta2)),
        _number("beta3", options.pop("beta3", 0.9999)),
    )
    kwargs = {"lr": args.learning_rate, "betas": betas, "eps": args.adam_epsilon}
    return cls, {**kwargs, "alpha": 5.0, "optim_bits": bits, "is_paged": paged}


def _bnb_rmsprop(args: Any, options: dict[str, Any], *, bits: int) -> tuple[type, dict]:
    """RMSprop keeps bitsandbytes' own epsilon, as the reference builds it: adam_epsilon
    is Adam's setting (``optim_args`` may still set ``eps``)."""
    cls = _attribute(("bitsandbytes.optim",), "RMSprop")
    return cls, {"lr": args.learning_rate, "optim_bits": bits}


def _apex_fused(args: Any, options: dict[str, Any]) -> tuple[type, dict]:
    return _attribute(("apex.optimizers",), "FusedAdam"), _adam_kwargs(args)


def _xla_adamw(args: Any, options: dict[str, Any]) -> tuple[type, dict]:
    return _attribute(("torch_xla.amp.syncfree",), "AdamW"), _adam_kwargs(args)


def _npu_fused(args: Any, options: dict[str, Any]) -> tuple[type, dict]:
    return _attribute(("torch_npu.optim",), "NpuFusedAdamW"), _adam_kwargs(args)


def _anyprecision(args: Any, options: dict[str, Any]) -> tuple[type, dict]:
    """AnyPrecisionAdamW: dtype options are written as names (``momentum_dtype=bfloat16``)."""
    cls = _attribute(("torchdistx.optimizers",), "AnyPrecisionAdamW")
    kwargs = {
        **_adam_kwargs(args),
        "use_kahan_summation": to_bool(
            "use_kahan_summation", options.pop("use_kahan_summation", False)
        ),
        "momentum_dtype": options.pop("momentum_dtype", "float32"),
        "variance_dtype": options.pop("variance_dtype", "float32"),
        "compensation_buffer_dtype": options.pop("compensation_buffer_dtype", "bfloat16"),
    }
    for key in ("momentum_dtype", "variance_dtype", "compensation_buffer_dtype"):
        kwargs[key] = _dtype(key, kwargs[key])
    return cls, kwargs


def _dtype(key: str, value: Any) -> torch.dtype:
    if isinstance(value, torch.dtype):
        return value
    if value not in _DTYPES:
        raise ValueError(
            f"optim_args {key}={value!r} is not a dtype this optimizer accepts; "
            f"use one of {', '.join(_DTYPES)}."
        )
    return _DTYPES[value]


def _number(key: str, value: Any) -> float:
    """An ``optim_args`` value a recipe reads itself, as a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"optim_args {key}={value!r} is not a number; write e.g. {key}=0.9."
        ) from None


def _torchao_adamw(args: Any, options: dict[str, Any], *, bits: int) -> tuple[type, dict]:
    """torchao's low-bit AdamW with the reference's quantisation blocks (256 values; the
    4-bit class would otherwise use 128 and train differently) and no stochastic rounding."""
    modules = ("torchao.optim", "torchao.prototype.low_bit_optim")
    kwargs = {**_adam_kwargs(args), "block_size": 256, "bf16_stochastic_round": False}
    return _attribute(modules, f"AdamW{bits}bit"), kwargs


def _schedule_free(args: Any, options: dict[str, Any], *, kind: str) -> tuple[type, dict]:
    """Schedule-free optimizers warm up themselves over ``args.warmup_steps`` steps.

    A warm-up given as a share of the run (``warmup_ratio``, or ``warmup_steps`` below 1)
    is left to the learning-rate schedule, which knows the run's length; the optimizer,
    built before that is known, gets no warm-up of its own then (transformers passes the
    share on as if it were a step count).

    They keep two copies of the weights: the training loop calls ``optimizer.train()``
    before each training step and the evaluation loop ``optimizer.eval()``, as the
    reference's do (see :func:`trainer_loop._optimizer_methods.set_optimizer_mode`).
    """
    cls = _attribute(("schedulefree",), f"{kind}ScheduleFree")
    warmup_steps = int(args.warmup_steps) if args.warmup_steps >= 1 else 0
    if kind == "SGD":
        return cls, {"lr": args.learning_rate, "warmup_steps": warmup_steps}
    kwargs = _adam_kwargs(args)
    if kind == "AdamW":
        kwargs["warmup_steps"] = warmup_steps
    return cls, kwargs


# GrokAdamW's own arguments and the values the reference passes when optim_args omits them.
_GROK_DEFAULTS = {
    "alpha_init": 0.98,
    "lamb": 2.0,
    "gamma": 0.1,
    "grokking_signal_decay_rate": 0.1,
    "gradient_clipping": 1.0,
}


def _grokadamw(args: Any, options: dict[str, Any]) -> tuple[type, dict]:
    """GrokAdamW as the reference builds it: the learning rate and its own arguments,
    not the Adam betas and epsilon (it keeps its defaults unless optim_args sets them)."""
    kwargs: dict[str, Any] = {"lr": args.learning_rate}
    for key, default in _GROK_DEFAULTS.items():
        kwargs[key] = _number(key, options.pop(key, default))
    return _attribute(("grokadamw",), "GrokAdamW"), kwargs


def _stable_adamw(args: Any, options: dict[str, Any]) -> tuple[type, dict]:
    return _attribute(("optimi",), "StableAdamW"), _adam_kwargs(args)


def _not_supported(name: str, args: Any, options: dict[str, Any]) -> tuple[type, dict]:
    raise ValueError(
        f"optim='{name}' is not supported by this trainer: {UNSUPPORTED[name]}. Use "
        "optim='adamw_torch', or for less optimizer memory 'adamw_8bit' (bitsandbytes), "
        "'adamw_torch_8bit' (torchao) or 'adafactor'."
    )


UNSUPPORTED: dict[str, str] = dict(UNSUPPORTED_OPTIMIZERS)
"""Names ``OptimizerNames`` has (for the reference's sake) that this trainer refuses, and
why (trainer-args' list). ``TrainingArguments`` refuses them at construction; this covers
arguments objects that skip its checks."""

RECIPES: dict[str, Recipe] = {
    "adamw_torch": Recipe(_torch_adamw),
    # The old transformers AdamW matched torch's AdamW (with bias correction); torch's runs.
    "adamw_hf": Recipe(_torch_adamw),
    "adamw_torch_fused": Recipe(partial(_torch_adamw, fused=True)),
    "adafactor": Recipe(_adafactor),
    "sgd": Recipe(partial(_torch_lr_only, "SGD")),
    "adagrad": Recipe(partial(_torch_lr_only, "Adagrad")),
    "rmsprop": Recipe(partial(_torch_lr_only, "RMSprop")),
    "adamw_torch_xla": Recipe(_xla_adamw, _XLA),
    "adamw_torch_npu_fused": Recipe(_npu_fused, _NPU),
    "adamw_apex_fused": Recipe(_apex_fused, _APEX),
    "adamw_anyprecision": Recipe(_anyprecision, _TORCHDISTX),
    "adamw_torch_4bit": Recipe(partial(_torchao_adamw, bits=4), _TORCHAO),
    "adamw_torch_8bit": Recipe(partial(_torchao_adamw, bits=8), _TORCHAO),
    "adamw_bnb_8bit": Recipe(partial(_bnb_adamw, bits=8), _BNB),
    "adamw_8bit": Recipe(partial(_bnb_adamw, bits=8), _BNB),
    "paged_adamw_32bit": Recipe(partial(_bnb_adamw, bits=32, paged=True), _BNB),
    "paged_adamw_8bit": Recipe(partial(_bnb_adamw, bits=8, paged=True), _BNB),
    "lion_32bit": Recipe(partial(_bnb_lion, bits=32), _BNB),
    "lion_8bit": Recipe(partial(_bnb_lion, bits=8), _BNB),
    "paged_lion_32bit": Recipe(partial(_bnb_lion, bits=32, paged=True), _BNB),
    "paged_lion_8bit": Recipe(partial(_bnb_lion, bits=8, paged=True), _BNB),
    "ademamix": Recipe(partial(_bnb_ademamix, bits=32), _BNB),
    "ademamix_8bit": Recipe(partial(_bnb_ademamix, bits=8), _BNB),
    "paged_ademamix_32bit": Recipe(partial(_bnb_ademamix, bits=32, paged=True), _BNB),
    "paged_ademamix_8bit": Recipe(partial(_bnb_ademamix, bits=8, paged=True), _BNB),
    "rmsprop_bnb": Recipe(partial(_bnb_rmsprop, bits=32), _BNB),
    "rmsprop_bnb_8bit": Recipe(partial(_bnb_rmsprop, bits=8), _BNB),
    "rmsprop_bnb_32bit": Recipe(partial(_bnb_rmsprop, bits=32), _BNB),
    "schedule_free_adamw": Recipe(partial(_schedule_free, kind="AdamW"), _SCHEDULEFREE),
    "schedule_free_radam": Recipe(partial(_schedule_free, kind="RAdam"), _SCHEDULEFREE),
    "schedule_free_sgd": Recipe(partial(_schedule_free, kind="SGD"), _SCHEDULEFREE),
    "grokadamw": Recipe(_grokadamw, _GROK),
    "stable_adamw": Recipe(_stable_adamw, _OPTIMI),
}

RECIPES.update({name: Recipe(partial(_not_supported, name)) for name in UNSUPPORTED})

TORCH_NATIVE: frozenset[str] = frozenset(
    name for name, r in RECIPES.items() if r.package is None and name not in UNSUPPORTED
)
"""The supported names that need nothing beyond torch."""
