"""``enable_jit_checkpoint=True``: a checkpoint when the process is asked to terminate.

Schedulers of preemptible machines (Kubernetes, Slurm with ``--signal=TERM@...``, spot
instances) send SIGTERM and, after a grace period, SIGKILL. With the flag set, the
Trainer installs :class:`JITCheckpointCallback`, which, as transformers 5 does:

* replaces the SIGTERM handler while ``train()`` runs (from ``on_train_begin`` to
  ``on_train_end``, where the previous handler comes back); the handler only records
  that the signal came, since a checkpoint cannot be written from inside a handler;
* at the end of the optimizer step in progress (or of the epoch), asks for a save and
  for training to stop: the loop writes ``checkpoint-<global_step>`` through the usual
  path (``_save_checkpoint``, ``on_save``, rotation) and ``train()`` returns normally.
  The process is not ended: the script goes on after ``train()`` (and may save or
  exit), and ``resume_from_checkpoint=True`` later continues from that checkpoint
  exactly as from any other.

Where this differs from transformers 5, on purpose:

* transformers waits 3 seconds after the signal before asking for the checkpoint, to
  avoid starting one that a SIGKILL would cut; our checkpoints are written to a
  temporary folder and renamed, so a cut one is never picked up, and the grace period
  is better spent saving. transformers also writes a sentinel file for the same reason.
* transformers installs the handler when the Trainer is built, so a SIGTERM before
  ``train()`` is swallowed; here the handler exists only while training runs.
* With several processes, each receives its own SIGTERM at a slightly different
  moment; transformers lets each save when it sees its own flag, which can leave the
  processes in different collectives. Here the processes agree (one all-reduce of a
  flag per optimizer step, paid only with the flag set) and stop at the same step.

Signal handlers can only be installed from the main thread of the main interpreter: a
``train()`` run in another thread logs a warning and trains without the handler.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

import torch

from trainer_core import TrainerCallback, TrainerControl, TrainerState

if TYPE_CHECKING:
    from trainer_loop._trainer import Trainer

__all__ = ["JITCheckpointCallback", "jit_checkpoint_callbacks"]

logger = logging.getLogger(__name__)


def jit_checkpoint_callbacks(trainer: Trainer) -> list[TrainerCallback]:
    """The callback for ``args.enable_jit_checkpoint``, in a list (empty when unset)."""
    if not getattr(trainer.args, "enable_jit_checkpoint", False):
        return []
    return [JITCheckpointCallback(trainer)]


class JITCheckpointCallback(TrainerCallback):
    """On SIGTERM, save a checkpoint at the end of the current step and stop training.

    Args:
        trainer: The trainer whose processes must agree on stopping (its runtime).
    """

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.requested = False  # set by the handler: a SIGTERM arrived
        self.stopping = False  # the save and stop were asked for (once per train())
        self._previous: Any = None
        self._installed = False

    # ------------------------------------------------------------ the handler
    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        if not self.requested:
            self.requested = True
            logger.warning(
                "SIGTERM received: a checkpoint will be saved at the end of the current "
                "step, then training stops (enable_jit_checkpoint=True)."
            )

    def _install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            logger.warning(
                "enable_jit_checkpoint=True, but train() runs outside the main thread, where "
                "Python cannot install signal handlers: no checkpoint will be saved on "
                "SIGTERM. Call train() from the main thread to get one."
            )
            return
        current = signal.getsignal(signal.SIGTERM)
        if current != self._on_sigterm:  # not left over from a train() that raised
            self._previous = current
        signal.signal(signal.SIGTERM, self._on_sigterm)
        self._installed = True

    def _uninstall(self) -> None:
        if self._installed:
            previous = self._previous if self._previous is not None else signal.SIG_DFL
            signal.signal(signal.SIGTERM, previous)
            self._installed = False

    # ------------------------------------------------------------- the events
    def on_train_begin(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.requested = self.stopping = False
        self._install()

    def on_step_end(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._stop_if_requested(control)

    def on_epoch_end(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._stop_if_requested(control)

    def on_train_end(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._uninstall()

    def _stop_if_requested(self, control: TrainerControl) -> None:
        # Once asked, the epoch end that follows the step must not ask for a second save.
        if self.stopping or not self._agreed_request():
            return
        self.stopping = True
        logger.warning("Saving a checkpoint on SIGTERM and stopping training.")
        control.should_save = True
        control.should_training_stop = True

    def _agreed_request(self) -> bool:
        """Whether any process received SIGTERM (every process calls this at the same
        step, so the all-reduce lines up; one process alone needs none)."""
        runtime = self.trainer.runtime
        if runtime.num_processes == 1:
            return self.requested
        flag = torch.tensor(int(self.requested), dtype=torch.int64, device=runtime.device)
        return bool(runtime.reduce(flag, "max").item())
