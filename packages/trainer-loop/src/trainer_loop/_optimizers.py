"""The Trainer's default optimizer: parameter groups, the ``optim`` name, its kwargs.

:func:`create_optimizer` is what the Trainer calls when the user passed no optimizer:
weights get ``args.weight_decay``, biases and normalisation weights get none, and the
class comes from :func:`get_optimizer_cls_and_kwargs`. Users who subclass the Trainer
call these functions too, so their contracts are the public API.

Choices where the reference is silent:

- ``optim_args`` applies to every optimizer, not only the few that upstream reads it
  for: ``optim="sgd", optim_args="momentum=0.9,nesterov=True"`` works. A key the
  optimizer's constructor does not accept is rejected up front, naming the accepted ones.
- ``adamw_hf`` runs ``torch.optim.AdamW``: the old transformers AdamW computed the same
  update (bias correction on, decoupled weight decay), and upstream has retired it.
- ``adafactor`` runs our :class:`~trainer_loop._adafactor.Adafactor` (the reference's
  algorithm and constructor) with ``lr=args.learning_rate, scale_parameter=False,
  relative_step=False``, as the reference's Trainer does; ``optim_args`` may set any of
  its other arguments (``beta1=0.9``, ``clip_threshold=1.0``, ...).
"""

from __future__ import annotations

import importlib.util
import inspect
import re
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from trainer_core import MissingExtraError
from trainer_loop._optimizer_recipes import RECIPES, TORCH_NATIVE, OptionalPackage

__all__ = [
    "OPTIMIZER_NAMES",
    "MissingOptimizerPackageError",
    "check_optimizer_cls_and_kwargs",
    "create_optimizer",
    "get_decay_parameter_names",
    "get_optimizer_cls_and_kwargs",
    "parse_optim_args",
]

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
        ValueError: ``args.optim`` is not a known name, or ``optim_args`` is malformed
            or names an argument the optimizer does not accept.
        MissingOptimizerPackageError: The optimizer needs a package that is not installed.
        NotImplementedError: The package is installed but this trainer cannot drive the
            optimizer (GaLore, APOLLO and LOMO variants need changes to the loop itself).
    """
    name = _optimizer_name(args)
    recipe = RECIPES[name]
    if recipe.package is not None and importlib.util.find_spec(recipe.package.module) is None:
        raise MissingOptimizerPackageError(optim=name, package=recipe.package)
    options = parse_optim_args(getattr(args, "optim_args", None))
    optimizer_cls, kwargs = recipe.build(args, options)
    kwargs.update(options)
    _check_accepted_kwargs(optimizer_cls, kwargs, name)
    return optimizer_cls, kwargs


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


def _check_accepted_kwargs(optimizer_cls: type, kwargs: dict[str, Any], name: str) -> None:
    try:
        parameters = inspect.signature(optimizer_cls).parameters
    except (TypeError, ValueError):  # a C extension class without a signature
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    unknown = sorted(set(kwargs) - set(parameters))
    if unknown:
        accepted = [key for key in parameters if key != "params"]
        raise ValueError(
            f"optim_args sets {', '.join(unknown)}, which {optimizer_cls.__name__} "
            f"(optim='{name}') does not accept. It accepts: {', '.join(accepted)}. "
            "Fix or remove those keys in optim_args."
        )


def create_optimizer(
    model: nn.Module,
    args: Any,
    *,
    decay_parameter_names: Iterable[str] | None = None,
    optimizer_cls_and_kwargs: tuple[type, dict[str, Any]] | None = None,
) -> torch.optim.Optimizer:
    """Build the optimizer ``args`` describes over ``model``'s trainable parameters.

    There are always two parameter groups, in this order, so that ``optimizer.pt``
    checkpoints load into either implementation: the decayed parameters with
    ``weight_decay=args.weight_decay``, then the rest with ``weight_decay=0.0``.
    Parameters with ``requires_grad=False`` are left out; a group may be empty.

    Args:
        model: The model to optimize.
        args: Training arguments (see :func:`get_optimizer_cls_and_kwargs`; also reads
            ``weight_decay``).
        decay_parameter_names: Overrides :func:`get_decay_parameter_names`, so that a
            Trainer subclass overriding that method is honoured.
        optimizer_cls_and_kwargs: Overrides :func:`get_optimizer_cls_and_kwargs`, for
            the same reason.

    Raises:
        ValueError: The model has no parameter that requires gradients, or see
            :func:`get_optimizer_cls_and_kwargs`.
    """
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        raise ValueError(
            f"{type(model).__name__} has no parameter with requires_grad=True, so there is "
            "nothing to optimize. Unfreeze some parameters before training."
        )
    if decay_parameter_names is None:
        decay_parameter_names = get_decay_parameter_names(model)
    decay = set(decay_parameter_names)
    groups = [
        {
            "params": [p for name, p in trainable if name in decay],
            "weight_decay": args.weight_decay,
        },
        {"params": [p for name, p in trainable if name not in decay], "weight_decay": 0.0},
    ]
    if optimizer_cls_and_kwargs is None:
        optimizer_cls_and_kwargs = get_optimizer_cls_and_kwargs(args, model)
    optimizer_cls, kwargs = optimizer_cls_and_kwargs
    return optimizer_cls(groups, **kwargs)


def check_optimizer_cls_and_kwargs(value: Any, optimizer: Any) -> tuple[type, dict] | None:
    """Validate the Trainer's ``optimizer_cls_and_kwargs`` argument; return it.

    It says how to build the optimizer (``(torch.optim.SGD, {"lr": 0.1})``), so it
    contradicts an optimizer that is passed ready-made in ``optimizers``.

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


