"""``HubCallback``: the Hub integration the Trainer loads (entry point ``trainer.hub: hub``).

The loop never imports this package: with ``push_to_hub`` it loads this class through
the ``trainer.hub`` entry-point group and calls what this class offers (the repository id,
:meth:`HubCallback.push`, :meth:`HubCallback.wait_until_done` and
:meth:`HubCallback.write_model_card`). As a callback it pushes on each save, as
``hub_strategy`` says:

- ``end``: nothing on saves; only ``Trainer.save_model()`` / ``push_to_hub()`` push;
- ``every_save``: the checkpoint's model files go to the repository root;
- ``checkpoint``: that, and the whole checkpoint to ``last-checkpoint/`` (resumable);
- ``all_checkpoints``: that, and each checkpoint to a folder of its own name.

A save that comes while the previous push still runs pushes nothing, unless
``hub_always_push`` (then it is queued behind). The end of training waits for the pushes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from trainer_core import TrainerCallback
from trainer_reporting._hub_push import (
    CHECKPOINT_PREFIX,
    OUTPUT_DIR_IGNORE,
    HubPusher,
    copy_model_files,
    stage_checkpoint,
    stage_output_dir,
    stage_save,
)
from trainer_reporting._hub_repo import create_hub_repo, load_hub_client, repo_name_for
from trainer_reporting._model_card_sources import write_model_card

_CHECKPOINT_FOLDERS = {"checkpoint": "last-checkpoint", "all_checkpoints": None}
"""Strategies that push the checkpoint folder too -> where (``None``: under its own name)."""


def _word(value: Any) -> str:
    """An enum argument's value (``HubStrategy.END`` -> ``"end"``), a string unchanged."""
    return str(getattr(value, "value", value))


class HubCallback(TrainerCallback):
    """Creates the run's Hub repository and pushes to it on saves (see the module doc).

    Args:
        args: The run's ``TrainingArguments``; the repository is created at once. Left
            ``None`` (the callback given as a class in ``callbacks=``), it is created at
            the first event, from that event's arguments.
        token: Overrides ``args.hub_token`` to create the repository. Pushes use
            ``args.hub_token`` (or a push's own ``token``), as the reference's do after
            ``init_hf_repo(token=...)``: one call's token does not stick.
        private: Overrides ``args.hub_private_repo`` (applies to a new repository only).

    Raises:
        MissingExtraError: huggingface_hub is not installed.
        HubAccessError: the Hub refused the token.
    """

    name = "hub"

    def __init__(
        self, args: Any = None, *, token: str | None = None, private: bool | None = None
    ) -> None:
        self._token, self._private = token, private
        self.pusher: HubPusher | None = None
        # Called right before a checkpoint's push starts: the Trainer sets it to fire the
        # callbacks' on_push_begin, which a callback cannot reach by itself.
        self.before_push: Callable[[], Any] | None = None
        if args is not None:
            self._open_repo(args)

    @property
    def repo_id(self) -> str | None:
        """The repository's full id (``"user/name"``); ``None`` before it is created."""
        return None if self.pusher is None else self.pusher.repo_id

    def _open_repo(self, args: Any) -> HubPusher:
        if self.pusher is None:
            hub = load_hub_client()
            api = hub.HfApi()
            token = self._token if self._token is not None else args.hub_token
            private = self._private if self._private is not None else args.hub_private_repo
            repo_id = create_hub_repo(api, repo_name_for(args), token=token, private=private)
            revision = getattr(args, "hub_revision", None)
            self.pusher = HubPusher(api, repo_id, token=args.hub_token, revision=revision)
        return self.pusher

    # ------------------------------------------------------------- events
    def on_init_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self._open_repo(args)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Push the checkpoint just written, as ``hub_strategy`` says (main process only,
        and only with ``push_to_hub``: a manual ``Trainer.push_to_hub()`` also registers
        this callback, which must not push the checkpoints of later runs by itself)."""
        strategy = _word(args.hub_strategy)
        if not state.is_world_process_zero or strategy == "end" or not args.push_to_hub:
            return
        pusher = self._open_repo(args)
        if pusher.is_pushing() and not args.hub_always_push:
            return  # the previous save is still uploading: this one is skipped
        checkpoint = os.path.join(args.output_dir, f"{CHECKPOINT_PREFIX}-{state.global_step}")
        if not os.path.isdir(checkpoint):
            return
        if self.before_push is not None:
            self.before_push()
        copy_model_files(checkpoint, args.output_dir)  # output_dir mirrors the repository
        message = _progress_message(args, state)
        staging = stage_save(checkpoint, args.output_dir)  # what this push reads
        pusher.push_folder(
            staging, commit_message=message, ignore_patterns=OUTPUT_DIR_IGNORE, remove_after=True
        )
        if strategy in _CHECKPOINT_FOLDERS:
            folder = _CHECKPOINT_FOLDERS[strategy] or os.path.basename(checkpoint)
            pusher.push_folder(
                stage_checkpoint(checkpoint, args.output_dir),  # outlives rotation
                commit_message=f"{message}, checkpoint",
                path_in_repo=folder,
                remove_after=True,
            )

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Training is over once the last checkpoint has reached the Hub."""
        self.wait_until_done()

    # ---------------------------------------------- what the Trainer calls
    def push(
        self,
        output_dir: str,
        *,
        commit_message: str,
        blocking: bool = True,
        token: str | None = None,
        revision: str | None = None,
    ) -> Any:
        """Push ``output_dir`` (without checkpoint folders) after the pushes in progress.

        Returns the commit's ``CommitInfo``, or a ``Future`` of it when not ``blocking``.
        A push in the background reads a snapshot of ``output_dir``, so that the caller
        may save again while it runs.
        """
        if self.pusher is None:
            raise RuntimeError("The Hub repository is not created yet: pass the arguments.")
        self.pusher.wait_until_done()
        folder = output_dir if blocking else stage_output_dir(output_dir)
        return self.pusher.push_folder(
            folder,
            commit_message=commit_message,
            blocking=blocking,
            ignore_patterns=OUTPUT_DIR_IGNORE,
            token=token,
            revision=revision,
            remove_after=not blocking,
        )

    def wait_until_done(self) -> None:
        """Block until the pushes started so far have finished."""
        if self.pusher is not None:
            self.pusher.wait_until_done()

    @staticmethod
    def write_model_card(trainer: Any, **card_args: Any) -> str:
        """Write ``trainer``'s model card draft to ``output_dir/README.md``; return its path.

        ``card_args`` are ``Trainer.create_model_card``'s. Needs no huggingface_hub.
        """
        return write_model_card(trainer, **card_args)


def _progress_message(args: Any, state: Any) -> str:
    if _word(args.save_strategy) == "steps":
        return f"Training in progress, step {state.global_step}"
    return f"Training in progress, epoch {int(state.epoch or 0)}"
