"""DeepSpeed configs: loading them and filling their ``"auto"`` values from the arguments.

A DeepSpeed config repeats settings the ``TrainingArguments`` already hold (batch sizes,
accumulation, clipping, learning rate, precision). Users write ``"auto"`` for those, and
the values are filled in here, so that DeepSpeed and the training loop agree. A value the
user wrote out must equal the argument it repeats; every disagreement is collected and
reported in one :class:`DeepSpeedConfigMismatchError`, so that one run shows them all.

Values are filled in two phases. What only the arguments decide is filled when the
runtime is built, before any process group starts (a bad config fails fast on every
process). What needs the model or the run's length (bucket sizes from the hidden size,
the scheduler's step counts) is filled when training starts.

This module imports neither torch nor deepspeed: it works on plain dicts.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

logger = logging.getLogger(__name__)

AUTO = "auto"
Phase = Literal["arguments", "training"]


@dataclass(frozen=True)
class ArgumentValues:
    """The ``TrainingArguments`` values that DeepSpeed ``"auto"`` entries are filled from.

    A separate, flat record so that resolution needs no ``TrainingArguments`` (and no
    torch): tests and other front ends build it directly.

    Attributes:
        per_device_train_batch_size: micro-batch size of one process.
        gradient_accumulation_steps: micro-batches per optimizer step.
        world_size: processes training together.
        max_grad_norm: gradient clipping threshold (0 disables clipping).
        learning_rate: the optimizer's (peak) learning rate.
        adam_beta1: Adam's first beta.
        adam_beta2: Adam's second beta.
        adam_epsilon: Adam's epsilon.
        weight_decay: the optimizer's weight decay.
        warmup_steps: warm-up steps (an int; 0 means "use ``warmup_ratio``").
        warmup_ratio: warm-up as a fraction of the run's optimizer steps.
        fp16: fp16 mixed precision for training (the argument, else the launcher's).
        bf16: bf16 mixed precision for training (the argument, else the launcher's).
        fp16_full_eval: evaluation (outside training) in fp16; training keeps its own
            precision. Only an ``"auto"`` ``fp16.enabled`` reads it (see
            :data:`AUTO_KEYS`).
        bf16_full_eval: as ``fp16_full_eval``, for bf16.
        fp16_opt_level: apex's opt level, repeated by DeepSpeed's ``amp`` section.
        save_on_each_node: each node writes its own checkpoints (DeepSpeed is then told
            its storage is node-local).
        auto_find_batch_size: the batch size may shrink after an out-of-memory error, so
            written-out batch sizes are not held against the arguments (and ZeRO-3 is
            refused with it, as the reference's Trainer refuses it).
        zero_stage: the ZeRO stage ``accelerate launch`` asked for (2 when it did not
            say), filling a ``"stage": "auto"``.
        offload_optimizer_device: the launcher's optimizer offload device (``"none"``).
        offload_param_device: the launcher's parameter offload device (``"none"``).
        offload_optimizer_nvme_path: the launcher's NVMe path for the optimizer, if any.
        offload_param_nvme_path: the launcher's NVMe path for the parameters, if any.
        gather_16bit_weights_on_save: the launcher's ``zero3_save_16bit_model``.
    """

    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    world_size: int = 1
    max_grad_norm: float = 1.0
    learning_rate: float = 5e-5
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    weight_decay: float = 0.0
    warmup_steps: int = 0
    warmup_ratio: float = 0.0
    fp16: bool = False
    bf16: bool = False
    fp16_full_eval: bool = False
    bf16_full_eval: bool = False
    fp16_opt_level: str = "O1"
    save_on_each_node: bool = False
    auto_find_batch_size: bool = False
    zero_stage: int = 2
    offload_optimizer_device: str = "none"
    offload_param_device: str = "none"
    offload_optimizer_nvme_path: str | None = None
    offload_param_nvme_path: str | None = None
    gather_16bit_weights_on_save: bool = False

    @classmethod
    def from_arguments(
        cls, args: Any, *, world_size: int, launcher_precision: str | None = None
    ) -> ArgumentValues:
        """Read the values from ``args`` (a ``TrainingArguments`` or any look-alike).

        ``launcher_precision`` is the mixed precision an ``accelerate launch`` config
        chose (``ACCELERATE_MIXED_PRECISION``); it applies when the arguments train in
        neither fp16 nor bf16, as the reference lets the launcher decide then (the
        ``*_full_eval`` flags choose the evaluation's precision, not the training's).
        """
        fp16, bf16 = bool(getattr(args, "fp16", False)), bool(getattr(args, "bf16", False))
        if not (fp16 or bf16) and launcher_precision in ("fp16", "bf16"):
            fp16, bf16 = launcher_precision == "fp16", launcher_precision == "bf16"
        defaults = cls()
        # transformers 5 gives a warm-up share as a fractional warmup_steps (0.1).
        warmup = float(getattr(args, "warmup_steps", 0) or 0)
        return cls(
            per_device_train_batch_size=int(args.per_device_train_batch_size),
            gradient_accumulation_steps=int(args.gradient_accumulation_steps),
            world_size=world_size,
            max_grad_norm=float(getattr(args, "max_grad_norm", None) or 0.0),
            learning_rate=float(args.learning_rate),
            adam_beta1=float(getattr(args, "adam_beta1", defaults.adam_beta1)),
            adam_beta2=float(getattr(args, "adam_beta2", defaults.adam_beta2)),
            adam_epsilon=float(getattr(args, "adam_epsilon", defaults.adam_epsilon)),
            weight_decay=float(getattr(args, "weight_decay", defaults.weight_decay)),
            warmup_steps=int(warmup) if warmup >= 1 else 0,
            warmup_ratio=warmup if 0 < warmup < 1 else float(getattr(args, "warmup_ratio", 0.0)),
            fp16=fp16,
            bf16=bf16,
            fp16_full_eval=bool(getattr(args, "fp16_full_eval", False)),
            bf16_full_eval=bool(getattr(args, "bf16_full_eval", False)),
            fp16_opt_level=str(getattr(args, "fp16_opt_level", defaults.fp16_opt_level)),
            save_on_each_node=bool(getattr(args, "save_on_each_node", False)),
            auto_find_batch_size=bool(getattr(args, "auto_find_batch_size", False)),
        )

    def with_launcher(self, environ: Mapping[str, str]) -> ArgumentValues:
        """These values with the DeepSpeed settings of an ``accelerate launch`` (its
        ``ACCELERATE_DEEPSPEED_*`` variables, else accelerate's defaults): they fill the
        config's ``"auto"`` stage, offload and 16-bit-save entries, as accelerate's
        plugin does for the reference."""
        launcher: dict[str, Any] = {}
        for variable, field_name in _LAUNCHER_VALUES.items():
            raw = environ.get(variable, "").strip()
            if raw and raw.lower() != "auto":
                launcher[field_name] = raw
        if "zero_stage" in launcher:
            launcher["zero_stage"] = int(launcher["zero_stage"])
        if "gather_16bit_weights_on_save" in launcher:
            launcher["gather_16bit_weights_on_save"] = _enabled(
                launcher["gather_16bit_weights_on_save"]
            )
        for path in ("offload_optimizer_nvme_path", "offload_param_nvme_path"):
            if str(launcher.get(path, "")).lower() == "none":
                launcher.pop(path)
        return dataclasses.replace(self, **launcher)

    @property
    def full_eval_precision(self) -> Literal["fp16", "bf16"] | None:
        """The precision ``fp16_full_eval`` / ``bf16_full_eval`` evaluate in, if any."""
        if self.fp16_full_eval:
            return "fp16"
        if self.bf16_full_eval:
            return "bf16"
        return None

    def warmup_steps_for(self, num_training_steps: int) -> int:
        """Warm-up steps of a run of ``num_training_steps`` (as ``get_warmup_steps``)."""
        if self.warmup_steps > 0:
            return self.warmup_steps
        return math.ceil(num_training_steps * self.warmup_ratio)


@dataclass(frozen=True)
class TrainingFacts:
    """What the second phase needs besides the arguments.

    Attributes:
        hidden_size: the model's hidden size (``config.hidden_size``, or the largest of
            ``config.hidden_sizes``); ``None`` when the model does not tell.
        num_training_steps: optimizer steps of the run.
    """

    hidden_size: int | None
    num_training_steps: int


@dataclass(frozen=True)
class AutoKey:
    """One config entry that may be ``"auto"``: where it is and what fills it.

    Attributes:
        key: dotted path in the config (``"optimizer.params.lr"``).
        source: the argument(s) it repeats, as the error message names them.
        phase: ``"arguments"`` (filled when the runtime is built) or ``"training"``
            (filled when training starts: needs the model or the run's length).
        value: computes the value from the arguments and the training facts (``None``
            when it cannot be known: the entry is then removed, DeepSpeed's default
            applies).
        must_match: whether a value written out must equal the computed one.
        fill_when_missing: whether to add the entry when the config lacks it (the
            settings DeepSpeed and the loop must agree on).
    """

    key: str
    source: str
    phase: Phase
    value: Callable[[ArgumentValues, TrainingFacts | None], Any]
    must_match: bool = True
    fill_when_missing: bool = False
    batch_size: bool = False

    def checks_match(self, values: ArgumentValues) -> bool:
        """Whether a written-out value must equal the computed one: batch sizes are not
        held to the arguments while ``auto_find_batch_size`` may change them."""
        return self.must_match and not (self.batch_size and values.auto_find_batch_size)


def _square(facts: TrainingFacts | None, factor: float) -> int | None:
    if facts is None or facts.hidden_size is None:
        return None
    return int(factor * facts.hidden_size * facts.hidden_size)


def _steps(facts: TrainingFacts | None) -> int:
    return facts.num_training_steps if facts is not None else 0


def _warmup_num_steps(values: ArgumentValues, facts: TrainingFacts | None) -> int:
    """The warm-up of DeepSpeed's warm-up schedules, never below 1.

    DeepSpeed's ``WarmupLR`` family refuses ``warmup_num_steps=0`` ("must be a positive
    integer"), which a run without warm-up (the default ``warmup_steps=0``) would give;
    one step of warm-up from ``warmup_min_lr`` (0) is the shortest it accepts, as the
    reference fills it too.
    """
    return max(1, values.warmup_steps_for(_steps(facts)))


AUTO_KEYS: tuple[AutoKey, ...] = (
    AutoKey(
        "train_micro_batch_size_per_gpu",
        "per_device_train_batch_size",
        "arguments",
        lambda v, f: v.per_device_train_batch_size,
        fill_when_missing=True,
        batch_size=True,
    ),
    AutoKey(
        "gradient_accumulation_steps",
        "gradient_accumulation_steps",
        "arguments",
        lambda v, f: v.gradient_accumulation_steps,
        fill_when_missing=True,
    ),
    AutoKey(
        "train_batch_size",
        "per_device_train_batch_size x gradient_accumulation_steps x world_size",
        "arguments",
        lambda v, f: v.per_device_train_batch_size * v.gradient_accumulation_steps * v.world_size,
        fill_when_missing=True,
        batch_size=True,
    ),
    AutoKey(
        "gradient_clipping",
        "max_grad_norm",
        "arguments",
        lambda v, f: v.max_grad_norm,
        fill_when_missing=True,
    ),
    AutoKey("optimizer.params.lr", "learning_rate", "arguments", lambda v, f: v.learning_rate),
    AutoKey(
        "optimizer.params.betas",
        "adam_beta1, adam_beta2",
        "arguments",
        lambda v, f: [v.adam_beta1, v.adam_beta2],
    ),
    AutoKey("optimizer.params.eps", "adam_epsilon", "arguments", lambda v, f: v.adam_epsilon),
    AutoKey(
        "optimizer.params.weight_decay", "weight_decay", "arguments", lambda v, f: v.weight_decay
    ),
    AutoKey(
        "scheduler.params.warmup_min_lr",
        "0 (the warm-up starts from zero)",
        "arguments",
        lambda v, f: 0,
        must_match=False,
    ),
    AutoKey(
        "scheduler.params.warmup_max_lr", "learning_rate", "arguments", lambda v, f: v.learning_rate
    ),
    # The reference fills an "auto" precision from either flag, so full evaluation alone
    # turns it on for training too; kept on purpose. An absent section is not added for
    # the *_full_eval flags (see _enable_requested_precision).
    AutoKey(
        "fp16.enabled",
        "fp16 or fp16_full_eval",
        "arguments",
        lambda v, f: v.fp16 or v.fp16_full_eval,
    ),
    AutoKey(
        "bf16.enabled",
        "bf16 or bf16_full_eval",
        "arguments",
        lambda v, f: v.bf16 or v.bf16_full_eval,
    ),
    AutoKey(
        "bfloat16.enabled",
        "bf16 or bf16_full_eval",
        "arguments",
        lambda v, f: v.bf16 or v.bf16_full_eval,
    ),
    AutoKey(
        "amp.enabled",
        "half_precision_backend='apex' (apex is not used)",
        "arguments",
        lambda v, f: False,
    ),
    AutoKey("amp.opt_level", "fp16_opt_level", "arguments", lambda v, f: v.fp16_opt_level),
    # What accelerate's DeepSpeed plugin fills for the reference: the launcher's choice,
    # else its defaults. A value written out wins over the launcher's.
    AutoKey(
        "zero_optimization.stage",
        "accelerate launch's zero_stage (2 by default)",
        "arguments",
        lambda v, f: v.zero_stage,
        must_match=False,
    ),
    AutoKey(
        "zero_optimization.offload_optimizer.device",
        "accelerate launch's offload_optimizer_device ('none' by default)",
        "arguments",
        lambda v, f: v.offload_optimizer_device,
        must_match=False,
    ),
    AutoKey(
        "zero_optimization.offload_param.device",
        "accelerate launch's offload_param_device ('none' by default)",
        "arguments",
        lambda v, f: v.offload_param_device,
        must_match=False,
    ),
    AutoKey(
        "zero_optimization.offload_optimizer.nvme_path",
        "accelerate launch's offload_optimizer_nvme_path",
        "arguments",
        lambda v, f: v.offload_optimizer_nvme_path,
        must_match=False,
    ),
    AutoKey(
        "zero_optimization.offload_param.nvme_path",
        "accelerate launch's offload_param_nvme_path",
        "arguments",
        lambda v, f: v.offload_param_nvme_path,
        must_match=False,
    ),
    AutoKey(
        "zero_optimization.stage3_gather_16bit_weights_on_model_save",
        "accelerate launch's zero3_save_16bit_model (false by default)",
        "arguments",
        lambda v, f: v.gather_16bit_weights_on_save,
        must_match=False,
    ),
    AutoKey(
        "scheduler.params.warmup_num_steps",
        "warmup_steps (or warmup_ratio x the run's optimizer steps), at least 1",
        "training",
        _warmup_num_steps,
    ),
    AutoKey(
        "scheduler.params.total_num_steps",
        "the run's optimizer steps (max_steps, or epochs x steps per epoch)",
        "training",
        lambda v, f: _steps(f),
    ),
    AutoKey(
        "zero_optimization.reduce_bucket_size",
        "hidden_size x hidden_size",
        "training",
        lambda v, f: _square(f, 1.0),
        must_match=False,
    ),
    AutoKey(
        "zero_optimization.stage3_prefetch_bucket_size",
        "0.9 x hidden_size x hidden_size",
        "training",
        lambda v, f: _square(f, 0.9),
        must_match=False,
    ),
    AutoKey(
        "zero_optimization.stage3_param_persistence_threshold",
        "10 x hidden_size",
        "training",
        lambda v, f: None if f is None or f.hidden_size is None else 10 * f.hidden_size,
        must_match=False,
    ),
)


@dataclass(frozen=True)
class Mismatch:
    """A config value that contradicts the argument it repeats."""

    key: str
    config_value: Any
    source: str
    argument_value: Any

    def describe(self) -> str:
        """One line for the error message."""
        return (
            f"{self.key}={self.config_value!r} in the DeepSpeed config, but {self.source} "
            f"gives {self.argument_value!r}"
        )


class DeepSpeedConfigMismatchError(ValueError):
    """Values written out in a DeepSpeed config contradict the training arguments.

    Attributes:
        mismatches: every disagreement found, in config order.
    """

    def __init__(self, mismatches: list[Mismatch]) -> None:
        self.mismatches = list(mismatches)
        lines = "\n".join(f"  - {m.describe()}" for m in self.mismatches)
        super().__init__(
            f"The DeepSpeed config contradicts the training arguments in "
            f'{len(self.mismatches)} place(s):\n{lines}\nSet these entries to "auto" '
            f"(they are then filled from the arguments) or change the arguments to match."
        )


def load_deepspeed_config(source: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, Any]:
    """Return a DeepSpeed config as a new dict, from a JSON file path, JSON text or a mapping.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file or text is not a JSON object.
        TypeError: ``source`` is none of the accepted types.
    """
    if isinstance(source, Mapping):
        return copy.deepcopy(dict(source))
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            f"deepspeed={source!r} ({type(source).__name__}) is not a DeepSpeed config: pass "
            f"the path of a JSON file, JSON text, or a dict."
        )
    text = os.fspath(source).strip()
    if text.startswith("{"):
        return _parse_object(text, "the JSON text passed as deepspeed")
    path = os.path.expanduser(text)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"deepspeed={text!r}: no such file. Pass the path of a DeepSpeed JSON config "
            f"(e.g. ds_config_zero2.json), JSON text, or a dict."
        )
    with open(path, encoding="utf-8") as handle:
        return _parse_object(handle.read(), f"the DeepSpeed config file {path!r}")


def _parse_object(text: str, origin: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{origin} is not valid JSON: {error}. Fix the JSON syntax.") from None
    if not isinstance(value, dict):
        raise ValueError(
            f"{origin} holds a JSON {type(value).__name__}, but a DeepSpeed config is a JSON "
            f"object ({{...}})."
        )
    return value


class DeepSpeedConfig:
    """A DeepSpeed config and the resolution of its ``"auto"`` entries.

    Instances are not modified: each resolution returns a new config.

    Args:
        source: a JSON file path, JSON text or a mapping (copied).
    """

    def __init__(self, source: str | os.PathLike[str] | Mapping[str, Any]) -> None:
        self._config = load_deepspeed_config(source)

    # ------------------------------------------------------------------ reading
    def to_dict(self) -> dict[str, Any]:
        """A deep copy of the config (what ``deepspeed.initialize`` receives)."""
        return copy.deepcopy(self._config)

    def get(self, key: str, default: Any = None) -> Any:
        """The value at a dotted ``key`` (``"zero_optimization.stage"``), or ``default``."""
        node: Any = self._config
        for part in key.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return default
            node = node[part]
        return node

    @property
    def zero_stage(self) -> int:
        """The ZeRO stage (0 when the config has no ``zero_optimization`` section).

        Raises:
            ValueError: the stage is still ``"auto"`` (read it from the config that
                :meth:`resolve_arguments` returns).
        """
        stage = self.get("zero_optimization.stage", 0)
        if stage == AUTO:
            raise ValueError(
                'zero_optimization.stage is "auto" until the config is resolved against the '
                "arguments (resolve_arguments)."
            )
        return int(stage or 0)

    @property
    def has_optimizer(self) -> bool:
        """Whether the config defines the optimizer (else the Trainer builds one)."""
        return isinstance(self._config.get("optimizer"), Mapping)

    @property
    def has_scheduler(self) -> bool:
        """Whether the config defines the learning-rate scheduler."""
        return isinstance(self._config.get("scheduler"), Mapping)

    @property
    def gathers_16bit_weights_on_save(self) -> bool:
        """``zero_optimization.stage3_gather_16bit_weights_on_model_save`` (DeepSpeed's
        default, false, when absent): whether ZeRO-3 consolidates the weights to save."""
        return _enabled(self.get("zero_optimization.stage3_gather_16bit_weights_on_model_save"))

    @property
    def mixed_precision(self) -> Literal["no", "fp16", "bf16"]:
        """The precision DeepSpeed trains in, from the ``fp16`` / ``bf16`` sections."""
        if _enabled(self.get("fp16.enabled")):
            return "fp16"
        if _enabled(self.get("bf16.enabled")) or _enabled(self.get("bfloat16.enabled")):
            return "bf16"
        return "no"

    # --------------------------------------------------------------- resolution
    def resolve_arguments(self, values: ArgumentValues) -> DeepSpeedConfig:
        """Fill the entries the arguments decide; check the ones written out.

        An ``"auto"`` that no later step can fill either (one this trainer does not know,
        such as ``allgather_bucket_size``) is refused here, when the Trainer is built,
        rather than when training starts; so is ``auto_find_batch_size`` under ZeRO-3,
        which the reference refuses when its Trainer is built.

        Raises:
            DeepSpeedConfigMismatchError: written-out values contradict the arguments.
            ValueError: an ``"auto"`` entry this trainer does not know how to fill, or a
                batch size search under ZeRO-3.
        """
        resolved = self._resolved(values, None, "arguments")
        _check_combinations(resolved, values)
        _enable_requested_precision(resolved._config, values)
        if values.save_on_each_node:  # DeepSpeed assumes storage every node shares
            resolved._config.setdefault("checkpoint", {})["use_node_local_storage"] = True
        fillable = {entry.key for entry in AUTO_KEYS}
        _refuse_autos_left([path for path in _auto_paths(resolved._config) if path not in fillable])
        return resolved

    def resolve_training(self, values: ArgumentValues, facts: TrainingFacts) -> DeepSpeedConfig:
        """Fill the entries that need the model or the run's length; then check that no
        ``"auto"`` is left.

        Raises:
            DeepSpeedConfigMismatchError: written-out values contradict the arguments.
            ValueError: an ``"auto"`` entry this trainer does not know how to fill.
        """
        resolved = self._resolved(values, facts, "training")
        _refuse_autos_left(list(_auto_paths(resolved._config)))
        return resolved

    def _resolved(
        self, values: ArgumentValues, facts: TrainingFacts | None, phase: Phase
    ) -> DeepSpeedConfig:
        config = self.to_dict()
        mismatches = [
            mismatch
            for entry in AUTO_KEYS
            if entry.phase == phase
            for mismatch in _fill(config, entry, entry.value(values, facts), values)
        ]
        if mismatches:
            raise DeepSpeedConfigMismatchError(mismatches)
        return DeepSpeedConfig(config)

    def __repr__(self) -> str:
        return f"DeepSpeedConfig(zero_stage={self.zero_stage}, keys={sorted(self._config)})"


def _fill(
    config: dict[str, Any], entry: AutoKey, value: Any, values: ArgumentValues
) -> Iterator[Mismatch]:
    """Fill ``entry`` in ``config`` in place; yield the mismatch when there is one."""
    *parents, leaf = entry.key.split(".")
    node = _section(config, parents, create=entry.fill_when_missing)
    if node is None or (leaf not in node and not entry.fill_when_missing):
        return
    current = node.get(leaf, AUTO)
    if current == AUTO:
        if value is None:
            node.pop(leaf, None)
            logger.info(
                "DeepSpeed %s: not known for this model; DeepSpeed's default applies.", entry.key
            )
        else:
            node[leaf] = value
    elif entry.checks_match(values) and not _same(current, value):
        yield Mismatch(entry.key, current, entry.source, value)


def _check_combinations(config: DeepSpeedConfig, values: ArgumentValues) -> None:
    if values.auto_find_batch_size and config.zero_stage == 3:
        raise ValueError(
            "auto_find_batch_size=True cannot search batch sizes under DeepSpeed ZeRO-3 (the "
            "reference refuses it too). Use ZeRO stage 0, 1 or 2 in the DeepSpeed config, or "
            "set per_device_train_batch_size yourself and unset auto_find_batch_size."
        )


def _enable_requested_precision(config: dict[str, Any], values: ArgumentValues) -> None:
    """Add the section of the precision the arguments train in when the config has none
    at all: otherwise DeepSpeed would silently train in fp32 while the arguments say
    fp16/bf16. ``fp16_full_eval`` / ``bf16_full_eval`` add nothing: they ask for fp32
    training and half-precision evaluation, which an inference engine's own config
    gives (``_deepspeed_inference.inference_config``)."""
    if values.fp16 and "fp16" not in config:
        config["fp16"] = half_precision_section("fp16")
    if values.bf16 and "bf16" not in config and "bfloat16" not in config:
        config["bf16"] = half_precision_section("bf16")


def half_precision_section(precision: Literal["fp16", "bf16"]) -> dict[str, Any]:
    """The section added to enable ``precision``: an fp16 one casts the engine's inputs
    too (``auto_cast``), as accelerate writes it for the reference."""
    if precision == "fp16":
        return {"enabled": True, "auto_cast": True}
    return {"enabled": True}


def _section(config: dict[str, Any], parents: list[str], *, create: bool) -> dict[str, Any] | None:
    node = config
    for part in parents:
        child = node.get(part)
        if child is None and create:
            child = node[part] = {}
        if not isinstance(child, dict):
            return None
        node = child
    return node


def _same(config_value: Any, argument_value: Any) -> bool:
    if isinstance(argument_value, bool) or isinstance(config_value, bool):
        return _enabled(config_value) == bool(argument_value)
    if isinstance(argument_value, (list, tuple)):
        if not isinstance(config_value, (list, tuple)) or len(config_value) != len(argument_value):
            return False
        return all(_same(c, a) for c, a in zip(config_value, argument_value, strict=True))
    if isinstance(argument_value, (int, float)) and isinstance(config_value, (int, float)):
        return math.isclose(float(config_value), float(argument_value), rel_tol=1e-9, abs_tol=0.0)
    return bool(config_value == argument_value)


def _enabled(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def _refuse_autos_left(paths: list[str]) -> None:
    if paths:
        known = ", ".join(entry.key for entry in AUTO_KEYS)
        raise ValueError(
            f'The DeepSpeed config has "auto" at {sorted(paths)}, which cannot be filled '
            f"from the training arguments or the model (the entries that can: {known}). "
            f"Write out values for them."
        )


def _auto_paths(node: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _auto_paths(value, f"{prefix}{key}.")
    elif node == AUTO:
        yield prefix.rstrip(".")


# ------------------------------------------------------ accelerate launch
_LAUNCHER_VALUES = {
    # accelerate variable -> ArgumentValues field it fills "auto" entries with
    "ACCELERATE_DEEPSPEED_ZERO_STAGE": "zero_stage",
    "ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE": "offload_optimizer_device",
    "ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE": "offload_param_device",
    "ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_NVME_PATH": "offload_optimizer_nvme_path",
    "ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_NVME_PATH": "offload_param_nvme_path",
    "ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL": "gather_16bit_weights_on_save",
}

_PLUGIN_ENVIRONMENT = {
    # accelerate variable -> (config path, converter)
    "ACCELERATE_DEEPSPEED_ZERO_STAGE": ("zero_optimization.stage", int),
    "ACCELERATE_GRADIENT_ACCUMULATION_STEPS": ("gradient_accumulation_steps", int),
    "ACCELERATE_GRADIENT_CLIPPING": ("gradient_clipping", float),
    "ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE": (
        "zero_optimization.offload_optimizer.device",
        str,
    ),
    "ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE": ("zero_optimization.offload_param.device", str),
    "ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL": (
        "zero_optimization.stage3_gather_16bit_weights_on_model_save",
        _enabled,
    ),
}


def accelerate_deepspeed_config(environ: Mapping[str, str]) -> dict[str, Any] | str | None:
    """The DeepSpeed config an ``accelerate launch`` with DeepSpeed announced, if any.

    ``accelerate launch`` describes DeepSpeed through environment variables
    (``ACCELERATE_USE_DEEPSPEED=true`` and ``ACCELERATE_DEEPSPEED_*``). With a config file
    (``deepspeed_config_file``) this returns its path. With the plugin options
    (``zero_stage``, ``gradient_accumulation_steps``, ``gradient_clipping``, offload
    devices...) it returns a config built from them, every other setting ``"auto"``.
    ``None`` when accelerate did not launch with DeepSpeed.
    """
    if environ.get("ACCELERATE_USE_DEEPSPEED", "false").strip().lower() != "true":
        return None
    path = environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE", "").strip()
    if path and path.lower() != "none":
        return path
    config: dict[str, Any] = {
        "train_batch_size": AUTO,
        "train_micro_batch_size_per_gpu": AUTO,
        "gradient_accumulation_steps": AUTO,
        "gradient_clipping": AUTO,
        "zero_optimization": {"stage": 2},
        "fp16": {"enabled": AUTO},
        "bf16": {"enabled": AUTO},
    }
    for variable, (key, convert) in _PLUGIN_ENVIRONMENT.items():
        raw = environ.get(variable, "").strip()
        if not raw or raw.lower() in ("none", "auto"):
            continue
        *parents, leaf = key.split(".")
        node = _section(config, parents, create=True)
        if node is not None:
            node[leaf] = convert(raw)
    return config


def launcher_mixed_precision(environ: Mapping[str, str]) -> str | None:
    """The mixed precision ``accelerate launch`` chose (``fp16`` / ``bf16``), if any."""
    value = environ.get("ACCELERATE_MIXED_PRECISION", "").strip().lower()
    return value if value in ("fp16", "bf16") else None