def parse_optim_args(optim_args: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """Parse ``optim_args`` (``"momentum=0.9,nesterov=True"``) into constructor kwargs.

    Values become ``bool`` (``true``/``false``, any case), ``None`` (``none``), ``int``,
    ``float`` or, failing those, ``str`` (surrounding quotes removed). A parenthesised or
    bracketed value becomes a tuple of converted items, so ``betas=(0.9,0.95)`` works;
    commas inside it do not split entries. A mapping is returned as a plain dict copy.

    Raises:
        ValueError: An entry is not ``key=value``, a key repeats or brackets do not match.
    """
    if optim_args is None:
        return {}
    if isinstance(optim_args, Mapping):
        return dict(optim_args)
    parsed: dict[str, Any] = {}
    for entry in _split_top_level(optim_args):
        if not entry.strip():
            continue
        key, separator, raw_value = entry.partition("=")
        key = key.strip()
        if not separator or not key.isidentifier():
            raise ValueError(
                f"optim_args entry {entry.strip()!r} in {optim_args!r} is not key=value. "
                "Write optim_args as comma-separated pairs, e.g. 'momentum=0.9,nesterov=True'."
            )
        if key in parsed:
            raise ValueError(f"optim_args sets {key!r} twice in {optim_args!r}; keep one.")
        parsed[key] = _convert_value(raw_value.strip())
    return parsed


def _split_top_level(text: str) -> list[str]:
    """Split ``text`` on the commas that are outside brackets and parentheses."""
    pieces, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "," and depth == 0:
            pieces.append(text[start:index])
            start = index + 1
        if depth < 0:
            break
    if depth != 0:
        raise ValueError(f"optim_args {text!r} has unbalanced brackets or parentheses.")
    pieces.append(text[start:])
    return pieces


def _convert_value(raw: str) -> Any:
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    if len(raw) >= 2 and raw[0] + raw[-1] in ("()", "[]"):
        items = _split_top_level(raw[1:-1])
        return tuple(_convert_value(item.strip()) for item in items if item.strip())
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    for number in (int, float):
        try:
            return number(raw)
        except ValueError:
            pass
    return raw
