"""Searches under several processes (``torchrun``, ``accelerate launch``): the main
process runs the study, the others follow it.

Only the main process may talk to the search library (one study, one SigOpt
experiment), yet every trial must be trained by all processes together, since they
form one process group. So the main process picks each trial and sends its values to
the others; every process then trains it from the same ``model_init``, evaluates
(the metrics are gathered, hence equal everywhere) and computes the same objective,
which only the main process reports. Decisions that only the study can take
(optuna's pruning) are made on the main process and shared the same way. When the
search ends, the main process sends the result, so every process returns the same
``BestRun``; when it fails, it sends the failure, so the others raise instead of
waiting for a trial that never comes.

The messages travel through the trainer's runtime (``trainer.runtime``, a
``trainer_core.Runtime``) and its ``broadcast_object`` collective, so this package
never touches ``torch.distributed`` itself. Each message names its kind, so that a
process waiting for a trial or a pruning decision that receives the main process's
failure instead raises at once. A process that fails in the middle of a trial's
training cannot tell the others in a way they would read: they are inside a training
collective, and leave when the process group notices (at once when the failed process
exits, at the latest after ``ddp_timeout``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from trainer_core import TrainerLike
from trainer_hpsearch._common import run_trial

logger = logging.getLogger(__name__)

T = TypeVar("T")

_TRIAL, _END, _FAILED, _DECISION = "trial", "end", "failed", "decision"


class SearchAbandoned(RuntimeError):
    """The main process gave up the search (or the processes lost step): never caught as
    a trial's error, since no further trial will come."""


class SearchGroup:
    """The processes of one search, reached through the trainer's runtime."""

    def __init__(self, runtime: Any) -> None:
        self._runtime = runtime

    @property
    def is_main(self) -> bool:
        """Whether this process runs the study (global rank 0)."""
        return bool(self._runtime.is_main_process)

    @property
    def size(self) -> int:
        """How many processes train each trial together."""
        return int(self._runtime.num_processes)

    def send(self, kind: str, value: Any = None) -> None:
        """On the main process: send ``value`` to the others, which :meth:`receive` it."""
        self._runtime.broadcast_object((kind, value), src=0)

    def receive(self, *kinds: str) -> tuple[str, Any]:
        """On the other processes: the main process's next message, one of ``kinds``.

        Raises:
            SearchAbandoned: the main process sent its failure instead (it met an error
                while this process waited in a search collective), or a message of
                another kind (the processes are no longer at the same point).
        """
        kind, value = self._runtime.broadcast_object(None, src=0)
        if kind == _FAILED:
            raise SearchAbandoned(
                f"The hyperparameter search failed on the main process ({value}); this "
                "process leaves it too."
            )
        if kind not in kinds:
            raise SearchAbandoned(
                f"The search's processes are out of step: expected {' or '.join(kinds)} from "
                f"the main process, got {kind!r}."
            )
        return kind, value


def search_group(trainer: TrainerLike, backend: str) -> SearchGroup | None:
    """The group a search runs on, or ``None`` for one process (the plain search).

    Raises:
        RuntimeError: several processes, but the trainer has no runtime that can
            broadcast objects (a trainer that is not ``trainer.Trainer``).
    """
    runtime = getattr(trainer, "runtime", None)
    if runtime is not None:
        size = int(runtime.num_processes)
    else:
        size = int(getattr(trainer.args, "world_size", 1))
    if size <= 1:
        return None
    if not callable(getattr(runtime, "broadcast_object", None)):
        raise RuntimeError(
            f"Hyperparameter search with backend='{backend}' on {size} processes needs the "
            "trainer's runtime (trainer.runtime) with a broadcast_object collective, to send "
            f"each trial to every process; {type(trainer).__name__} has "
            f"{type(runtime).__name__ if runtime is not None else 'no runtime'}. Use "
            "trainer.Trainer, or launch the search in a single process."
        )
    return SearchGroup(runtime)


def lead(group: SearchGroup, search: Callable[[], T]) -> T:
    """On the main process: run ``search``, then send its result (or its failure) to the
    processes that :func:`follow` it; return (or raise) what ``search`` did."""
    try:
        result = search()
    except BaseException as error:
        _send_failure(group, error)
        raise
    group.send(_END, result)
    return result


def _send_failure(group: SearchGroup, error: BaseException) -> None:
    """Tell the others the search failed. They may be gone, or stuck in a training
    collective until the timeout: then this fails too, and the first error is the one
    that matters."""
    try:
        group.send(_FAILED, f"{type(error).__name__}: {error}")
    except Exception as unsent:  # reported; the original error is raised
        logger.warning("Could not tell the other processes that the search failed: %s", unsent)


def offer(group: SearchGroup, payload: dict[str, Any]) -> None:
    """On the main process: send the next trial's ``payload`` (picklable) to the others."""
    group.send(_TRIAL, payload)


def follow(
    group: SearchGroup,
    trainer: TrainerLike,
    make_trial: Callable[[dict[str, Any]], Any],
    tolerated: tuple[type[BaseException], ...] = (),
) -> Any:
    """On the other processes: train every trial the main process offers, built from its
    payload by ``make_trial``, until the main process sends the search's result.

    ``tolerated`` errors end a trial but not the search, as on the main process (a
    pruned trial, optuna's ``catch``); any other error leaves the search.

    Raises:
        SearchAbandoned: the main process reported that its search failed.
    """
    while True:
        kind, payload = group.receive(_TRIAL, _END)
        if kind == _END:
            return payload
        try:
            run_trial(trainer, make_trial(payload))
        except tolerated as error:
            if isinstance(error, SearchAbandoned):
                raise
            logger.info("Trial %s ended early: %s", payload.get("id"), error)


def decide_on_main(group: SearchGroup | None, decide: Callable[[], bool]) -> bool:
    """``decide()`` evaluated on the main process only and shared with every process
    (with one process: simply ``decide()``)."""
    if group is None:
        return decide()
    if group.is_main:
        decision = bool(decide())
        group.send(_DECISION, decision)
        return decision
    return bool(group.receive(_DECISION)[1])
