"""From ``TrainingArguments`` to a runtime: the one place that reads the arguments.

The loop never inspects device or precision flags itself; it asks :func:`build_runtime`
for a :class:`trainer_core.Runtime` and talks to that. Attributes are read with
``getattr`` defaults so that argument objects from older or newer releases (and plain
namespaces in tests) work.
"""

from __future__ import annotations

from typing import Any

from trainer_core import Runtime
from trainer_dist._environment import launched_world_size
from trainer_dist._precision import MixedPrecision
from trainer_dist._single import SingleProcessRuntime, refuse_multi_process


def build_runtime(args: Any) -> Runtime:
    """Build the runtime ``args`` (a ``TrainingArguments``) asks for.

    Reads ``use_cpu`` (or the deprecated ``no_cuda``), ``fp16``, ``bf16``,
    ``half_precision_backend``, ``fp16_full_eval``, ``bf16_full_eval``, ``tf32``,
    ``use_ipex``, ``torch_compile`` (also implied by ``torch_compile_backend`` /
    ``torch_compile_mode``), ``fsdp`` and ``deepspeed``. ``ddp_backend``,
    ``ddp_timeout`` and ``local_rank`` only matter with several processes. Seeding is
    left to the caller (``set_seed(args.seed)`` / ``enable_full_determinism``), which
    must happen before the model is created.

    Returns:
        A :class:`SingleProcessRuntime`: multi-process runtimes do not exist yet.

    Raises:
        NotImplementedError: the launcher started several processes (``WORLD_SIZE`` > 1),
            or ``fsdp`` / ``deepspeed`` is set: training alone in each process would
            silently give wrong results, so this refuses instead.
        ValueError: fp16 and bf16 together, or a setting the machine cannot run (see
            :class:`SingleProcessRuntime`).
        trainer_core.MissingExtraError: ``use_ipex`` without the extension installed.
    """
    _refuse_sharding(args)
    refuse_multi_process(launched_world_size())
    return SingleProcessRuntime(
        device="cpu" if _flag(args, "use_cpu") or _flag(args, "no_cuda") else None,
        mixed_precision=_mixed_precision(args),
        half_precision_backend=getattr(args, "half_precision_backend", None) or "auto",
        fp16_full_eval=_flag(args, "fp16_full_eval"),
        bf16_full_eval=_flag(args, "bf16_full_eval"),
        tf32=getattr(args, "tf32", None),
        use_ipex=_flag(args, "use_ipex"),
        torch_compile=_wants_compile(args),
        torch_compile_backend=getattr(args, "torch_compile_backend", None),
        torch_compile_mode=getattr(args, "torch_compile_mode", None),
    )


def _flag(args: Any, name: str) -> bool:
    return bool(getattr(args, name, False))


def _refuse_sharding(args: Any) -> None:
    for option in ("fsdp", "deepspeed"):
        value = getattr(args, option, None)
        if value:
            raise NotImplementedError(
                f"{option}={value!r} was requested, but only the single-process runtime "
                f"exists so far: multi-process runtimes (DDP, FSDP, DeepSpeed) arrive with "
                f"the trainer-dist distributed work. Unset {option} to train in one process."
            )


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
