"""The default checkpoint store: ``checkpoint-<step>`` folders in the reference format.

Layout of one checkpoint (names as the reference Trainer writes them)::

    checkpoint-<step>/
        model.safetensors            (or model-0000i-of-0000n.safetensors + index,
                                      or pytorch_model.bin, or what save_pretrained writes:
                                      adapter_model.safetensors + adapter_config.json
                                      alone for a PEFT model)
        optimizer.pt  scheduler.pt  scaler.pt (fp16 only)
        rng_state.pth                (rng_state_<rank>.pth with several processes)
        trainer_state.json  training_args.json  training_args.bin
        tokenizer files              (when the processing class has save_pretrained)

A sharded checkpoint (FSDP ``SHARDED_STATE_DICT``, DeepSpeed) replaces the weights and
``optimizer.pt`` with what each process's runtime wrote (``save(sharded_writer=...)``)
and carries the ``sharded_state.json`` marker.

Saving builds everything in ``.tmp-checkpoint-<step>``, flushes it to disk and renames
it into place, so a crash at any moment leaves either no new checkpoint or a complete
one. Loading reads ``.pt`` files with ``weights_only=True`` (see ``_safe_load``).
"""

from __future__ import annotations

import errno
import inspect
import json
import logging
import os
import pickle
import re
import shutil
from collections.abc import Callable, Collection, Mapping
from typing import Any

import torch

from trainer_checkpoint._adapters import adapter_names, has_adapter
from trainer_checkpoint._durable import Flusher, fsync_path
from trainer_checkpoint._errors import (
    CheckpointNotFoundError,
    CheckpointSaveError,
    NotACheckpointError,
)
from trainer_checkpoint._folders import (
    CHECKPOINT_PREFIX,
    OPTIMIZER_NAME,
    SCALER_NAME,
    SCHEDULER_NAME,
    SHARDED_STATE_NAME,
    STAGING_PREFIX,
    TRAINER_STATE_NAME,
    TRAINING_ARGS_NAME,
    checkpoint_name,
    delete_folder,
    has_sharded_state,
    incomplete_folders,
    list_checkpoints,
    missing_parts,
    rotate_checkpoints,
)
from trainer_checkpoint._model_folder import save_into_folder
from trainer_checkpoint._publish import publish
from trainer_checkpoint._reading import earlier_checkpoint_hint, read_part
from trainer_checkpoint._rng import capture_rng_state, restore_rng_state, rng_file_name
from trainer_checkpoint._safe_load import safe_load
from trainer_checkpoint._weights import (
    has_weights,
    load_weights,
    save_weights,
)
from trainer_core import CheckpointContent, LoadedCheckpoint, TrainerState

__all__ = [
    "OPTIMIZER_NAME",
    "SCALER_NAME",
    "SCHEDULER_NAME",
    "TRAINING_ARGS_BIN_NAME",
    "TRAINING_ARGS_NAME",
    "FolderCheckpointStore",
]

logger = logging.getLogger(__name__)

TRAINING_ARGS_BIN_NAME = "training_args.bin"


def _no_barrier() -> None:
    """Stand-in for a collective when there is a single process."""


def _fresh_folder(output_dir: str, staging: str) -> None:
    """An empty staging folder (a crashed save may have left one behind).

    Writers on nodes that share storage all do this before the same barrier, so the
    folder may already have been made again by another: that one is used.
    """
    os.makedirs(output_dir, exist_ok=True)
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging, exist_ok=True)


# Writers sign the staging folder. With save_on_each_node on storage the nodes share,
# several writers fill the same folder; only the first signer renames it into place.
_SIGNATURE_PREFIX = ".writer-"


def _sign(staging: str, process_index: int) -> None:
    open(os.path.join(staging, f"{_SIGNATURE_PREFIX}{process_index}"), "w").close()


