"""The Trainer's Hub methods: ``init_hf_repo``, ``push_to_hub``, ``create_model_card``.

The Hub code lives in another package (trainer-reporting's ``HubCallback``), reached only
through the ``trainer.hub`` entry point, so that the loop installs and runs without it
and another package may provide the integration. What the loop uses of that class: it is
built as ``cls(args, token=..., private=...)`` (creating the repository), and offers
``repo_id``, ``push(output_dir, commit_message=, blocking=, token=, revision=)``,
``wait_until_done()``, the static ``write_model_card(trainer, **card_args)``, and a
``before_push`` attribute the loop sets: called before a checkpoint's push, it fires the
callbacks' ``on_push_begin``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from trainer_core import HUB_GROUP, load_plugin


def _hub_integration() -> Any:
    return load_plugin(HUB_GROUP, "hub")


class HubMethods:
    """The Trainer's Hub methods (a mixin of ``Trainer``)."""

    hub_model_id: str | None = None
    """The repository's full id (``"user/name"``) once :meth:`init_hf_repo` created it."""

    _hub_callback: Any = None

    def init_hf_repo(self, token: str | None = None, private: bool | None = None) -> None:
        """Create the repository ``args.hub_model_id`` (or ``output_dir``'s name) on the Hub.

        Main process only. The Hub callback that pushes checkpoints on saves joins the
        callbacks. ``token`` / ``private`` override ``hub_token`` / ``hub_private_repo``;
        ``private`` has no effect on a repository that exists.
        """
        if not self.is_world_process_zero():
            return
        callback = _hub_integration()(self.args, token=token, private=private)
        if self._hub_callback is not None:
            self.remove_callback(self._hub_callback)
        self._hub_callback = callback
        callback.before_push = self._announce_push
        self.hub_model_id = callback.repo_id
        self.add_callback(callback)

    def init_git_repo(self, at_init: bool = False) -> None:
        """Deprecated name of :meth:`init_hf_repo` (no git clone is made any more)."""
        warnings.warn(
            "init_git_repo is deprecated: use init_hf_repo (the repository is created "
            "through the Hub's HTTP API; no local git clone is made).",
            FutureWarning,
            stacklevel=2,
        )
        self.init_hf_repo()

    def create_model_card(
        self,
        language: str | None = None,
        license: str | None = None,
        tags: str | list[str] | None = None,
        model_name: str | None = None,
        finetuned_from: str | None = None,
        tasks: str | list[str] | None = None,
        dataset_tags: str | list[str] | None = None,
        dataset: str | list[str] | None = None,
        dataset_args: str | list[str] | None = None,
    ) -> None:
        """Write a draft model card (``output_dir/README.md``) from what the Trainer knows:
        arguments, evaluation results from the logs, the model and data. Main process only.
        """
        if not self.is_world_process_zero():
            return
        _hub_integration().write_model_card(
            self,
            language=language,
            license=license,
            tags=tags,
            model_name=model_name,
            finetuned_from=finetuned_from,
            tasks=tasks,
            dataset_tags=dataset_tags,
            dataset=dataset,
            dataset_args=dataset_args,
        )

    def push_to_hub(
        self,
        commit_message: str | None = "End of training",
        blocking: bool = True,
        token: str | None = None,
        revision: str | None = None,
        private: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        """Save the model, write its card and upload ``output_dir`` to ``hub_model_id``.

        Checkpoint folders stay local (``hub_strategy`` decides about them). Waits for a
        push still running first. Returns the commit's info, or a ``Future`` of it when
        not ``blocking``; ``None`` on processes other than the main one. ``kwargs`` go to
        :meth:`create_model_card`.
        """
        self._announce_push()
        model_name = kwargs.pop("model_name", None)
        if model_name is None and self.args.should_save:
            hub_id = self.args.hub_model_id
            model_name = hub_id.split("/")[-1] if hub_id else Path(self.args.output_dir).name
        token = token if token is not None else self.args.hub_token
        if self._hub_callback is None:
            self.init_hf_repo(token=token, private=private)
        self.save_model(_internal_call=True)  # every process: sharded saves gather
        if not self.is_world_process_zero():
            return None
        kwargs["tags"] = _with_model_tags(kwargs.get("tags"), self.model)
        self.create_model_card(model_name=model_name, **kwargs)
        return self._hub_callback.push(
            self.args.output_dir,
            commit_message=commit_message or "End of training",
            blocking=blocking,
            token=token,
            revision=revision if revision is not None else self.args.hub_revision,
        )

    def _announce_push(self) -> None:
        """Fire the callbacks' ``on_push_begin`` (before any upload, as the reference)."""
        self.callback_handler.on_push_begin(self.args, self.state, self.control)

    def _finish_current_push(self) -> None:
        """Wait for the pushes in progress (the reference's name)."""
        if self._hub_callback is not None:
            self._hub_callback.wait_until_done()


def _with_model_tags(tags: str | list[str] | None, model: Any) -> list[str] | str | None:
    """The caller's tags plus the model's own ``model_tags`` (set by libraries like PEFT)."""
    model_tags = getattr(model, "model_tags", None)
    if not model_tags:
        return tags
    listed = [tags] if isinstance(tags, str) else list(tags or [])
    return listed + [tag for tag in model_tags if tag not in listed]
