"""The Trainer's default optimizer: parameter groups, the ``optim`` name, its kwargs.

:func:`create_optimizer` is what the Trainer calls when the user passed no optimizer:
weights get ``args.weight_decay``, biases and normalisation weights get none, and the
class comes from :func:`get_optimizer_cls_and_kwargs`. Users who subclass the Trainer
call these functions too, so their contracts are the public API.

Choices where the reference is silent:

- ``optim_args`` applies to every optimizer, not only the few that upstream reads it
  for: ``optim="sgd", optim_args="momentum=0.9,nesterov=True"`` works. A key the
  optimizer's constructor does not accept is rejected up front, naming the accepted ones
  (the reference ignores it), and so is a value that cannot be of the kind of that
  argument's default (``momentum=abc``); see :mod:`trainer_loop._optim_args`.
- GaLore, APOLLO and LOMO names are refused: they need a different training loop.
- ``adamw_hf`` runs ``torch.optim.AdamW``: the old transformers AdamW computed the same
  update (bias correction on, decoupled weight decay), and upstream has retired it.
- ``adafactor`` runs our :class:`~trainer_loop._adafactor.Adafactor` (the reference's
  algorithm and constructor) with ``lr=args.learning_rate, scale_parameter=False,
  relative_step=False``, as the reference's Trainer does; ``optim_args`` may set any of
  its other arguments (``beta1=0.9``, ``clip_threshold=1.0``, ...).
"""

from __future__ import annotations

import importlib.util
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from trainer_core import MissingExtraError
from trainer_loop._optim_args import fit_to_signature, parse_optim_args
from trainer_loop._optimizer_recipes import RECIPES, TORCH_NATIVE, OptionalPackage

__all__ = [
    "OPTIMIZER_NAMES",
    "MissingOptimizerPackageError",
    "check_optimizer_cls_and_kwargs",
    "create_optimizer",
    "get_decay_parameter_names",
    "get_optimizer_cls_and_kwargs",
    "is_optimizer_factory",
    "parse_optim_args",
]

logger = logging.getLogger(__name__)

OPTIMIZER_NAMES: tuple[str, ...] = tuple(sorted(RECIPES))
"""Every name :func:`get_optimizer_cls_and_kwargs` knows, installed package or not."""

# Parameter names that never get weight decay, matched against the lower-cased full
# name: biases anywhere in it (T5's relative_attention_bias.weight too), and parameters
# of modules named like normalisation layers (input_layernorm, final_layer_norm,
# model.norm, q_norm, ...). The same rule as transformers 5, so optimizer.pt files move
# between the two implementations.
_NO_DECAY_NAME = re.compile(r"bias|layernorm|rmsnorm|(?:^|\.)norm(?:$|\.)|_norm(?:$|\.)")


class MissingOptimizerPackageError(MissingExtraError):
    """The package an ``optim`` name needs is not installed.

    A :class:`trainer_core.MissingExtraError` (so an ``ImportError``), so callers catch
    the one missing-dependency type; its message gives the install instruction for that
    package, because some of them (NVIDIA apex, torchdistx) are not on PyPI and no
    extra of ours can bring them in.
    """

    def __init__(self, *, optim: str, package: OptionalPackage) -> None:
        message = (
            f"optim='{optim}' needs the Python package '{package.module}', which is not "
            f"installed. To install it: {package.install}. Or choose an optim that "
            f"needs only torch: {', '.join(sorted(TORCH_NATIVE))}."
        )
        ImportError.__init__(self, message, name=package.module)
        self.module = package.module
        self.package = package.module
        self.extra = ""
        self.feature = f"optim='{optim}'"


def get_decay_parameter_names(model: nn.Module) -> list[str]:
    """Names of the parameters that weight decay applies to.

    Decay regularises weights that multiply activations; pulling biases and the gains of
    normalisation layers towards zero only hurts. The rule is the reference's, so that
    the two parameter groups (and ``optimizer.pt`` files) are the same in both:

    - every parameter of a ``torch.nn.LayerNorm`` (or a subclass) is excluded;
    - so is every parameter whose lower-cased full name contains ``bias``,
      ``layernorm`` or ``rmsnorm``, or has a ``norm`` component or one ending in
      ``_norm`` (``model.norm.weight``, ``layer_norm.weight``, ``q_norm.weight``).

    Other normalisation modules are recognised by name only: a BatchNorm or GroupNorm
    registered as ``bn1`` is decayed, as it is by the reference.

    Args:
        model: The model whose parameters are classified.

    Returns:
        Parameter names as ``model.named_parameters(remove_duplicate=False)`` spells
        them, in that order: a tied weight is listed under each of its names, as the
        reference lists it. Parameters that do not require gradients are classified too.
    """
    # Prefixes of the LayerNorms' parameter names (submodules only, as the reference).
    layer_norms = tuple(
        f"{name}."
        for name, module in model.named_modules(remove_duplicate=False)
        if name and isinstance(module, nn.LayerNorm)
    )
    return [
        name
        for name, _ in model.named_parameters(remove_duplicate=False)
        if not name.startswith(layer_norms) and not _NO_DECAY_NAME.search(name.lower())
    ]


