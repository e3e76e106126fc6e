"""Resuming ``train()`` from a checkpoint exactly where the stopped run was.

What a resumed run must get back, and when:

* model, optimizer, scheduler, loss scaler and ``TrainerState``: once, before training,
  on every process (through the runtime: see ``_saving.restore_checkpoint``);
* the position in the data: the epoch to continue and the batches of it already
  trained on. Our samplers jump there (:meth:`SeekableRandomSampler.seek`: the pass is
  redrawn from the generator state stored in the checkpoint and the trained part left
  out), so resuming late in a long epoch costs one permutation, not a pass over the
  skipped batches. Other samplers fall back to drawing and dropping those batches, as
  the reference does. A stream (no length) has no sampler and its passes may end at
  any step, so its checkpoints record the epoch and batch reached
  (:class:`StreamPosition`) and a resumed run draws and drops that many batches of it;
* the global random generators (dropout, augmentation): at the moment the stopped run
  saved them. Creating an epoch's data iterator draws from torch's generator, so the
  states are restored *after* that call when the checkpoint is mid-epoch, and *before*
  it when the checkpoint closed an epoch.

On the CPU this makes a stopped-and-resumed run end with the same weights, bit for bit,
as one that never stopped.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

from trainer_core import ExportableState, LoadedCheckpoint, TrainerState
from trainer_loop._saving import CHECKPOINT_PREFIX, restore_checkpoint
from trainer_loop._trainer_setup import user_defines

if TYPE_CHECKING:
    from trainer_loop._trainer import Trainer
    from trainer_loop._training_loop import TrainingLoop
    from trainer_loop._training_plan import TrainingPlan

logger = logging.getLogger(__name__)

# Fields of the saved state that describe the new run rather than the progress so far.
_RUN_FIELDS = (
    "max_steps",
    "num_train_epochs",
    "logging_steps",
    "eval_steps",
    "save_steps",
    "train_batch_size",
    "is_hyper_param_search",
    "is_local_process_zero",
    "is_world_process_zero",
)


@dataclass
class ResumePoint:
    """Where a resumed run continues.

    Attributes:
        loaded: What the store read (state, RNG, scaler).
        epoch: The epoch the run continues in.
        batches_to_skip: Batches of that epoch already trained on.
        mid_epoch: Whether the checkpoint was taken inside ``epoch`` (else at its start).
    """

    loaded: LoadedCheckpoint
    epoch: int
    batches_to_skip: int
    mid_epoch: bool


def resolve_checkpoint(trainer: Trainer, resume_from_checkpoint: Any) -> str | None:
    """The checkpoint folder ``train(resume_from_checkpoint=...)`` asks for, or None.

    Raises:
        ValueError: ``True`` but ``output_dir`` holds no complete checkpoint, or a path
            to a folder of checkpoints (an ``output_dir``) instead of one of them.
        FileNotFoundError: a path that does not exist (a ``ValueError`` too, which the
            reference raises there).
        TypeError: neither a bool, None nor a path.
    """
    if resume_from_checkpoint is None or resume_from_checkpoint is False:
        _warn_of_earlier_run(trainer)
        return None
    output_dir = trainer.args.output_dir
    if _is_true_word(resume_from_checkpoint):
        resume_from_checkpoint = True  # from a command line: --resume_from_checkpoint True
    if resume_from_checkpoint is True:
        latest = trainer.checkpoint_store.latest(output_dir)
        if latest is None:
            raise ValueError(
                f"resume_from_checkpoint=True, but output_dir={output_dir!r} holds no complete "
                "checkpoint-<step> folder. Train without resume_from_checkpoint first, or pass "
                "the path of a checkpoint."
            )
        return latest
    if not isinstance(resume_from_checkpoint, (str, os.PathLike)):
        raise TypeError(
            "resume_from_checkpoint must be True, None or the path of a checkpoint folder, "
            f"got {type(resume_from_checkpoint).__name__}."
        )
    path = os.fspath(resume_from_checkpoint)
    if not os.path.isdir(path):
        from trainer_checkpoint import CheckpointNotFoundError  # a ValueError too, as there

        raise CheckpointNotFoundError(
            f"resume_from_checkpoint={path!r}: no such folder. Pass a checkpoint-<step> "
            f"folder (e.g. {os.path.join(output_dir, 'checkpoint-500')}) or True for the "
            "latest one in output_dir."
        )
    newest = trainer.checkpoint_store.latest(path)
    if newest is not None:  # a folder of checkpoints, typically an output_dir
        same = os.path.abspath(path) == os.path.abspath(output_dir)
        raise ValueError(
            f"resume_from_checkpoint={path!r} is a folder of checkpoints, not a checkpoint. "
            f"Pass {'True' if same else repr(newest)} to resume from its newest complete one "
            f"({os.path.basename(newest)}), or the path of the checkpoint-<step> folder you want."
        )
    _warn_of_newer_checkpoints(trainer, path)
    return path


def _is_true_word(value: Any) -> bool:
    """Whether ``value`` is the text "true" (any case) and no folder of that name exists:
    ``HfArgumentParser`` hands ``--resume_from_checkpoint True`` over as a string."""
    return isinstance(value, str) and value.strip().lower() == "true" and not os.path.isdir(value)


def _checkpoint_step(path: str) -> int | None:
    name = os.path.basename(os.path.normpath(path))
    prefix = f"{CHECKPOINT_PREFIX}-"
    suffix = name[len(prefix) :] if name.startswith(prefix) else ""
    return int(suffix) if suffix.isdigit() else None


def _warn_of_earlier_run(trainer: Trainer) -> None:
    """Warn when a run starts afresh in an ``output_dir`` holding another run's checkpoints.

    They are kept, but they mix with this run's: ``save_total_limit`` counts them and
    keeps the highest steps (so an earlier run's later checkpoint outlives this run's
    older ones), and ``resume_from_checkpoint=True`` picks the highest step, whichever
    run wrote it. The reference orders them by modification time instead, which a copy
    or a network file system can reorder; step numbers cannot be, so we keep them and
    say so here, once, before anything is saved.
    """
    args = trainer.args
    if (
        not args.should_save
        or str(getattr(args.save_strategy, "value", args.save_strategy)) == "no"
    ):
        return
    earlier = trainer.checkpoint_store.checkpoints(args.output_dir)
    if earlier:
        logger.warning(
            "output_dir %s already holds checkpoints (%s) and this run starts from "
            "scratch. They are kept and mixed with this run's: save_total_limit counts "
            "them and keeps the highest steps, and resume_from_checkpoint=True picks the "
            "highest step of either run. Pass resume_from_checkpoint=True to continue "
            "that run, or use another output_dir (or move them) to start anew.",
            args.output_dir,
            ", ".join(os.path.basename(path) for path in earlier),
        )


def _warn_of_newer_checkpoints(trainer: Trainer, checkpoint: str) -> None:
    """Warn when a run resumes from a checkpoint older than others beside it.

    Those belong to the run being abandoned. They stay (nothing saved is deleted
    unasked), but until this run saves the same steps over them, a later
    ``resume_from_checkpoint=True`` (after a crash, say) would pick the newest of them and
    continue the abandoned run instead of this one.
    """
    step = _checkpoint_step(checkpoint)
    folder = os.path.dirname(os.path.normpath(checkpoint))
    if step is None or os.path.abspath(folder) != os.path.abspath(trainer.args.output_dir):
        return  # another run's checkpoints: resume_from_checkpoint=True never reads them
    newer = [
        os.path.basename(path)
        for path in trainer.checkpoint_store.checkpoints(folder)
        if (_checkpoint_step(path) or 0) > step
    ]
    if newer:
        logger.warning(
            "Resuming from %s while %s holds newer checkpoints (%s) of the run this one "
            "replaces. They are kept, and overwritten as this run saves the same steps; "
            "until then resume_from_checkpoint=True would pick the newest of them. Move or "
            "delete them if this run is the one to continue.",
            os.path.basename(os.path.normpath(checkpoint)),
            folder,
            ", ".join(newer),
        )


def prepare_resume(
    trainer: Trainer, loop: TrainingLoop, plan: TrainingPlan, dataloader: Any
) -> ResumePoint | None:
    """Restore the checkpoint ``train()`` resolved (if any) into the trainer and the loop.

    Called once per run after the model, optimizer and scheduler exist. Also records the
    training sampler so that checkpoints can store its state.
    """
    trainer._train_sampler = (
        StreamPosition(loop)
        if plan.batches_per_epoch is None
        else getattr(dataloader, "sampler", None)
    )
    checkpoint = trainer._resume_from
    if checkpoint is None:
        return None
    runtime = trainer.runtime
    logger.info("Loading model from %s.", checkpoint)
    loaded = restore_checkpoint(trainer, checkpoint)
    if user_defines(trainer, ("_load_from_checkpoint",)):  # a subclass loads more, or its way
        trainer._load_from_checkpoint(checkpoint, trainer.model_wrapped)
    if loaded.scaler_state:
        runtime.load_scaler_state_dict(dict(loaded.scaler_state))
    _merge_state(trainer, loaded.trainer_state)
    state = trainer.state
    loop.last_logged_step = state.global_step
    loop.tokens_seen = state.num_input_tokens_seen // max(trainer.args.world_size, 1)
    # The training header reports the epoch and batches it continues from.
    return _position(trainer, plan, loaded)


def _merge_state(trainer: Trainer, saved: TrainerState | None) -> None:
    fresh = trainer.state
    if saved is None:
        return
    _warn_changed_intervals(trainer, fresh, saved)
    for name in _RUN_FIELDS:
        setattr(saved, name, getattr(fresh, name))
    best = saved.best_model_checkpoint
    if best is not None and not os.path.isdir(best):
        logger.warning("The best checkpoint %s recorded in the state is gone; forgetting it.", best)
        saved.best_model_checkpoint = None
    trainer.state = saved
    if getattr(trainer.args, "restore_callback_states_from_checkpoint", False):
        _restore_callbacks(trainer, saved.stateful_callbacks or {})


def _warn_changed_intervals(trainer: Trainer, fresh: TrainerState, saved: TrainerState) -> None:
    """Log one warning naming each interval or batch size that differs from the checkpoint's.

    The resumed run uses its own values (they replace the saved ones), as v4.34 did:
    what the user asked for, but easy to do by accident. transformers 5 warns likewise
    and then keeps the checkpoint's intervals (docs/migrating.md). Intervals
    are compared as resolved to steps (a ratio such as ``logging_steps=0.1`` counts by
    the steps it stands for), ``eval_steps`` only when it is set, and the batch size per
    device.
    """
    changed = [
        (name, getattr(fresh, name), getattr(saved, name))
        for name in ("logging_steps", "eval_steps", "save_steps")
        if not (name == "eval_steps" and trainer.args.eval_steps is None)
    ]
    devices = max(1, getattr(trainer.args, "n_gpu", 1))
    if fresh.train_batch_size is not None and saved.train_batch_size is not None:
        per_device = (fresh.train_batch_size // devices, saved.train_batch_size // devices)
        changed.append(("per_device_train_batch_size", *per_device))
    lines = [
        f"\n  {name}: {now} in this run, {before} in trainer_state.json"
        for name, now, before in changed
        if now is not None and before is not None and now != before
    ]
    if lines:
        logger.warning(
            "Resuming with arguments that differ from those the checkpoint was saved with; "
            "this run uses its own:%s",
            "".join(lines),
        )


def _restore_callbacks(trainer: Trainer, stored: dict[str, Any]) -> None:
    """Rebuild each exportable callback whose class the checkpoint stored (in order), and
    the control switches, from the stored constructor arguments and attributes.

    As in the reference, the stored settings override those of the callbacks passed in
    (an ``EarlyStoppingCallback`` keeps the patience it was saved with); unlike it, each
    rebuilt callback keeps its place in the list.
    """
    seen: dict[str, int] = {}
    callbacks = trainer.callback_handler.callbacks
    for position, callback in enumerate(list(callbacks)):
        name = type(callback).__name__
        if not isinstance(callback, ExportableState) or name not in stored:
            continue
        entries = stored[name] if isinstance(stored[name], list) else [stored[name]]
        index = seen.get(name, 0)
        seen[name] = index + 1
        if index < len(entries):
            callbacks[position] = _rebuilt(callback, entries[index])
            logger.info("Continuing training from checkpoint, restoring %s's state", name)
    control = stored.get(type(trainer.control).__name__)
    if isinstance(control, Mapping):
        trainer.control = _rebuilt(trainer.control, control)
    present = {type(callback).__name__ for callback in callbacks}
    missing = sorted(set(stored) - present - {type(trainer.control).__name__})
    if missing:
        logger.warning(
            "The checkpoint holds the state of callbacks this trainer does not have; "
            "ignoring it: %s",
            ", ".join(missing),
        )


def _rebuilt(current: Any, entry: Mapping[str, Any]) -> Any:
    """A new object of ``current``'s class from a stored ``{"args", "attributes"}``; if
    its constructor refuses the stored arguments, ``current`` with the attributes set."""
    attributes = dict(entry.get("attributes") or {})
    try:
        rebuilt = type(current)(**dict(entry.get("args") or {}))
    except TypeError as error:
        logger.warning(
            "Could not rebuild %s from the checkpoint's arguments (%s); restoring its "
            "attributes only.",
            type(current).__name__,
            error,
        )
        rebuilt = current
    for attribute, value in attributes.items():
        setattr(rebuilt, attribute, value)
    return rebuilt


def _position(trainer: Trainer, plan: TrainingPlan, loaded: LoadedCheckpoint) -> ResumePoint:
    step = trainer.state.global_step
    accumulation = trainer.args.gradient_accumulation_steps
    if step >= plan.max_steps:  # nothing left to train
        return ResumePoint(loaded, plan.num_train_epochs, 0, False)
    if plan.batches_per_epoch is None:
        return _stream_point(trainer, loaded, step * accumulation)
    # Windows never straddle epochs, so an epoch has ceil(batches / accumulation) steps.
    steps_per_epoch = max(math.ceil(plan.batches_per_epoch / accumulation), 1)
    epoch, steps_in = divmod(step, steps_per_epoch)
    skip = 0 if trainer.args.ignore_data_skip else steps_in * accumulation
    return ResumePoint(loaded, epoch, skip, steps_in > 0)


class StreamPosition:
    """Where a run is in a stream (a train loader without a length), for checkpoints.

    A stream has no sampler to ask where it stands, and its passes may end at any step,
    so the position cannot be told from ``global_step``: this object stands in for the
    sampler (``trainer._train_sampler``), and the checkpoint writer stores its
    :meth:`sampler_state` beside each process's random states.
    """

    def __init__(self, loop: TrainingLoop) -> None:
        self.loop = loop

    def sampler_state(self) -> dict[str, int]:
        """The epoch the run is in and the batches of it already trained on."""
        epoch, batches = self.loop.data_position
        return {"stream_epoch": int(epoch), "stream_batches": int(batches)}


def _stream_point(trainer: Trainer, loaded: LoadedCheckpoint, batches_done: int) -> ResumePoint:
    """Resume a stream at the epoch and batch the checkpoint recorded.

    A checkpoint without that record (an earlier release, or another tool) is read as
    one endless epoch: ``batches_done`` batches into the first pass.
    """
    saved = (loaded.rng_state or {}).get("sampler")
    if not isinstance(saved, Mapping) or not {"stream_epoch", "stream_batches"} <= set(saved):
        return ResumePoint(loaded, 0, batches_done, batches_done > 0)
    epoch, batches = int(saved["stream_epoch"]), int(saved["stream_batches"])
    skip = 0 if trainer.args.ignore_data_skip else batches
    return ResumePoint(loaded, epoch, skip, batches > 0)


def _samples_per_step(dataloader: Any, num_processes: int) -> int | None:
    """Samples of the sampler's order that one batch step of all processes consumes.

    A runtime-prepared loader says (``total_batch_size``, as accelerate's loaders do:
    the batch size under ``split_batches``); otherwise each process took a batch.
    """
    total = getattr(dataloader, "total_batch_size", None)
    if total:
        return int(total)
    batch_size = getattr(dataloader, "batch_size", None)
    return None if batch_size is None else batch_size * num_processes


def open_epoch(
    trainer: Trainer, resume: ResumePoint | None, epoch: int, dataloader: Any
) -> tuple[Iterator[Any], int]:
    """The batch iterator of ``epoch`` and the number of its batches already trained on.

    For the epoch a run resumes in, the iterator starts after those batches and the
    random generators are back in the states the checkpoint stored.
    """
    if resume is None or epoch != resume.epoch:
        return iter(dataloader), 0
    store, rng = trainer.checkpoint_store, resume.loaded.rng_state
    skip = resume.batches_to_skip
    sampler = getattr(dataloader, "sampler", None)
    per_step = _samples_per_step(dataloader, trainer.runtime.num_processes)
    seekable = hasattr(sampler, "seek") and per_step is not None
    if seekable:
        sampler.seek(
            # the sampler orders the whole dataset; each step of the processes took per_step
            skip=skip * per_step,
            state=(rng or {}).get("sampler"),
            mid_pass=resume.mid_epoch,
            passes_done=epoch,
        )
    if rng is not None and not resume.mid_epoch:
        store.restore_rng(rng)
    batches = iter(dataloader)
    if skip and not seekable:
        logger.info("The train sampler cannot seek: drawing and dropping %d batches.", skip)
        for _ in islice(batches, skip):
            pass
    if rng is not None and resume.mid_epoch:
        store.restore_rng(rng)
    return batches, skip
