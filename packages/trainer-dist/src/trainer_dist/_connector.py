"""From ``TrainingArguments`` to a runtime: the one place that reads the arguments.

The loop never inspects device or precision flags itself; it asks :func:`build_runtime`
for a :class:`trainer_core.Runtime` and talks to that. Attributes are read with
``getattr`` defaults so that argument objects from older or newer releases (and plain
namespaces in tests) work.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from typing import Any

import torch

from trainer_core import Runtime
from trainer_dist._accelerate_fsdp import accelerate_fsdp_request
from trainer_dist._ddp import DDPOptions, DistributedRuntime, start_process_group
from trainer_dist._deepspeed_config import (
    ArgumentValues,
    DeepSpeedConfig,
    accelerate_deepspeed_config,
    launcher_mixed_precision,
)
from trainer_dist._environment import ProcessPlacement, launched_world_size
from trainer_dist._fsdp import FSDPRuntime
from trainer_dist._fsdp_settings import FSDPSettings, option_words, parse_fsdp
from trainer_dist._precision import MixedPrecision
from trainer_dist._sharding import ShardingOptions
from trainer_dist._single import SingleProcessRuntime
from trainer_dist._xla_settings import XlaFSDPSettings, parse_xla_fsdp, wants_xla

logger = logging.getLogger(__name__)


def build_runtime(args: Any) -> Runtime:
    """Build the runtime ``args`` (a ``TrainingArguments``) and the launcher ask for.

    Without a launcher: a :class:`SingleProcessRuntime`. Under a launcher that started
    several processes (``torchrun``, ``accelerate launch``,
    ``python -m torch.distributed.launch``, MPI): a :class:`DistributedRuntime` (DDP),
    or an :class:`FSDPRuntime` when ``fsdp`` is set (also for one launched process).
    A :class:`DeepSpeedRuntime` when ``deepspeed`` is set, or when ``accelerate launch``
    started the processes with a DeepSpeed config file or DeepSpeed plugin options
    (``ACCELERATE_USE_DEEPSPEED`` and ``ACCELERATE_DEEPSPEED_*``); ``deepspeed`` wins
    when both are present. Without a launcher, DeepSpeed runs as a group of one process.
    ``accelerate launch`` with FSDP (``ACCELERATE_USE_FSDP`` and ``FSDP_*``) gives an
    :class:`FSDPRuntime` when the arguments name no ``fsdp``, and its
    ``--mixed_precision`` (``ACCELERATE_MIXED_PRECISION``) applies when the arguments ask
    for neither fp16 nor bf16, as the reference's Trainer takes them from the launcher.

    Reads ``use_cpu`` (or the deprecated ``no_cuda``), ``fp16``, ``bf16``,
    ``half_precision_backend``, ``fp16_full_eval``, ``bf16_full_eval``, ``tf32``,
    ``use_ipex``, ``torch_compile`` (also implied by ``torch_compile_backend`` /
    ``torch_compile_mode``), ``fsdp``, ``fsdp_config``, ``deepspeed``, ``ddp_backend``,
    ``ddp_timeout``, ``ddp_find_unused_parameters``, ``ddp_bucket_cap_mb``,
    ``ddp_broadcast_buffers``, ``ddp_static_graph`` and the data-loader keys of
    ``accelerator_config`` (see :func:`sharding_options`). Every check runs before a
    process group starts. Seeding is left to the caller (``set_seed(args.seed)``), which must
    happen before the model is created.

    Raises:
        ValueError: conflicting or impossible settings: fp16 with bf16, fsdp with
            deepspeed, fsdp without a launcher, an unknown fsdp word or an fsdp_config
            value that cannot be read (an unknown key is only warned about), nccl on the
            CPU, a precision the device cannot run.
        ValueError: ``accelerator_config`` split_batches with a batch size that is not
            a multiple of the number of processes; split_batches or even_batches=False
            with XLA FSDP.
        NotImplementedError: ``fsdp_config['xla_fsdp_v2']`` (SPMD FSDPv2 is not implemented).
        trainer_core.MissingExtraError: ``use_ipex`` without the extension,
            ``fsdp_config['xla']`` without torch_xla, or DeepSpeed without deepspeed.
        trainer_dist.DeepSpeedConfigMismatchError: the DeepSpeed config contradicts the
            arguments (every disagreement listed in one message).
        RuntimeError: the launcher's processes did not form one group.
    """
    precision = _precision_options(args)
    deepspeed = deepspeed_config_source(args, os.environ)
    settings = _check_sharding(args, deepspeed)
    world = launched_world_size()
    sharding = sharding_options(args, num_processes=world)
    if deepspeed is not None:
        return _deepspeed_runtime(args, deepspeed, precision, sharding)
    if precision["mixed_precision"] == "no":
        precision["mixed_precision"] = _launcher_precision(args)
    if isinstance(settings, XlaFSDPSettings):  # processes started by torch_xla, no launcher
        _refuse_xla_sharding(sharding)
        from trainer_dist._xla import XlaFSDPRuntime  # off the import path of every run

        return XlaFSDPRuntime(settings, **precision)
    launched = world > 1 or (settings is not None and _is_launched())
    if settings is not None and not launched:
        raise ValueError(
            f"fsdp={_fsdp_text(args)!r} shards the model across processes, but this process "
            f"was not started by a launcher. Launch the script with several processes, e.g. "
            f"`torchrun --nproc_per_node 2 train.py ...` or `accelerate launch --multi_gpu "
            f"--num_processes 2 train.py ...`, or unset fsdp to train in one process."
        )
    if not launched:
        return SingleProcessRuntime(
            device="cpu" if uses_cpu(args) else None,
            use_ipex=_flag(args, "use_ipex"),
            **precision,
        )
    if _flag(args, "use_ipex"):
        raise ValueError(
            "use_ipex=True is only supported by the single-process runtime here; "
            "unset use_ipex for multi-process training."
        )
    common = {
        "use_cpu": uses_cpu(args),
        "backend": getattr(args, "ddp_backend", None),
        "timeout_seconds": getattr(args, "ddp_timeout", None),
        "sharding": sharding,
        **precision,
    }
    if settings is not None:
        return FSDPRuntime(settings, **common)
    return DistributedRuntime(ddp=_ddp_options(args), **common)


def _precision_options(args: Any) -> dict[str, Any]:
    return {
        "mixed_precision": _mixed_precision(args),
        "half_precision_backend": getattr(args, "half_precision_backend", None) or "auto",
        "fp16_full_eval": _flag(args, "fp16_full_eval"),
        "bf16_full_eval": _flag(args, "bf16_full_eval"),
        "tf32": getattr(args, "tf32", None),
        "torch_compile": _wants_compile(args),
        "torch_compile_backend": getattr(args, "torch_compile_backend", None),
        "torch_compile_mode": getattr(args, "torch_compile_mode", None),
    }


def deepspeed_config_source(args: Any, environ: Mapping[str, str]) -> Any:
    """The DeepSpeed config this run asks for, or ``None`` for no DeepSpeed.

    ``args.deepspeed`` (a path or a dict) first; else what ``accelerate launch`` announced
    in ``environ`` (a config file path, or a config built from its plugin options).
    """
    config = getattr(args, "deepspeed", None)
    if config:
        return config
    return accelerate_deepspeed_config(environ)


def requested_deepspeed_config(args: Any, environ: Mapping[str, str]) -> DeepSpeedConfig | None:
    """The DeepSpeed config ``args`` (or the launcher) ask for, not yet resolved; ``None``
    without DeepSpeed, and with ``fsdp`` set too (that pair is refused on its own)."""
    if getattr(args, "fsdp", None):
        return None
    source = deepspeed_config_source(args, environ)
    return None if source is None else DeepSpeedConfig(source)


def deepspeed_argument_values(args: Any, environ: Mapping[str, str]) -> ArgumentValues:
    """What ``args`` and the launcher decide in a DeepSpeed config (batch sizes for the
    launched number of processes, clipping, optimizer values, precision).

    Under ``split_batches`` a process's micro-batch is ``per_device_train_batch_size``
    divided by the number of processes (the argument is then the global batch), and
    that is what the config's ``train_micro_batch_size_per_gpu`` must say.

    Raises:
        ValueError: ``split_batches`` with a batch size that is not a multiple of the
            number of processes.
    """
    world = launched_world_size()
    values = ArgumentValues.from_arguments(
        args, world_size=world, launcher_precision=launcher_mixed_precision(environ)
    ).with_launcher(environ)
    if not sharding_options(args, num_processes=world).split_batches:
        return values
    micro = values.per_device_train_batch_size // world
    return dataclasses.replace(values, per_device_train_batch_size=micro)


def check_deepspeed_config(args: Any) -> None:
    """The arguments hook that refuses a bad DeepSpeed config where ``TrainingArguments``
    are built, not when the Trainer is built or training starts.

    trainer-args knows nothing of DeepSpeed's config; it runs the arguments hooks when
    DeepSpeed is asked for, and this is trainer-dist's check. It resolves the config
    against the arguments as the runtime will: every written-out value that contradicts
    them is reported together in one error, and so is an ``"auto"`` that nothing can fill.
    It reads the config and the launcher's environment only: DeepSpeed is not imported
    and no process group starts.

    Raises:
        DeepSpeedConfigMismatchError: written-out values contradict the arguments.
        ValueError: the config cannot be read, or holds an ``"auto"`` nothing fills.
    """
    config = requested_deepspeed_config(args, os.environ)
    if config is not None:
        config.resolve_arguments(deepspeed_argument_values(args, os.environ))


def _deepspeed_runtime(
    args: Any, config: Any, precision: dict[str, Any], sharding: ShardingOptions
) -> Runtime:
    if _flag(args, "use_ipex"):
        raise ValueError(
            "use_ipex=True is only supported by the single-process runtime here; unset "
            "use_ipex to train with DeepSpeed."
        )
    from trainer_dist._deepspeed import DeepSpeedRuntime  # off the import path of every run

    return DeepSpeedRuntime(
        config,
        values=deepspeed_argument_values(args, os.environ),
        use_cpu=uses_cpu(args),
        backend=getattr(args, "ddp_backend", None),
        timeout_seconds=getattr(args, "ddp_timeout", None),
        sharding=sharding,  # passed on to DistributedRuntime with the other options
        **precision,
    )


def _launcher_precision(args: Any) -> MixedPrecision:
    """``accelerate launch``'s ``--mixed_precision``, for arguments that ask for none.

    Like accelerate, fp16 from the launcher is dropped on a CPU-only run (fp16 autocast
    needs an accelerator) rather than failing a script that runs everywhere else.
    """
    chosen = launcher_mixed_precision(os.environ)
    if chosen is None:
        return "no"
    if chosen == "fp16" and (uses_cpu(args) or not torch.cuda.is_available()):
        logger.info("accelerate launch asked for fp16, which the CPU cannot run; training in fp32.")
        return "no"
    return "bf16" if chosen == "bf16" else "fp16"


def _ddp_options(args: Any) -> DDPOptions:
    return DDPOptions(
        find_unused_parameters=getattr(args, "ddp_find_unused_parameters", None),
        bucket_cap_mb=getattr(args, "ddp_bucket_cap_mb", None),
        broadcast_buffers=getattr(args, "ddp_broadcast_buffers", None),
        static_graph=getattr(args, "ddp_static_graph", None),
    )


def sharding_options(args: Any, *, num_processes: int) -> ShardingOptions:
    """The data-loader keys of ``args.accelerator_config``, checked for ``num_processes``.

    ``split_batches`` and ``even_batches`` decide how loaders are shared (see
    :class:`ShardingOptions`); the deprecated top-level ``split_batches`` is read too
    when an argument object still carries it. ``dispatch_batches`` and
    ``use_seedable_sampler`` are accepted with any value: they change how accelerate
    produces the samples, not which samples a process gets, and the runtime's loaders
    already give every process the samples accelerate's options do (see the package
    README). With one process every value means the same.

    Raises:
        ValueError: ``split_batches`` with ``per_device_train_batch_size`` or
            ``per_device_eval_batch_size`` not a multiple of ``num_processes``.
    """
    config = _accelerator_config(args)
    split = config.get("split_batches")
    if split is None:
        split = getattr(args, "split_batches", None)
    even = config.get("even_batches")
    options = ShardingOptions(
        split_batches=bool(split), even_batches=True if even is None else bool(even)
    )
    for name in ("per_device_train_batch_size", "per_device_eval_batch_size"):
        options.check_batch_size(getattr(args, name, None), num_processes, name=name)
    return options


def _accelerator_config(args: Any) -> dict[str, Any]:
    """``args.accelerator_config`` as a dict: a mapping (what TrainingArguments holds),
    an object with ``to_dict()`` (transformers' ``AcceleratorConfig``), or ``None``."""
    config = getattr(args, "accelerator_config", None)
    if config is None:
        return {}
    if isinstance(config, Mapping):
        return dict(config)
    if hasattr(config, "to_dict"):
        return dict(config.to_dict())
    return dict(vars(config))


def _refuse_xla_sharding(sharding: ShardingOptions) -> None:
    if sharding != ShardingOptions():
        raise ValueError(
            f"accelerator_config split_batches={sharding.split_batches} / even_batches="
            f"{sharding.even_batches} is not supported with XLA FSDP (fsdp_config "
            f"'xla'), whose loaders always give each process whole, even batches. Remove "
            f"split_batches and even_batches from accelerator_config."
        )


def uses_cpu(args: Any) -> bool:
    """Whether the arguments keep the run on the CPU (``use_cpu``, or ``no_cuda``)."""
    return _flag(args, "use_cpu") or _flag(args, "no_cuda")


def start_group_for(args: Any) -> ProcessPlacement:
    """Join the launcher's processes into the group a runtime built from ``args`` uses
    (the same device kind, ``ddp_backend`` and ``ddp_timeout``); an existing group is kept.

    For the hooks that need the group before the runtime exists (``zero.Init``,
    ``main_process_first``). Raises as :func:`start_process_group` does.
    """
    return start_process_group(
        cpu=uses_cpu(args),
        backend=getattr(args, "ddp_backend", None),
        timeout_seconds=getattr(args, "ddp_timeout", None),
    )


def _is_launched() -> bool:
    return any(os.environ.get(name) for name in ("LOCAL_RANK", "RANK"))


def _flag(args: Any, name: str) -> bool:
    return bool(getattr(args, name, False))


def _fsdp_text(args: Any) -> str:
    return " ".join(option_words(getattr(args, "fsdp", None)))


def _check_sharding(args: Any, deepspeed: Any) -> FSDPSettings | XlaFSDPSettings | None:
    """Validate fsdp / deepspeed / xla settings; return the FSDP settings if FSDP is on.

    FSDP comes from the arguments or, when they name none, from ``accelerate launch``
    (``ACCELERATE_USE_FSDP`` and ``FSDP_*``); the arguments win, as in the reference.
    """
    fsdp = getattr(args, "fsdp", None)
    config = getattr(args, "fsdp_config", None) or {}
    launcher = None if fsdp or wants_xla(config) else accelerate_fsdp_request(os.environ)
    if (fsdp or launcher) and deepspeed is not None:
        sharding = (
            f"fsdp={_fsdp_text(args)!r}"
            if fsdp
            else "accelerate launch with FSDP (ACCELERATE_USE_FSDP=true)"
        )
        origin = (
            f"deepspeed={deepspeed!r}"
            if getattr(args, "deepspeed", None)
            else "accelerate launch with DeepSpeed (ACCELERATE_USE_DEEPSPEED=true)"
        )
        raise ValueError(
            f"{sharding} and {origin} were both set; they are two ways of sharding the "
            f"model. Keep one of them."
        )
    if wants_xla(config):
        return parse_xla_fsdp(fsdp, config)
    if launcher is not None:
        return parse_fsdp(*launcher)
    if not fsdp:
        return None
    return parse_fsdp(fsdp, config)


def _mixed_precision(args: Any) -> MixedPrecision:
    fp16, bf16 = _flag(args, "fp16"), _flag(args, "bf16")
    if fp16 and bf16:
        raise ValueError(
            "fp16=True and bf16=True were both set; mixed precision uses one half-precision "
            "type. Keep fp16=True (CUDA) or bf16=True (CPU, Ampere+ GPUs), not both."
        )
    return "fp16" if fp16 else "bf16" if bf16 else "no"


def _wants_compile(args: Any) -> bool:
    return _flag(args, "torch_compile") or any(
        getattr(args, name, None) for name in ("torch_compile_backend", "torch_compile_mode")
    )