def _first_signature(staging: str, own: int) -> int:
    """The lowest signer; a listing that a network file system serves stale may miss
    the others (or this one), so it counts as signed by this writer too."""
    signers = [own]
    for name in os.listdir(staging):
        suffix = name.removeprefix(_SIGNATURE_PREFIX)
        if name.startswith(_SIGNATURE_PREFIX) and suffix.isdigit():
            signers.append(int(suffix))
    return min(signers)


def _remove_signatures(staging: str) -> None:
    for name in os.listdir(staging):
        if name.startswith(_SIGNATURE_PREFIX):
            os.remove(os.path.join(staging, name))


def _resumable(content: CheckpointContent) -> bool:
    """Whether ``content`` is meant for resuming training (then RNG states belong in it).

    ``save_only_model`` checkpoints hold neither optimizer nor scheduler, and no RNG.
    """
    return content.optimizer is not None or content.scheduler is not None


def _write_json(folder: str, name: str, value: Any) -> None:
    with open(os.path.join(folder, name), "w", encoding="utf-8") as handle:
        json.dump(value, handle)


class FolderCheckpointStore:
    """Checkpoints as folders on a local or shared file system (the default store).

    Args:
        safe_serialization: Weights as safetensors (``save_safetensors``); else
            ``pytorch_model.bin``.
        max_shard_size: Weights beyond this size are split into shards with an index
            (bytes or a string such as ``"5GB"``). By default a model with its own
            ``save_pretrained`` shards as it does by itself (as the reference's Trainer
            leaves it), and other modules beyond 5GB.
        num_processes: Processes that train together (names the RNG files).
        fsync: Flush files to stable storage before a checkpoint is renamed into place
            (turn off only on file systems where a rename is not durable anyway).
    """

    def __init__(
        self,
        *,
        safe_serialization: bool = True,
        max_shard_size: int | str | None = None,
        num_processes: int = 1,
        fsync: bool = True,
    ) -> None:
        self.safe_serialization = safe_serialization
        self.max_shard_size = max_shard_size
        self.num_processes = num_processes
        self.fsync = fsync

    # ------------------------------------------------------------------ saving
    def save(
        self,
        output_dir: str,
        step: int,
        content: CheckpointContent,
        *,
        process_index: int = 0,
        is_writer: bool = True,
        barrier: Callable[[], None] | None = None,
        sharded_writer: Callable[[str], None] | None = None,
    ) -> str:
        """Write ``<output_dir>/checkpoint-<step>`` atomically; return its path.

        Every process calls it. Writers create the staging folder, then (after a
        barrier) every process writes its own files into it: ``sharded_writer(folder)``
        when given (a collective writing this process's shards of model and optimizer
        state, e.g. ``runtime.save_sharded_state``) and its RNG file; writers add the
        shared files, and after a second barrier flush everything and rename the folder
        into place. A sharded checkpoint holds no full weights (``content.model`` is then
        normally None) and is marked by ``sharded_state.json``.

        ``sharded_writer`` extends the ``CheckpointStore`` port; a process whose storage
        does not hold the staging folder (nodes without shared storage, no
        ``save_on_each_node``) writes no RNG file there, since that checkpoint is not on
        its storage.

        Raises:
            CheckpointSaveError: writing failed (disk full, permission denied...); the
                message names the folder, and earlier checkpoints are untouched.
        """
        barrier = barrier or _no_barrier
        final = os.path.join(output_dir, checkpoint_name(step))
        staging = os.path.join(output_dir, STAGING_PREFIX + checkpoint_name(step))
        try:
            if is_writer:
                _fresh_folder(output_dir, staging)
            barrier()
            if sharded_writer is not None:
                sharded_writer(staging)
            if _resumable(content) and (is_writer or os.path.isdir(staging)):
                self._write_rng(staging, content, process_index)
            with Flusher(enabled=self.fsync and is_writer) as flusher:
                if is_writer:
                    sharded = sharded_writer is not None
                    self._write_shared(staging, content, flusher, sharded=sharded)
                    _sign(staging, process_index)
                barrier()
                publishes = False
                if is_writer:
                    flusher.finish(staging)
                    publishes = _first_signature(staging, process_index) == process_index
                barrier()  # every writer has read the signatures before one is published
                if publishes:
                    self._publish_shared(staging, final)
        except BaseException as error:
            if is_writer:
                shutil.rmtree(staging, ignore_errors=True)
            if _is_write_failure(error):
                raise _save_error(error, final, output_dir) from error
            raise
        barrier()
        return final

    def _write_rng(self, folder: str, content: CheckpointContent, process_index: int) -> None:
        state = {**capture_rng_state(num_processes=self.num_processes), **dict(content.rng_extra)}
        name = rng_file_name(process_index, self.num_processes)
        _torch_save(state, folder, name, Flusher(enabled=False))  # flushed by finish()

    def _write_shared(
        self, folder: str, content: CheckpointContent, flusher: Flusher, *, sharded: bool
    ) -> None:
        self._write_model(folder, content, flusher)
        flusher.flush_written(folder)  # e.g. what save_pretrained wrote, in the background
        if content.optimizer is not None:
            _torch_save(content.optimizer.state_dict(), folder, OPTIMIZER_NAME, flusher)
        if content.scheduler is not None:
            _torch_save(content.scheduler.state_dict(), folder, SCHEDULER_NAME, flusher)
        if content.scaler_state:
            _torch_save(dict(content.scaler_state), folder, SCALER_NAME, flusher)
        if sharded:
            _write_json(folder, SHARDED_STATE_NAME, {"num_processes": self.num_processes})
        if content.trainer_state is not None:
            content.trainer_state.save_to_json(os.path.join(folder, TRAINER_STATE_NAME))

    def _publish_shared(self, staging: str, final: str) -> None:
        """Publish a staging folder other writers may share: when a stale listing let
        two of them elect themselves, the second finds the folder already in place."""
        try:
            _remove_signatures(staging)
            self._publish(staging, final)
        except FileNotFoundError:
            if os.path.exists(staging) or not os.path.isdir(final):
                raise  # not another writer's publication: a real failure

    def _publish(self, staging: str, final: str) -> None:
        publish(staging, final)  # the same step saved again replaces it atomically
        if self.fsync:
            fsync_path(os.path.dirname(final))  # the rename itself

    def save_model(self, output_dir: str, content: CheckpointContent) -> None:
        """Write weights, processing class and arguments into ``output_dir`` (created).

        A model with ``save_pretrained`` (transformers) saves itself, so that
        ``from_pretrained(output_dir)`` works; any other module is written as a state
        dict that ``load_state_dict`` (or :meth:`load_model`) reads back. The files are
        written aside and moved in once complete (see ``_model_folder``): a save that
        fails or is killed leaves the model saved there before whole, and a new one
        leaves none of the earlier model's weight files behind.
        """
        save_into_folder(
            output_dir,
            lambda staging: self._write_model(staging, content, Flusher(enabled=False)),
            replaces_weights=content.model is not None,
        )

    def _write_model(self, folder: str, content: CheckpointContent, flusher: Flusher) -> None:
        if content.model is not None:
            self._write_weights(folder, content, flusher)
        processing_class = content.processing_class
        if processing_class is not None and hasattr(processing_class, "save_pretrained"):
            processing_class.save_pretrained(folder)
        if content.training_args is not None:
            _write_args(folder, content.training_args)

    def _write_weights(self, folder: str, content: CheckpointContent, flusher: Flusher) -> None:
        model = content.model
        state_dict = content.state_dict if content.state_dict is not None else model.state_dict()
        save_pretrained = getattr(model, "save_pretrained", None)
        if save_pretrained is None:
            save_weights(
                state_dict,
                folder,
                safe=self.safe_serialization,
                max_shard_size=self._plain_shard_size,
                flusher=flusher,
            )
            return
        wanted: dict[str, Any] = {"state_dict": state_dict}
        if self.max_shard_size is not None:
            wanted["max_shard_size"] = self.max_shard_size
        if not self.safe_serialization:
            wanted["safe_serialization"] = False
        save_pretrained(folder, **_accepted(save_pretrained, wanted))
        # save_pretrained wrote no weights: write the state dict. A PEFT model's adapter
        # counts as its weights (the frozen base weights stay out, as in the reference).
        if not has_weights(folder) and not has_adapter(folder, adapter_names(model) or ()):
            save_weights(
                state_dict,
                folder,
                safe=self.safe_serialization,
                max_shard_size=self._plain_shard_size,
                flusher=flusher,
            )

    @property
    def _plain_shard_size(self) -> int | str:
        """The shard size for weights we write ourselves (no ``save_pretrained``)."""
        return self.max_shard_size if self.max_shard_size is not None else "5GB"

    # --------------------------------------------------------------- discovery
    def checkpoints(self, output_dir: str) -> list[str]:
        """Complete checkpoint folders in ``output_dir``, oldest step first."""
        return list_checkpoints(output_dir)

    def latest(self, output_dir: str) -> str | None:
        """The newest complete checkpoint; incomplete folders are reported and skipped."""
        for path in incomplete_folders(output_dir):
            named = os.path.basename(path).startswith(CHECKPOINT_PREFIX)
            lacks = missing_parts(path) if named else []
            logger.warning(
                "Ignoring %s: it is not a complete checkpoint%s (an interrupted save or "
                "deletion, or files removed by hand). save_total_limit counts it among "
                "the older checkpoints; or delete it yourself.",
                path,
                f" (it lacks {', '.join(lacks)})" if lacks else "",
            )
        found = list_checkpoints(output_dir)
        return found[-1] if found else None

    def rotate(self, output_dir: str, limit: int, *, keep: Collection[str] = ()) -> list[str]:
        """Delete the oldest checkpoints beyond ``limit``, sparing ``keep`` and the newest.

        Also removes the hidden folders our interrupted saves and deletions left
        behind (see ``remove_leftovers``).
        """
        return rotate_checkpoints(output_dir, limit, keep=keep)

    def delete(self, checkpoint: str) -> bool:
        """Delete one checkpoint folder, so that no crash leaves part of it behind.

        It is renamed to a hidden name first, then emptied. The Trainer calls it at the
        end of training to keep only the best checkpoint under ``save_total_limit=1`` (an
        extension of the ``CheckpointStore`` port). Returns whether this call removed it
        (False when it was gone already).
        """
        return delete_folder(checkpoint)

    # ----------------------------------------------------------------- loading
    def load(
        self,
        checkpoint: str,
        content: CheckpointContent,
        *,
        process_index: int = 0,
        map_location: Any = None,
    ) -> LoadedCheckpoint:
        """Restore ``content``'s model, optimizer and scheduler from ``checkpoint``.

        Every file is read before anything is restored, so a damaged file leaves the
        model, optimizer and scheduler as they were.

        Raises:
            CheckpointNotFoundError: ``checkpoint`` does not exist.
            NotACheckpointError: it is not a complete checkpoint folder.
            CorruptCheckpointError: a file of it cannot be read (truncated, garbled); the
                message names the file and the earlier checkpoint to resume from.
            UnsafeCheckpointError: a file holds pickled code.
        """
        check_checkpoint(checkpoint)
        location = map_location if map_location is not None else "cpu"
        state_path = os.path.join(checkpoint, TRAINER_STATE_NAME)
        loaded = LoadedCheckpoint(
            path=checkpoint,
            trainer_state=read_part(state_path, lambda: TrainerState.load_from_json(state_path)),
            scaler_state=_read_optional(os.path.join(checkpoint, SCALER_NAME), location),
            rng_state=self._read_rng(checkpoint, process_index),
        )
        states = [
            (part, obj, _read_state_of(obj, os.path.join(checkpoint, name), location))
            for part, obj, name in (
                ("optimizer", content.optimizer, OPTIMIZER_NAME),
                ("scheduler", content.scheduler, SCHEDULER_NAME),
            )
            if obj is not None
        ]
        if content.model is not None:
            self.load_model(checkpoint, content.model, map_location=map_location)
        for _, obj, state in states:
            if state is not None:
                obj.load_state_dict(state)
        loaded.missing_states = tuple(part for part, _, state in states if state is None)
        return loaded

    def is_sharded(self, checkpoint: str) -> bool:
        """Whether ``checkpoint`` keeps model (and optimizer) state in per-process shards.

        Such state is loaded with the runtime's ``load_sharded_state`` rather than
        :meth:`load` / :meth:`load_model`, which only restore full weights. (An extension
        of the ``CheckpointStore`` port, like ``save(sharded_writer=...)``.)
        """
        return has_sharded_state(checkpoint)

    def _read_rng(self, checkpoint: str, process_index: int) -> Mapping[str, Any] | None:
        # This process's own file first; then, when the number of processes changed
        # since the save, the file of the process with the same rank or of the first
        # (all hold the same sampler state, which decides the data order).
        names = [
            rng_file_name(process_index, self.num_processes),
            rng_file_name(0, 1),
            rng_file_name(process_index, 2),
            rng_file_name(0, 2),
        ]
        for name in dict.fromkeys(names):
            path = os.path.join(checkpoint, name)
            if os.path.isfile(path):
                if name != names[0] and self.num_processes > 1:
                    _warn_borrowed_rng(checkpoint, name, names[0])
                return _read_optional(path, None)
        logger.warning(
            "%s holds no RNG state for process %d: a resumed run will draw different random "
            "numbers than an uninterrupted one.",
            checkpoint,
            process_index,
        )
        return None

    def load_model(self, checkpoint: str, model: Any, *, map_location: Any = None) -> None:
        """Load the weights stored in ``checkpoint`` (any layout we or the reference write)."""
        if not os.path.isdir(checkpoint):
            raise CheckpointNotFoundError(
                f"No checkpoint at {checkpoint}: the folder does not exist."
            )
        load_weights(checkpoint, model, map_location=map_location)

    def restore_rng(self, rng_state: Mapping[str, Any]) -> None:
        """Set python, numpy, torch CPU and CUDA generators to ``rng_state``."""
        restore_rng_state(rng_state)


