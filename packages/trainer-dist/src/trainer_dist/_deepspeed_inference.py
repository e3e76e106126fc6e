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

from trainer_dist._deepspeed_config import ArgumentValues, DeepSpeedConfig, TrainingFacts

logger = logging.getLogger(__name__)

# What an inference engine must not be given: it builds no optimizer and steps nothing.
_TRAINING_ONLY_SECTIONS = ("optimizer", "scheduler")


def inference_config(
    config: DeepSpeedConfig, values: ArgumentValues, *, hidden_size: int | None
) -> DeepSpeedConfig:
    """The config of an inference-only engine for the run whose config is ``config``.

    The ``optimizer`` and ``scheduler`` sections are dropped (their ``"auto"`` entries,
    some of which need the run's length, with them); the entries that need the model
    (bucket sizes and the persistence threshold, from ``hidden_size``) are filled as for
    training, so that the inference engine partitions and gathers exactly as the
    training engine will. ``config`` itself is left unchanged.

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
    facts = TrainingFacts(hidden_size=hidden_size, num_training_steps=0)
    return DeepSpeedConfig(settings).resolve_training(values, facts)


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
