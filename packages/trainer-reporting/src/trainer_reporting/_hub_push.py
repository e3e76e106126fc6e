"""Uploading folders to a Hub repository in the background, one upload at a time.

Each push is ``HfApi.upload_folder(run_as_future=True)``: huggingface_hub runs the futures
of one ``HfApi`` on a single worker thread, so pushes never overlap and training goes on
while they run. :class:`HubPusher` remembers the pushes of the last save, so that a save
that comes while they still run can be skipped (or queued with ``hub_always_push``), and
so that the end of training can wait for them.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import shutil
import tempfile
import threading
from concurrent.futures import Future
from typing import Any

from trainer_reporting._hub_repo import explain_refusal

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint"

OUTPUT_DIR_IGNORE = ["_*", f"{CHECKPOINT_PREFIX}-*", ".tmp-*"]
"""What a push of ``output_dir`` leaves out: checkpoint folders (the strategy decides
whether they go, and where), half-written ones and weights set aside during a save
(``.tmp-*``), and private ``_`` files."""

_MOVED_ASIDE_WEIGHTS = re.compile(
    r"^(?:model|pytorch_model)(?:-\d{5}-of-\d{5})?\.(?:safetensors|bin)$"
)
"""``output_dir`` files a snapshot may hard-link: the model weights, which a save never
rewrites in place (it moves the old files aside and writes new ones, and
:func:`copy_model_files` replaces them). Anything else may be rewritten in place (a
``torch.save`` of an adapter, a user's file), so it is copied."""

RESUME_STATE_FILES = (
    "optimizer.pt",
    "optimizer.bin",
    "scheduler.pt",
    "scaler.pt",
    "trainer_state.json",
    "sharded_state.json",
)
"""Checkpoint files that only serve to resume training: not copied next to the model."""


def copy_model_files(checkpoint: str, output_dir: str) -> list[str]:
    """Copy a checkpoint's model files (weights, configs, processing class, arguments) into
    ``output_dir``, so that pushing ``output_dir`` publishes the checkpoint's model
    without saving the weights a second time. Returns the names copied."""
    copied = _model_files(checkpoint)
    for name in copied:
        # A new file renamed over the old one: a snapshot still reading (hard-linking)
        # the old file keeps its content.
        target = os.path.join(output_dir, name)
        partial = os.path.join(output_dir, f".tmp-copy-{name}")
        shutil.copy(os.path.join(checkpoint, name), partial)
        os.replace(partial, target)
    return copied


def _model_files(checkpoint: str) -> list[str]:
    """The checkpoint's files a push publishes: all but the resume state."""
    return [name for name in _files_in(checkpoint) if not _is_resume_state(name)]


def stage_save(checkpoint: str, output_dir: str) -> str:
    """A private folder (``output_dir/_hub_push-*``) holding what a save publishes at the
    repository root: ``output_dir``'s own files with the checkpoint's model files over them
    (see :func:`stage_output_dir`). The checkpoint's files are hard-linked, since nothing
    rewrites them (rotation only unlinks them), so the weights are not copied where the
    file system allows links."""
    return stage_output_dir(output_dir, over=checkpoint)


def stage_output_dir(output_dir: str, *, over: str | None = None) -> str:
    """A private folder (``output_dir/_hub_push-*``) holding ``output_dir`` as it is now
    (with the model files of the checkpoint ``over`` in place of its own), for a push
    that runs in the background.

    Such a push reads its files long after it was asked for, while training goes on and
    later saves, or ``save_model()``, move the weights it is reading aside and rewrite
    the model card in place: uploading from ``output_dir`` itself could send a file that
    changed after its hash was sent (the Hub then refuses it) or has gone. Weight files
    are hard-linked (a save writes new ones rather than rewriting them); the other files
    and the sub-folders (the TensorBoard logs in ``runs/``, which the Hub shows as the
    model's training metrics) are copied as they are now.
    """
    staging = tempfile.mkdtemp(prefix="_hub_push-", dir=output_dir)
    replaced = _model_files(over) if over is not None else []
    for name in _files_in(output_dir):
        if name in replaced:
            continue
        source, target = os.path.join(output_dir, name), os.path.join(staging, name)
        if _MOVED_ASIDE_WEIGHTS.match(name):
            _link_or_copy(source, target)
        else:
            shutil.copy(source, target)
    for name in replaced:
        _link_or_copy(os.path.join(over, name), os.path.join(staging, name))
    _copy_subfolders(output_dir, staging)
    return staging


def stage_checkpoint(checkpoint: str, output_dir: str) -> str:
    """A private folder (``output_dir/_hub_push-*``) of hard links to the whole checkpoint.

    ``save_total_limit`` may delete the checkpoint folder at the next save, before its
    background push has read it; the links keep the files alive until the push is over.
    """
    staging = tempfile.mkdtemp(prefix="_hub_push-", dir=output_dir)
    shutil.copytree(checkpoint, staging, copy_function=_link_or_copy, dirs_exist_ok=True)
    return staging


def _copy_subfolders(output_dir: str, staging: str) -> None:
    """Copy ``output_dir``'s sub-folders that a push of ``output_dir`` would upload.

    Left out: what :data:`OUTPUT_DIR_IGNORE` names (checkpoints, the staging folders) and
    what huggingface_hub never uploads (``.git``, ``.cache``). A folder that changes while
    it is copied (a log being rotated) is pushed as far as it was copied, with a warning:
    a log folder is no reason to stop training.
    """
    for name in sorted(os.listdir(output_dir)):
        source = os.path.join(output_dir, name)
        if not os.path.isdir(source) or _left_out_of_push(name):
            continue
        try:
            shutil.copytree(source, os.path.join(staging, name), dirs_exist_ok=True)
        except OSError as error:  # shutil.Error too: files removed while copying
            logger.warning("Pushing only part of %s to the Hub: %s", source, error)


def _left_out_of_push(name: str) -> bool:
    return name in (".git", ".cache") or any(
        fnmatch.fnmatch(name, pattern) for pattern in OUTPUT_DIR_IGNORE
    )


def _files_in(folder: str) -> list[str]:
    return sorted(name for name in os.listdir(folder) if os.path.isfile(os.path.join(folder, name)))


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or one without hard links
        shutil.copy(source, target)


def _is_resume_state(name: str) -> bool:
    return name in RESUME_STATE_FILES or (name.startswith("rng_state") and name.endswith(".pth"))


class HubPusher:
    """Pushes folders to one repository through one ``HfApi`` (so pushes run in order)."""

    def __init__(self, api: Any, repo_id: str, *, token: str | None, revision: str | None):
        self.api = api
        self.repo_id = repo_id
        self.token = token
        self.revision = revision
        self.jobs: list[Future[Any]] = []
        # Set once a job's clean-up and failure report ran: a Future counts as done
        # before its callbacks have, and a waiter must see the logged failure.
        self._settled: list[threading.Event] = []

    def is_pushing(self) -> bool:
        """Whether a push started earlier is still queued or running."""
        return any(not settled.is_set() for settled in self._settled)

    def push_folder(
        self,
        folder: str,
        *,
        commit_message: str,
        blocking: bool = False,
        path_in_repo: str | None = None,
        ignore_patterns: list[str] | None = None,
        token: str | None = None,
        revision: str | None = None,
        remove_after: bool = False,
    ) -> Any:
        """Upload ``folder``; a ``Future`` of the commit unless ``blocking``.

        ``remove_after``: ``folder`` is a staging folder, deleted once the push is over.
        """
        what = f"'{commit_message}'" + (f" ({path_in_repo}/)" if path_in_repo else "")
        try:
            result = self.api.upload_folder(
                repo_id=self.repo_id,
                folder_path=folder,
                path_in_repo=path_in_repo,
                commit_message=commit_message,
                token=token if token is not None else self.token,
                revision=revision if revision is not None else self.revision,
                ignore_patterns=ignore_patterns,
                run_as_future=not blocking,
            )
        except Exception as error:
            if remove_after:
                shutil.rmtree(folder, ignore_errors=True)
            explained = explain_refusal(error, f"push {what} to '{self.repo_id}'", self.api)
            if explained is error:
                raise
            raise explained from error
        if not blocking:
            self._track(result, folder, what, remove_after)
        elif remove_after:
            shutil.rmtree(folder, ignore_errors=True)
        return result

    def _track(self, job: Future[Any], folder: str, what: str, remove_after: bool) -> None:
        if not self.is_pushing():
            self.jobs, self._settled = [], []
        settled = threading.Event()
        self.jobs.append(job)
        self._settled.append(settled)
        job.add_done_callback(lambda done: self._finish(done, folder, what, remove_after, settled))

    def _finish(
        self,
        job: Future[Any],
        folder: str,
        what: str,
        remove_after: bool,
        settled: threading.Event,
    ) -> None:
        try:
            if remove_after:
                shutil.rmtree(folder, ignore_errors=True)
            self._report_failure(job, what)
        finally:
            settled.set()

    def _report_failure(self, job: Future[Any], what: str) -> None:
        """A background push cannot raise into training: its failure is logged, naming
        the commit (the staging folder it read from is gone by now)."""
        error = job.exception()
        if error is not None:
            explained = explain_refusal(error, f"push {what} to '{self.repo_id}'", self.api)
            logger.error(
                "Pushing %s to '%s' failed (the local files are kept): %s",
                what,
                self.repo_id,
                explained,
            )

    def wait_until_done(self) -> None:
        """Block until every push started so far has finished (successfully or not)."""
        if self.is_pushing():
            logger.info("Waiting for the push to the Hub to finish.")
        for settled in list(self._settled):
            settled.wait()