def check_checkpoint(path: str) -> None:
    """Raise a clear error unless ``path`` is a complete checkpoint folder.

    Raises:
        CheckpointNotFoundError: ``path`` does not exist.
        NotACheckpointError: ``path`` lacks the trainer state or the model's state.
    """
    if not os.path.isdir(path):
        hint = (
            " The string came from a command line, where True cannot be spelled: in the "
            "script, pass trainer.train(resume_from_checkpoint=True) for the latest one, "
            "or get_last_checkpoint(output_dir)."
            if path.strip().lower() in ("true", "1", "yes")
            else ""
        )
        raise CheckpointNotFoundError(
            f"resume_from_checkpoint={path!r}: no such folder. Pass a checkpoint-<step> "
            f"folder written by a previous training, or True for the latest in output_dir.{hint}"
        )
    lacks = missing_parts(path)
    if lacks:
        present = ", ".join(sorted(os.listdir(path))) or "nothing"
        raise NotACheckpointError(
            f"{path} is not a complete checkpoint: it lacks {', '.join(lacks)} (it needs "
            f"{TRAINER_STATE_NAME}, model weights (full, or sharded with {SHARDED_STATE_NAME}) "
            f"and, unless saved with save_only_model, {OPTIMIZER_NAME}), and holds {present}. "
            "A save or deletion was probably interrupted. "
            f"{earlier_checkpoint_hint(path)}"
        )