def get_optimizer_cls_and_kwargs(args: Any, model: nn.Module | None = None) -> tuple[type, dict]:
    """The optimizer class ``args.optim`` names and the kwargs to construct it with.

    The kwargs hold the learning rate and, for Adam-like optimizers,
    ``betas=(args.adam_beta1, args.adam_beta2)`` and ``eps=args.adam_epsilon``; then
    every ``args.optim_args`` entry (parsed by :func:`parse_optim_args`) is added or
    overrides. Weight decay is not in the kwargs: :func:`create_optimizer` sets it per
    parameter group.

    Args:
        args: Training arguments; reads ``optim`` (a string or an ``OptimizerNames``
            member), ``learning_rate``, ``adam_beta1``, ``adam_beta2``, ``adam_epsilon``,
            ``optim_args``, ``warmup_steps`` (schedule-free optimizers) and the legacy
            ``adafactor`` flag, which selects ``"adafactor"`` when true.
        model: Accepted for signature compatibility with the reference; the optimizers
            supported here do not need it.

    Returns:
        ``(optimizer_class, kwargs)``; call ``optimizer_class(param_groups, **kwargs)``.

    Raises:
        ValueError: ``args.optim`` is not a known name, or names one this trainer does
            not support (GaLore, APOLLO, LOMO); ``optim_args`` is malformed, names an
            argument the optimizer does not accept, or gives a value that cannot be of
            that argument's kind (``momentum=abc``).
        MissingOptimizerPackageError: The optimizer needs a package that is not installed.
    """
    name = _optimizer_name(args)
    recipe = RECIPES[name]
    if recipe.package is not None and importlib.util.find_spec(recipe.package.module) is None:
        raise MissingOptimizerPackageError(optim=name, package=recipe.package)
    options = parse_optim_args(getattr(args, "optim_args", None))
    optimizer_cls, kwargs = recipe.build(args, options)  # takes the options it consumes
    return optimizer_cls, fit_to_signature(optimizer_cls, kwargs, options, name)


def _optimizer_name(args: Any) -> str:
    if getattr(args, "adafactor", False) is True:
        return "adafactor"
    raw = getattr(args, "optim", "adamw_torch")
    name = getattr(raw, "value", raw)
    if name not in RECIPES:
        raise ValueError(
            f"optim={name!r} is not a known optimizer. Valid names: "
            f"{', '.join(OPTIMIZER_NAMES)}. Names that need only torch: "
            f"{', '.join(sorted(TORCH_NATIVE))}."
        )
    return name


def create_optimizer(
    model: nn.Module,
    args: Any,
    *,
    decay_parameter_names: Iterable[str] | None = None,
    optimizer_cls_and_kwargs: tuple[Any, dict[str, Any]] | None = None,
) -> torch.optim.Optimizer:
    """Build the optimizer ``args`` describes over ``model``'s trainable parameters.

    There are always two parameter groups, in this order, so that ``optimizer.pt``
    checkpoints load into either implementation: the decayed parameters with
    ``weight_decay=args.weight_decay``, then the rest with ``weight_decay=0.0``.
    Parameters with ``requires_grad=False`` are left out; a group may be empty.

    As in transformers 5, the class and kwargs may ask for something else:

    - a first element that is not a ``torch.optim.Optimizer`` subclass is a factory
      (see :func:`is_optimizer_factory`): the optimizer is
      ``optimizer_cls()(model, **kwargs)`` and builds its own groups;
    - kwargs holding ``params``, ``model`` or ``optimizer_dict`` pass that value as the
      first constructor argument instead of the groups (the last of the three present
      wins; none of them is passed as a keyword).

    A bitsandbytes class with ``optim_bits=8`` keeps the weights of every
    ``nn.Embedding`` in 32-bit optimizer state, as the reference does: 8-bit state for
    embeddings makes training unstable.

    Args:
        model: The model to optimize.
        args: Training arguments (see :func:`get_optimizer_cls_and_kwargs`; also reads
            ``weight_decay``).
        decay_parameter_names: Overrides :func:`get_decay_parameter_names`, so that a
            Trainer subclass overriding that method is honoured.
        optimizer_cls_and_kwargs: Overrides :func:`get_optimizer_cls_and_kwargs`, for
            the same reason. The kwargs are copied, never changed.

    Raises:
        ValueError: The groups are built and no parameter requires gradients, or see
            :func:`get_optimizer_cls_and_kwargs`.
    """
    if optimizer_cls_and_kwargs is None:
        optimizer_cls_and_kwargs = get_optimizer_cls_and_kwargs(args, model)
    optimizer_cls, kwargs = optimizer_cls_and_kwargs[0], dict(optimizer_cls_and_kwargs[1])
    if is_optimizer_factory(optimizer_cls):
        optimizer = optimizer_cls()(model, **kwargs)
    else:
        params = _first_argument_override(kwargs)
        if params is None:
            params = _parameter_groups(model, args, decay_parameter_names)
        optimizer = optimizer_cls(params, **kwargs)
    if "bitsandbytes" in str(optimizer_cls) and kwargs.get("optim_bits") == 8:
        _keep_embeddings_in_32_bits(model)
    return optimizer


