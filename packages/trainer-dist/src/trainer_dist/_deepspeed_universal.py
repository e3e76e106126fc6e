"""Resuming a DeepSpeed ZeRO checkpoint on another number of processes.

A ZeRO checkpoint (``engine.save_checkpoint``) holds one optimizer partition per
data-parallel process, and under ZeRO-3 one weight partition per process too.
``engine.load_checkpoint`` reads them back only on as many processes as wrote them: with
the optimizer state it raises ``ZeRORuntimeException`` ("The checkpoint being loaded used
a DP world size of N but the current world size is M"), and a ZeRO-3 process whose rank
wrote no file finds nothing to load.

DeepSpeed's answer is the *universal checkpoint*: ``deepspeed.checkpoint.ds_to_universal``
rewrites the partitions as one folder per parameter (fp32 weights and Adam's two moments,
whole), and an engine whose config sets ``checkpoint.load_universal`` cuts its own
partitions out of them, for any number of processes (ZeRO 1-3). This module decides when
that detour is needed and takes it:

* :func:`read_zero_layout` tells, from the checkpoint's file names alone (nothing is
  unpickled), how many processes wrote it and whether they partitioned the weights.
* :func:`choose_load_path` picks DeepSpeed's direct load when the layout matches the
  running engine, the universal conversion when the optimizer state must move to another
  number of processes, and the merged fp32 weights (``zero_to_fp32``) when only weights
  are asked for. What DeepSpeed cannot convert is refused there, before anything is
  written.
* :func:`universal_copy` converts on the main process into a temporary folder next to the
  checkpoint (never touching the checkpoint), shares its path with every process, and
  removes it once all of them have loaded it; :func:`load_universal` loads it.

The converter carries only Adam's state (``exp_avg``, ``exp_avg_sq``, ``step``), so other
optimizers are refused (:func:`check_universal_optimizer`). DeepSpeed's ZeRO-3 universal
loader (0.19) mishandles several parameter groups (the Trainer makes two: with and
without weight decay): it gives every group the first group's hyperparameters, and one
shared ``step`` tensor that Adam then advances once per group. :func:`load_universal`
repairs both after loading (each group's settings from the converted checkpoint, one
step counter per group), so that a resumed run continues like the uninterrupted one.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch

logger = logging.getLogger(__name__)

LATEST_FILE = "latest"
LoadPath = Literal["direct", "universal", "merged"]

_OPTIMIZER_FILE = re.compile(r"^(?:bf16_)?zero_pp_rank_(\d+)_mp_rank_(\d+)_optim_states\.pt$")
_PARTITIONED_MODEL_FILE = re.compile(r"^zero_pp_rank_(\d+)_mp_rank_(\d+)_model_states\.pt$")
# Optimizers whose whole state is Adam's moments and step: all the converter carries.
_ADAM_OPTIMIZERS = frozenset(("Adam", "AdamW", "FusedAdam", "DeepSpeedCPUAdam"))
_SCRATCH_PREFIX = ".universal-"


@dataclass(frozen=True)
class ZeroCheckpointLayout:
    """How the processes that wrote a DeepSpeed checkpoint split it.

    Attributes:
        tag: the ``global_step<N>`` sub-folder holding the files.
        world_size: the data-parallel processes that wrote ZeRO optimizer partitions;
            ``None`` when there are none (ZeRO-0: one full optimizer state).
        partitions_parameters: whether each process also wrote a partition of the
            weights (ZeRO-3) rather than the full weights being written once.
        model_parallel_size: tensor/model-parallel ranks (``mp_rank_<k>``); 1 here.
    """

    tag: str
    world_size: int | None
    partitions_parameters: bool
    model_parallel_size: int = 1


def checkpoint_tag(directory: str) -> str:
    """The ``global_step<N>`` folder that ``directory``'s ``latest`` file names.

    Raises:
        FileNotFoundError: there is no ``latest`` file.
    """
    path = os.path.join(directory, LATEST_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{directory!r} holds no DeepSpeed checkpoint (no '{LATEST_FILE}' file naming a "
            f"global_step<N> folder). Pass a folder written by save_sharded_state."
        )
    with open(path, encoding="utf-8") as handle:
        return handle.read().strip()


def read_zero_layout(directory: str, tag: str | None = None) -> ZeroCheckpointLayout:
    """Read the layout of the checkpoint in ``directory`` (``tag``: default ``latest``'s)
    from its file names.

    Raises:
        FileNotFoundError: no ``latest`` file (and no ``tag``), or no such tag folder.
        ValueError: the partitions of some ranks are missing (an incomplete copy).
    """
    tag = tag if tag is not None else checkpoint_tag(directory)
    folder = os.path.join(directory, tag)
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"The DeepSpeed checkpoint {directory!r} names {tag!r} as its latest state, but "
            f"there is no such folder. Pass a complete folder written by save_sharded_state."
        )
    names = os.listdir(folder)
    optimizer_ranks = _ranks(names, _OPTIMIZER_FILE)
    data_ranks = sorted({data for data, _ in optimizer_ranks})
    if data_ranks != list(range(len(data_ranks))):
        raise ValueError(
            f"The DeepSpeed checkpoint {folder!r} holds optimizer partitions of ranks "
            f"{data_ranks} only; a checkpoint holds one per rank, 0 to N-1. Copy the whole "
            f"folder the training processes wrote."
        )
    model_ranks = {model for _, model in optimizer_ranks}
    return ZeroCheckpointLayout(
        tag=tag,
        world_size=len(data_ranks) or None,
        partitions_parameters=bool(_ranks(names, _PARTITIONED_MODEL_FILE)),
        model_parallel_size=max(len(model_ranks), 1),
    )


def _ranks(names: list[str], pattern: re.Pattern[str]) -> set[tuple[int, int]]:
    matches = (pattern.match(name) for name in names)
    return {(int(m.group(1)), int(m.group(2))) for m in matches if m is not None}


def choose_load_path(
    layout: ZeroCheckpointLayout,
    *,
    zero_stage: int,
    world_size: int,
    with_optimizer: bool,
    directory: str = "",
) -> LoadPath:
    """How an engine of ``zero_stage`` on ``world_size`` data-parallel processes loads a
    checkpoint of ``layout``.

    ``"direct"``: ``engine.load_checkpoint`` as it is (same layout, or no ZeRO partitions
    on either side). ``"merged"``: only weights are wanted from another layout; they are
    merged into full fp32 weights first. ``"universal"``: the optimizer state moves to
    another number of processes through DeepSpeed's universal checkpoint.

    Raises:
        ValueError: the optimizer state cannot move (ZeRO-3 partitions into a ZeRO-1/2
            engine or the reverse, or a model-parallel checkpoint); nothing was loaded.
    """
    if layout.world_size is None or zero_stage == 0:
        return "direct"
    partitions_parameters = zero_stage == 3
    if layout.world_size == world_size and layout.partitions_parameters == partitions_parameters:
        return "direct"
    if not with_optimizer:
        return "merged"
    where = _describe(layout, directory, world_size)
    if layout.partitions_parameters != partitions_parameters:
        saved = "ZeRO-3" if layout.partitions_parameters else "ZeRO-1/2"
        raise ValueError(
            f"{where} It was written under {saved}, and this run uses ZeRO-{zero_stage}: "
            f"DeepSpeed moves optimizer state between ZeRO-3 and ZeRO-1/2 layouts in neither "
            f"direction. Resume with the checkpoint's ZeRO stage (zero_optimization.stage), "
            f"or start a new run from its weights alone (export_deepspeed_checkpoint)."
        )
    if layout.model_parallel_size != 1:
        raise ValueError(
            f"{where} It holds {layout.model_parallel_size} model-parallel ranks, which this "
            f"runtime does not use. Resume it on {layout.world_size} processes with the "
            f"model parallelism it was written with."
        )
    return "universal"


def _describe(layout: ZeroCheckpointLayout, directory: str, world_size: int) -> str:
    return (
        f"The DeepSpeed checkpoint {directory!r} was written by {layout.world_size} "
        f"data-parallel processes; this run has {world_size}."
    )


def check_universal_optimizer(
    optimizer: Any, layout: ZeroCheckpointLayout, *, world_size: int, directory: str = ""
) -> None:
    """Refuse an optimizer whose state the universal conversion would lose.

    DeepSpeed's converter copies Adam's moments (``exp_avg``, ``exp_avg_sq``) and step,
    nothing else: SGD's momentum, AMSGrad's maxima or Adagrad's sums would be dropped.

    Raises:
        ValueError: ``optimizer`` is not Adam/AdamW (torch's or DeepSpeed's), or uses
            ``amsgrad``.
    """
    name = type(optimizer).__name__
    groups = getattr(optimizer, "param_groups", None) or []
    amsgrad = any(group.get("amsgrad") for group in groups)
    if name in _ADAM_OPTIMIZERS and not amsgrad:
        return
    what = f"{name} with amsgrad=True" if amsgrad else name
    raise ValueError(
        f"{_describe(layout, directory, world_size)} Moving its optimizer state to another "
        f"number of processes goes through DeepSpeed's universal checkpoint, which carries "
        f"Adam's state only (exp_avg, exp_avg_sq, step); this run's optimizer is {what}, "
        f"whose state it would lose. Resume on {layout.world_size} processes, or train with "
        f"Adam/AdamW (optim='adamw_torch', amsgrad off)."
    )


def convert_to_universal(directory: str, tag: str, destination: str) -> str:
    """Write the universal form of ``directory/tag`` as ``destination/tag`` (DeepSpeed's
    ``ds_to_universal``, in this process); return that folder.

    ``destination`` also receives the ``latest_universal`` file; ``directory`` is only read.
    The converter's progress output is captured and logged at debug level.

    Raises:
        RuntimeError: the conversion failed (with the converter's last output).
    """
    from deepspeed.checkpoint import ds_to_universal

    output = os.path.join(destination, tag)
    options = argparse.Namespace(
        input_folder=os.path.join(directory, tag),
        output_folder=output,
        num_extract_workers=1,  # no worker processes inside a training process
        num_merge_workers=1,
        keep_temp_folder=False,
        strict=True,
        inject_missing_state=True,  # engines without tensor parallelism record no info
    )
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            ds_to_universal.main(options)
    except Exception as error:
        raise RuntimeError(
            f"DeepSpeed's universal conversion of {options.input_folder!r} failed: {error!r}. "
            f"Resume on as many processes as wrote the checkpoint, or load only its weights. "
            f"The converter's output ended with:\n{printed.getvalue()[-2000:]}"
        ) from error
    logger.debug("ds_to_universal output:\n%s", printed.getvalue())
    return output


@contextlib.contextmanager
def universal_copy(directory: str, tag: str, *, is_main_process: bool) -> Iterator[str]:
    """A universal copy of ``directory/tag`` that every process can read; yields the
    folder that holds ``tag`` (collective: every process enters and leaves it).

    The main process converts into a new hidden folder next to ``directory`` (on the
    storage every process already reads the checkpoint from) while the others wait for
    its path; a failure raises the same error everywhere. The folder is removed once every
    process has left the block.

    Raises:
        RuntimeError: the conversion failed, or the folder could not be created.
    """
    import torch.distributed as dist

    message: list[str | None] = [None, None]
    if is_main_process:
        message = _convert_beside(directory, tag)
    dist.broadcast_object_list(message, src=0)
    root, error = message
    if error is not None or root is None:
        raise RuntimeError(error)
    try:
        yield root
    finally:
        dist.barrier()
        if is_main_process:
            shutil.rmtree(root, ignore_errors=True)


def _convert_beside(directory: str, tag: str) -> list[str | None]:
    """``[root, None]`` after converting into a new folder beside ``directory``, or
    ``[None, message]`` (so that every process can raise it)."""
    parent, name = os.path.split(os.path.abspath(directory))
    root = os.path.join(parent, f"{_SCRATCH_PREFIX}{name}-{uuid.uuid4().hex[:8]}")
    try:
        os.mkdir(root)
    except OSError as error:
        return [
            None,
            f"Cannot create {root!r} for the universal copy of the DeepSpeed checkpoint "
            f"{directory!r} ({error}). Copy the checkpoint into a folder this run can write "
            f"to and resume from there.",
        ]
    try:
        convert_to_universal(directory, tag, root)
    except Exception as error:  # the other processes wait for word of any failure
        shutil.rmtree(root, ignore_errors=True)
        if isinstance(error, RuntimeError):
            return [None, str(error)]
        return [None, f"Converting the DeepSpeed checkpoint {directory!r} failed: {error!r}"]
    return [root, None]


def load_universal(engine: Any, root: str, tag: str, *, strict: bool = True) -> None:
    """Load the universal checkpoint ``root/tag`` (weights and optimizer state) into
    ``engine``, on its current number of processes (collective); ``strict=False`` for a
    checkpoint that lacks an adapter model's frozen parameters.

    DeepSpeed reads ``checkpoint.load_universal`` from the engine's config only while
    loading, so it is switched on for this one call. The scheduler is the loop's, not
    loaded here.

    Raises:
        FileNotFoundError: DeepSpeed found no checkpoint under ``root/tag``.
    """
    config = engine._config  # the engine's parsed config; its flag is read at load time
    previous = config.load_universal_checkpoint
    config.load_universal_checkpoint = True
    try:
        path, _ = engine.load_checkpoint(
            root,
            tag=tag,
            load_optimizer_states=True,
            load_lr_scheduler_states=False,
            load_module_strict=strict,
        )
    finally:
        config.load_universal_checkpoint = previous
    if path is None:
        raise FileNotFoundError(f"DeepSpeed found no universal checkpoint in {root!r}/{tag}.")
    base_optimizer = engine.optimizer.optimizer  # the torch optimizer inside ZeRO's
    separate_step_counters(base_optimizer)
    if engine.zero_optimization_partition_weights():
        restore_group_settings(base_optimizer, read_param_groups(root, tag))


def separate_step_counters(optimizer: Any) -> None:
    """Give every state of ``optimizer`` a ``step`` tensor of its own.

    DeepSpeed's ZeRO-3 universal loader assigns one step tensor to every parameter group;
    torch's Adam increments it in place, once per group, so the second group would step
    its bias correction twice per optimizer step.
    """
    seen: set[int] = set()
    for state in optimizer.state.values():
        step = state.get("step") if isinstance(state, dict) else None
        if not isinstance(step, torch.Tensor):
            continue
        if id(step) in seen:
            state["step"] = step = step.clone()
        seen.add(id(step))


def restore_group_settings(optimizer: Any, saved: list[dict[str, Any]]) -> None:
    """Give each parameter group of ``optimizer`` the hyperparameters (learning rate,
    weight decay, betas...) of the same group in ``saved`` (its ``params`` are kept).

    DeepSpeed's ZeRO-3 universal loader copies the first group's to every group.

    Raises:
        ValueError: ``saved`` has another number of parameter groups.
    """
    groups = optimizer.param_groups
    if len(saved) != len(groups):
        raise ValueError(
            f"The universal checkpoint has {len(saved)} optimizer parameter groups; this "
            f"run's optimizer has {len(groups)}. Build the optimizer with the parameter "
            f"groups of the run that wrote the checkpoint."
        )
    for group, settings in zip(groups, saved, strict=True):
        group.update({key: value for key, value in settings.items() if key != "params"})


def read_param_groups(root: str, tag: str) -> list[dict[str, Any]]:
    """The optimizer's parameter groups stored in the universal checkpoint ``root/tag``.

    Read with ``weights_only=True``, allowing only the DeepSpeed classes that file holds
    (the ZeRO stage enum and the loss scalers).
    """
    from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum

    path = os.path.join(root, tag, "zero", "optimizer_state.pt")
    with torch.serialization.safe_globals([ZeroStageEnum, LossScaler, DynamicLossScaler]):
        state = torch.load(path, map_location="cpu", weights_only=True)
    groups = state.get("param_groups")
    if groups is None:
        groups = state["optimizer_state_dict"]["param_groups"]
    return list(groups)