def _accepted(function: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``kwargs`` that ``function`` takes (all if it takes ``**kwargs``)."""
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):  # builtins without a signature: pass nothing optional
        return {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return kwargs
    return {key: value for key, value in kwargs.items() if key in parameters}


def _save_error(error: BaseException, final: str, output_dir: str) -> CheckpointSaveError:
    reason = getattr(error, "strerror", None) or error
    return CheckpointSaveError(
        getattr(error, "errno", None) or _errno_in(str(error)),
        f"Could not write checkpoint {final}: {reason}. The earlier checkpoints in "
        f"{output_dir} are untouched; free disk space or fix the permissions of output_dir, "
        "then resume from the latest checkpoint.",
        getattr(error, "filename", None),
    )


def _errno_in(message: str) -> int:
    """The error number a message quotes (safetensors writes "(os error 28)"), else EIO."""
    found = re.search(r"\(os error (\d+)\)", message)
    return int(found.group(1)) if found else errno.EIO


def _is_write_failure(error: BaseException) -> bool:
    """Whether ``error`` comes from the file system rather than from a bug.

    torch reports failed writes as a ``RuntimeError`` from its zip writer
    (``inline_container.cc``: "unexpected pos", "PytorchStreamWriter failed writing")
    and safetensors as its own error type; both are treated like the ``OSError`` they
    wrap. Other errors (a bug, a refused configuration) pass through unchanged.
    """
    if isinstance(error, OSError):
        return True
    from safetensors import SafetensorError

    if isinstance(error, SafetensorError):
        return True
    message = str(error)
    return isinstance(error, RuntimeError) and any(
        marker in message for marker in ("inline_container", "PytorchStreamWriter")
    )


def _torch_save(value: Any, folder: str, name: str, flusher: Flusher) -> None:
    """``torch.save`` into a file that heads for the disk as it is written."""
    handle = flusher.open(os.path.join(folder, name))
    try:
        torch.save(value, handle)
    except BaseException as error:
        handle.abandon(error)
        raise
    flusher.close(handle)


def _read_state_of(obj: Any, path: str, location: Any) -> Any:
    """The state dict for ``obj`` stored in ``path``; None (with a warning) when absent."""
    if not os.path.isfile(path):
        logger.warning(
            "%s is missing (save_only_model?): %s starts afresh.", path, type(obj).__name__
        )
        return None
    return _read_optional(path, location)


def _read_optional(path: str, location: Any) -> Any:
    """What the ``.pt`` file ``path`` holds, or None when there is no such file."""
    if not os.path.isfile(path):
        return None
    return read_part(path, lambda: safe_load(path, map_location=location))


def _write_args(folder: str, args: Any) -> None:
    to_json = getattr(args, "to_json_string", None)
    if to_json is not None:
        with open(os.path.join(folder, TRAINING_ARGS_NAME), "w", encoding="utf-8") as handle:
            handle.write(to_json())
    try:
        _torch_save(args, folder, TRAINING_ARGS_BIN_NAME, Flusher(enabled=False))
    except (pickle.PicklingError, TypeError, AttributeError) as error:
        # Only kept for the reference's file list; nothing of ours reads it back.
        os.remove(os.path.join(folder, TRAINING_ARGS_BIN_NAME))  # what was written of it
        logger.debug("Skipped %s: %s", TRAINING_ARGS_BIN_NAME, error)


def _warn_borrowed_rng(checkpoint: str, read: str, own: str) -> None:
    """A process of several resumes from another process's random state: its dropout
    masks and other draws now repeat that process's, which an uninterrupted run never
    does. Typical cause: nodes without shared storage and ``save_on_each_node=False``,
    with the main node's checkpoint copied over."""
    logger.warning(
        "%s holds no %s for this process: it resumes from %s instead, so its random "
        "numbers (dropout masks, ...) repeat another process's. Copy every rng_state_*.pth "
        "of the checkpoint to this machine, or train with save_on_each_node=True when "
        "nodes do not share storage.",
        checkpoint,
        own,
        read,
    )
