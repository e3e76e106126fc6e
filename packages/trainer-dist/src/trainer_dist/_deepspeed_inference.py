"""Evaluation of a ZeRO-3 partitioned model before any training engine exists.

A model that ``from_pretrained`` built under ``deepspeed.zero.Init`` holds only its
partition of every weight on each process; nothing but a DeepSpeed engine gathers the
weights for a forward pass. ``evaluate()`` / ``predict()`` called before ``train()`` (a
"--do_eval only" script) therefore needs an engine of its own. As the reference does, it
is an inference-only engine: ``deepspeed.initialize(model=..., config=...)`` on the
run's config without its ``optimizer`` and ``scheduler`` sections. DeepSpeed then wraps
the model with its parameter-gathering hooks alone (``DeepSpeedZeRoOffload``), with no
optimizer, gradients or fp32 master copy.

Unlike the reference, the run's own config is never edited: the inference config is a
copy, so a later ``train()`` still finds the config's optimizer and the run-length
entries of its scheduler. Before the training engine is built, the inference engine is
released: its gathered parameters are partitioned again and the hooks it registered on
the model are removed, so that only the training engine's hooks gather the weights.

The engine evaluates in the precision evaluation asks for: ``fp16_full_eval`` /
``bf16_full_eval`` enable that precision in the inference config alone (the training
config keeps the precision training asks for, fp32 when only ``*_full_eval`` is set).
A ``zero.Init`` model's partitions are in the dtype of the config it was built under,
and DeepSpeed does not cast such partitions (it takes them to be in the engine's dtype
already), so they are cast to the inference engine's half precision before it is built
(:func:`cast_partitions`), as the whole model is cast for full evaluation.

Only ZeRO-3 partitions parameters; under ZeRO-0/1/2 every process holds the whole model
and evaluates it as it is. A model still whole under ZeRO-3 (built without ``zero.Init``)
is given to an inference engine too, as the reference does: the engine partitions it, so
each device holds its share, and the model stays partitioned afterwards.

Saving such a model before any engine exists needs no engine: its weights are gathered
one submodule at a time (:func:`gather_partitioned_state_dict`).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from trainer_dist._deepspeed_config import (
    ArgumentValues,
    DeepSpeedConfig,
    TrainingFacts,
    half_precision_section,
)

logger = logging.getLogger(__name__)

# What an inference engine must not be given: it builds no optimizer and steps nothing.
_TRAINING_ONLY_SECTIONS = ("optimizer", "scheduler")
_PRECISION_SECTIONS = ("fp16", "bf16", "bfloat16")


def inference_config(
    config: DeepSpeedConfig, values: ArgumentValues, *, hidden_size: int | None
) -> DeepSpeedConfig:
    """The config of an inference-only engine for the run whose config is ``config``.

    The ``optimizer`` and ``scheduler`` sections are dropped (their ``"auto"`` entries,
    some of which need the run's length, with them); the entries that need the model
    (bucket sizes and the persistence threshold, from ``hidden_size``) are filled as for
    training, so that the inference engine partitions and gathers exactly as the
    training engine will. Under ``fp16_full_eval`` / ``bf16_full_eval`` the engine runs
    in that precision whatever the training's (:func:`evaluation_precision`).
    ``config`` itself is left unchanged.

    Raises:
        ValueError: ``config`` is not ZeRO-3 (only ZeRO-3 partitions parameters, so no
            other stage has a model an inference engine must gather), or an ``"auto"``
            entry is left that cannot be filled.
    """
    if config.zero_stage != 3:
        raise ValueError(
            f"An inference-only DeepSpeed engine gathers ZeRO-3 partitions, but this config "
            f"has ZeRO stage {config.zero_stage}, whose processes each hold the whole model. "
            f"Evaluate the model as it is, or use a ZeRO-3 config."
        )
    settings = config.to_dict()
    for section in _TRAINING_ONLY_SECTIONS:
        settings.pop(section, None)
    evaluation_precision(settings, values)
    facts = TrainingFacts(hidden_size=hidden_size, num_training_steps=0)
    return DeepSpeedConfig(settings).resolve_training(values, facts)


def evaluation_precision(settings: dict[str, Any], values: ArgumentValues) -> None:
    """Make ``settings`` (an inference config, changed in place) run in the precision
    ``fp16_full_eval`` / ``bf16_full_eval`` ask for, when the training's differs.

    The training config has no section for a precision that only evaluation asks for
    (training then stays in fp32, as in the reference); this engine only evaluates, so it
    gets one, and any other enabled half precision is turned off. The options a section
    written for that precision holds are kept. Without either flag nothing changes: the
    engine evaluates in the training's precision.
    """
    precision = values.full_eval_precision
    if precision is None or DeepSpeedConfig(settings).mixed_precision == precision:
        return
    for name in _PRECISION_SECTIONS:
        section = settings.get(name)
        if isinstance(section, dict):
            section["enabled"] = False
    written = settings.get(precision)
    settings[precision] = {
        **half_precision_section(precision),
        **(written if isinstance(written, dict) else {}),
        "enabled": True,
    }


def cast_partitions(module: nn.Module, dtype: torch.dtype) -> int:
    """Cast the ZeRO-3 partitions of ``module``'s floating-point parameters to ``dtype``,
    in place; return how many were cast.

    Gathering a partitioned parameter fills it in the dtype of its partition
    (``ds_tensor``), not in the parameter's own: ``module.to(dtype)`` casts only the empty
    local tensors, and DeepSpeed casts no partition when it builds an engine on a
    ``zero.Init`` model. The partition objects are kept (DeepSpeed keeps its bookkeeping
    on them); only their data changes.
    """
    count = 0
    for parameter in module.parameters():
        partition = getattr(parameter, "ds_tensor", None)
        if partition is None or not partition.is_floating_point() or partition.dtype == dtype:
            continue
        partition.data = partition.data.to(dtype)
        parameter.data = parameter.data.to(dtype)
        count += 1
    return count


def warn_if_partitions_stay_uncast(config: DeepSpeedConfig, values: ArgumentValues) -> bool:
    """Say so when full evaluation after training cannot run in its precision; return
    whether it did.

    It goes through the training engine, and under ZeRO-3 that engine's partitions belong
    to its optimizer: they are not cast (that would cut them off the optimizer), so the
    evaluation runs in the training's precision. ``config`` is the training's.
    """
    precision, training = values.full_eval_precision, config.mixed_precision
    if config.zero_stage == 3 and precision not in (None, training):
        logger.warning(
            "%s_full_eval=True after training under ZeRO-3: the training engine's partitions "
            "stay in its precision (%s), so the evaluation runs in it too.",
            precision,
            "fp32" if training == "no" else training,
        )
        return True
    return False


def build_inference_engine(module: Any, settings: dict[str, Any]) -> Any:
    """``deepspeed.initialize`` without an optimizer: an engine that only runs forward.

    Under ZeRO-3 DeepSpeed gives it a ``DeepSpeedZeRoOffload`` in place of an optimizer,
    which registers the hooks that gather each submodule's weights before its forward
    and partition them after. ``settings`` must hold no optimizer section (see
    :func:`inference_config`). The engine is returned in eval mode.
    """
    import deepspeed

    engine, *_ = deepspeed.initialize(model=module, config=settings)
    engine.eval()
    logger.info(
        "ZeRO-3: evaluating the partitioned %s through an inference-only DeepSpeed engine.",
        type(module).__name__,
    )
    return engine


def release_inference_engine(engine: Any) -> None:
    """Undo what an inference engine did to its model, before a training engine wraps it.

    Every parameter gathered and kept (persistent parameters) is partitioned again, the
    parameter-gathering hooks of its ``DeepSpeedZeRoOffload`` are removed
    (``engine.destroy()``), and so are the engine's own forward hooks on the model (which
    ``destroy`` leaves). The model then carries only its ``zero.Init`` partitions, as
    ``from_pretrained`` left it. Calling it twice is harmless. The engine object stays
    callable: its forward calls the model, whose hooks are then the training engine's.
    """
    engine.empty_partition_cache()
    engine.destroy()
    for name in ("module_forward_pre_hook", "module_forward_post_hook"):
        handle = getattr(engine, name, None)
        if handle is not None:
            handle.remove()
            setattr(engine, name, None)


def gather_partitioned_state_dict(module: nn.Module, *, keep: bool) -> dict[str, Any]:
    """The full state dict of a ZeRO-3 partitioned ``module`` that no engine wraps.

    ``zero.Init`` leaves each parameter an empty local tensor (its partition is in
    ``ds_tensor``), so ``module.state_dict()`` would hold shape ``(0,)`` tensors. The
    parameters are gathered one submodule at a time (never the whole model at once) and
    copied to the CPU on the process where ``keep`` is true; the others get ``{}``. Every
    process must call it (each gather is a collective). A parameter shared by several
    submodules (tied embeddings) is one tensor under each of its names, as in
    ``state_dict()``.
    """
    import deepspeed

    state: dict[str, Any] = {}
    copies: dict[int, torch.Tensor] = {}
    for prefix, submodule in module.named_modules(remove_duplicate=False):
        own = list(submodule.named_parameters(recurse=False))
        with deepspeed.zero.GatheredParameters([p for _, p in own], modifier_rank=None):
            if not keep:
                continue
            for name, parameter in own:
                if id(parameter) not in copies:
                    copies[id(parameter)] = parameter.detach().to("cpu", copy=True)
                state[_joined(prefix, name)] = copies[id(parameter)]
            state.update(_persistent_buffers(submodule, prefix))
    return state


def _joined(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _persistent_buffers(module: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    skipped = module._non_persistent_buffers_set
    return {
        _joined(prefix, name): buffer.detach().to("cpu", copy=True)
        for name, buffer in module.named_buffers(recurse=False)
        if buffer is not None and name not in skipped
    }