def is_optimizer_factory(optimizer_cls: Any) -> bool:
    """Whether the first element of an ``(optimizer class, kwargs)`` pair is a factory.

    Anything but a ``torch.optim.Optimizer`` subclass is one (transformers 5's rule):
    optimizers such as Muon split a model's parameters among several inner optimizers,
    so they need the model rather than parameter groups. A factory is called once with
    no arguments; what it returns is called with ``(model, **kwargs)`` and returns the
    optimizer.
    """
    return not (
        isinstance(optimizer_cls, type) and issubclass(optimizer_cls, torch.optim.Optimizer)
    )


_FIRST_ARGUMENT_KEYS = ("params", "model", "optimizer_dict")


def _first_argument_override(kwargs: dict[str, Any]) -> Any:
    """Pop ``params`` / ``model`` / ``optimizer_dict`` from ``kwargs``; the last one given
    replaces the parameter groups (a model for LOMO-style optimizers, a dict of per-layer
    optimizers for layer-wise ones). None when there is none."""
    override = None
    for key in _FIRST_ARGUMENT_KEYS:
        if key in kwargs:
            override = kwargs.pop(key)
    return override


def _parameter_groups(
    model: nn.Module, args: Any, decay_parameter_names: Iterable[str] | None
) -> list[dict[str, Any]]:
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        raise ValueError(
            f"{type(model).__name__} has no parameter with requires_grad=True, so there is "
            "nothing to optimize. Unfreeze some parameters before training."
        )
    if decay_parameter_names is None:
        decay_parameter_names = get_decay_parameter_names(model)
    decay = set(decay_parameter_names)
    return [
        {
            "params": [p for name, p in trainable if name in decay],
            "weight_decay": args.weight_decay,
        },
        {"params": [p for name, p in trainable if name not in decay], "weight_decay": 0.0},
    ]


def _keep_embeddings_in_32_bits(model: nn.Module) -> None:
    """Register a 32-bit optimizer-state override for every embedding weight.

    bitsandbytes reads its global manager's overrides when the optimizer first steps,
    so registering after the optimizer is built is in time.
    """
    from bitsandbytes.optim import GlobalOptimManager

    manager = GlobalOptimManager.get_instance()
    kept = 0
    for module in model.modules():
        if isinstance(module, nn.Embedding):
            manager.register_module_override(module, "weight", {"optim_bits": 32})
            kept += module.weight.numel()
    if kept:
        logger.info("bitsandbytes: %.2fM embedding parameters keep 32-bit state.", kept / 2**20)


def check_optimizer_cls_and_kwargs(value: Any, optimizer: Any) -> tuple[type, dict] | None:
    """Validate the Trainer's ``optimizer_cls_and_kwargs`` argument; return it.

    It says how to build the optimizer (``(torch.optim.SGD, {"lr": 0.1})``, or a
    factory and its kwargs: see :func:`create_optimizer`), so it contradicts an optimizer
    that is passed ready-made in ``optimizers``.

    Raises:
        RuntimeError: Both an optimizer and ``optimizer_cls_and_kwargs`` were given.
        TypeError: ``value`` is not a ``(callable, mapping)`` pair.
    """
    if value is None:
        return None
    if optimizer is not None:
        raise RuntimeError(
            "Trainer got both an optimizer in `optimizers` and `optimizer_cls_and_kwargs`: "
            "they are incompatible. Pass the optimizer, or the class and kwargs to build it."
        )
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not callable(value[0])
        or not isinstance(value[1], Mapping)
    ):
        raise TypeError(
            "`optimizer_cls_and_kwargs` must be a pair (optimizer class, dict of its "
            f"kwargs), e.g. (torch.optim.SGD, {{'lr': 0.1}}); got {value!r}."
        )
    return value[0], dict(value[1])
