"""The checkpoint-store port: how the loop writes, finds, rotates and reads checkpoints.

The training loop decides *when* to save and *what* belongs in a checkpoint; a store
decides *how*: folder names, file formats, atomicity and safe loading. trainer-checkpoint
provides the default store (``checkpoint-<step>`` folders in the reference Trainer's
format); any object with these methods can replace it (``Trainer(checkpoint_store=...)``).

Models, optimizers and tensors are typed ``Any``: this package never imports torch.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass
class CheckpointContent:
    """The objects one checkpoint holds; ``None`` means "not part of this checkpoint".

    When saving, every non-None entry is written. When loading, every non-None object is
    restored in place (``model``, ``optimizer``, ``scheduler``); the rest of what was
    read comes back as a :class:`LoadedCheckpoint`.

    A store uses only the methods named here, because the loop hands it stand-ins that
    route state through the runtime (a sharded model's state is gathered and scattered
    by collectives): when saving, ``model`` is the user's module but ``optimizer`` may
    offer nothing but ``state_dict()`` (the state gathered beforehand); when loading,
    ``model`` may offer only ``parameters()``, ``state_dict()`` and
    ``load_state_dict(state, strict=True)``, and ``optimizer`` only
    ``load_state_dict(state)``. ``trainer_testing.checkpoint_contract`` passes such
    stand-ins.

    Attributes:
        model: The user's (unwrapped) module.
        state_dict: The full state dict to write for ``model`` (what the runtime
            gathered); None means ``model.state_dict()``.
        optimizer: An object with ``state_dict()`` / ``load_state_dict()``.
        scheduler: The learning-rate scheduler, same contract.
        scaler_state: The fp16 loss scaler's state (written when non-empty).
        trainer_state: The loop's ``TrainerState``.
        training_args: The ``TrainingArguments``, written as ``training_args.json`` (and
            as the reference's ``training_args.bin``, which is never read back).
        processing_class: A tokenizer / processor, written when it has
            ``save_pretrained``.
        rng_extra: Extra per-process random states to keep with the RNG file (the
            training sampler's generator, for instance).
    """

    model: Any = None
    state_dict: Mapping[str, Any] | None = None
    optimizer: Any = None
    scheduler: Any = None
    scaler_state: Mapping[str, Any] | None = None
    trainer_state: Any = None
    training_args: Any = None
    processing_class: Any = None
    rng_extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class LoadedCheckpoint:
    """What :meth:`CheckpointStore.load` read but did not apply itself.

    Attributes:
        path: The checkpoint folder.
        trainer_state: The ``TrainerState`` stored in it (None if it holds none).
        scaler_state: The loss scaler's state, if one was stored.
        rng_state: This process's random states (python, numpy, torch, devices and any
            ``rng_extra``), or None when the checkpoint has none (``save_only_model``).
        missing_states: The parts of ``CheckpointContent`` asked for that the
            checkpoint held no state for (``"optimizer"``, ``"scheduler"``: a
            ``save_only_model`` checkpoint), left as they were; empty when a store does
            not tell.
    """

    path: str
    trainer_state: Any = None
    scaler_state: Mapping[str, Any] | None = None
    rng_state: Mapping[str, Any] | None = None
    missing_states: tuple[str, ...] = ()


@runtime_checkable
class CheckpointStore(Protocol):
    """Writes, lists, rotates and loads the checkpoints of one output folder.

    Contract, for every implementation:

    * :meth:`save` is atomic: until it returns, :meth:`checkpoints` does not list the
      new checkpoint, and a crash at any moment leaves every earlier checkpoint intact
      and readable. A failure raises an ``OSError`` naming the path; an exception raised
      by the content itself (a ``state_dict()``) propagates and leaves no checkpoint.
    * :meth:`save` returns ``os.path.join(output_dir, f"checkpoint-{step}")``, a folder
      that exists on disk once it returns (on the writers), even for a store that keeps
      the data elsewhere: the loop names checkpoints by that path and checks it with
      ``os.path.isdir`` (``best_model_checkpoint`` across a resume,
      ``resume_from_checkpoint=<path>``). Paths are compared as given, not resolved.
    * :meth:`save` captures the content as it is when called: the loop goes on training
      the same model, optimizer, scheduler and ``TrainerState`` objects, so a store that
      kept references would "load" the latest values instead.
    * :meth:`load` returns a ``TrainerState`` of its own (the loop adopts and changes
      it), and ``rng_state`` holds each ``rng_extra`` entry under its own key beside the
      generators' states; :meth:`restore_rng` accepts that mapping.

    Optional extension (not a member, so stores without it still satisfy the port): a
    method ``delete(checkpoint: str) -> bool`` that removes one checkpoint as atomically
    as :meth:`save` writes one. With ``save_total_limit=1`` the loop calls it once
    training is over, to keep only the best checkpoint as the reference Trainer does; a
    store without it keeps the newest checkpoint as well.
    * Every process calls :meth:`save` with its ``process_index``; only those with
      ``is_writer`` write the shared files, every process writes its own RNG file.
      ``barrier`` (a collective) is called the same number of times on every process.
    * :meth:`checkpoints` lists complete checkpoints only, oldest step first.
    * :meth:`rotate` never deletes a path in ``keep``, nor the newest checkpoint.
    * :meth:`load` never executes code stored in a file (no unpickling of arbitrary
      objects); a folder that is not a complete checkpoint raises a ``ValueError``
      naming it, a missing one a ``FileNotFoundError``.
    """

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
        """Write ``<output_dir>/checkpoint-<step>`` with ``content``; return its path.

        ``sharded_writer``, when given, is a collective that every process runs on the
        checkpoint's staging folder before it is renamed into place (a runtime writing
        its shards of model and optimizer state); the checkpoint is then sharded and
        :meth:`is_sharded` says so.
        """

    def save_model(self, output_dir: str, content: CheckpointContent) -> None:
        """Write the model weights (and processing class, arguments) into ``output_dir``."""

    def checkpoints(self, output_dir: str) -> list[str]:
        """Complete checkpoint folders in ``output_dir``, oldest step first."""

    def latest(self, output_dir: str) -> str | None:
        """The newest complete checkpoint in ``output_dir``, or None."""

    def rotate(self, output_dir: str, limit: int, *, keep: Collection[str] = ()) -> list[str]:
        """Delete the oldest checkpoints beyond ``limit`` (sparing ``keep``); return them."""

    def load(
        self,
        checkpoint: str,
        content: CheckpointContent,
        *,
        process_index: int = 0,
        map_location: Any = None,
    ) -> LoadedCheckpoint:
        """Restore ``content``'s objects from ``checkpoint``; return the rest it read."""

    def is_sharded(self, checkpoint: str) -> bool:
        """Whether ``checkpoint`` keeps model state in per-process shards.

        Such a checkpoint is loaded by the runtime (``load_sharded_state``), whatever the
        runtime that wrote it; :meth:`load` then restores everything else.
        """

    def load_model(self, checkpoint: str, model: Any, *, map_location: Any = None) -> None:
        """Load only the model weights stored in ``checkpoint`` into ``model``."""

    def restore_rng(self, rng_state: Mapping[str, Any]) -> None:
        """Put python, numpy and torch generators back into the states in ``rng_state``."""
