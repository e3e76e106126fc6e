"""The runtime port: everything the loop asks of "where and how does this run".

The training loop is written once against this Protocol; single-process, DDP, FSDP,
DeepSpeed and XLA runtimes in trainer-dist implement it structurally. It already carries
what many processes need (process roles, gather, reduce, barriers) so that adding a
distributed runtime adds an implementation, never a new method the loop must learn.

Tensors, modules and optimizers are typed ``Any`` on purpose: this package never imports
torch, and the contract is stated in the docstrings instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any, Literal, Protocol, runtime_checkable

ReduceOp = Literal["mean", "sum", "max", "min"]


@runtime_checkable
class Runtime(Protocol):
    """Device placement, precision, backward, gradient sync and collectives.

    Contract, for every implementation:

    * ``prepare_*`` may return a wrapper (DDP, FSDP, a DeepSpeed engine); the loop keeps
      the wrapper for forward/backward and calls :meth:`unwrap_model` for anything that
      needs the user's module (saving, ``generate``).
    * :meth:`backward` applies loss scaling when fp16 needs it; :meth:`optimizer_step`
      returns ``False`` when the step was skipped (fp16 overflow) so that the scheduler
      is not advanced either.
    * :meth:`no_sync` suppresses gradient synchronisation on micro-steps that are not the
      last of an accumulation window; on one process it is a no-op.
    * Collectives (:meth:`gather`, :meth:`reduce`, :meth:`wait_for_everyone`) are called
      by every process in the same order; with one process they return their input.
    * No method forces a host-device synchronisation unless its result is a host value.
    * :meth:`unwrap_model` of what :meth:`prepare_model` or :meth:`prepare_training`
      returned is the module that was passed in (the same object), and of an unwrapped
      module that module itself.

    ``Trainer(runtime=...)`` takes any object with these members (no base class);
    ``trainer_testing.runtime_contract`` checks one on a single process.
    """

    @property
    def device(self) -> Any:
        """The ``torch.device`` this process computes on."""

    @property
    def num_processes(self) -> int:
        """How many processes train together (1 without a launcher)."""

    @property
    def process_index(self) -> int:
        """This process's global rank."""

    @property
    def local_process_index(self) -> int:
        """This process's rank on its node."""

    @property
    def is_main_process(self) -> bool:
        """Whether this is global rank 0."""

    @property
    def is_local_main_process(self) -> bool:
        """Whether this is rank 0 of its node."""

    @property
    def mixed_precision(self) -> Literal["no", "fp16", "bf16"]:
        """The autocast precision the runtime applies in :meth:`autocast`."""

    def prepare_model(self, model: Any, *, training: bool) -> Any:
        """Move ``model`` to the device and wrap it for this runtime."""

    def prepare_optimizer(self, optimizer: Any) -> Any:
        """Return the optimizer to step (possibly wrapped)."""

    def prepare_scheduler(self, scheduler: Any) -> Any:
        """Return the learning-rate scheduler to step (possibly wrapped)."""

    def prepare_training(
        self,
        model: Any,
        *,
        create_optimizer: Callable[[], Any],
        create_scheduler: Callable[[Any], Any],
        num_training_steps: int,
    ) -> tuple[Any, Any, Any]:
        """Wrap ``model`` for training and build its optimizer and scheduler, in the order
        this runtime needs; return ``(model to train, optimizer, scheduler)``.

        Runtimes differ in that order: FSDP must shard the parameters before the optimizer
        is built on them, while an engine such as DeepSpeed takes model, optimizer and
        scheduler in one call, and may build the optimizer or the scheduler from its own
        configuration instead. The loop therefore hands over factories:
        ``create_optimizer()`` builds the Trainer's optimizer for the (unwrapped) model,
        ``create_scheduler(optimizer)`` the Trainer's scheduler for an optimizer. A runtime
        calls each at most once, and not at all for what its configuration provides.
        ``num_training_steps`` (the run's optimizer steps) is for schedulers such a
        configuration describes.

        The usual implementation is :meth:`prepare_model` (``training=True``), then
        :meth:`prepare_optimizer` on ``create_optimizer()``, then :meth:`prepare_scheduler`
        on ``create_scheduler(optimizer)``.
        """

    def prepare_dataloader(self, dataloader: Any) -> Any:
        """Shard ``dataloader`` across processes and move its batches to the device.

        The result keeps what the loop reads of a dataloader: ``len()`` (this process's
        batches per pass) whenever ``dataloader`` has one, ``dataset``, ``batch_size``,
        and ``sampler`` when ``dataloader`` has one (the loop sets its epoch and, to
        resume mid-epoch without drawing the trained batches again, seeks it). It may add
        ``total_batch_size``: the samples one step takes over all processes.
        """

    def unwrap_model(self, model: Any) -> Any:
        """The user's module inside whatever :meth:`prepare_model` wrapped it in."""

    def autocast(self, *, enabled: bool = True) -> AbstractContextManager[None]:
        """Mixed-precision context for forward passes (a no-op when precision is "no")."""

    def backward(self, loss: Any) -> None:
        """Back-propagate ``loss``, scaled when fp16 needs it."""

    def no_sync(self, model: Any) -> AbstractContextManager[None]:
        """Skip gradient synchronisation inside the block (accumulation micro-steps)."""

    def clip_grad_norm(self, parameters: Iterable[Any], max_norm: float) -> Any:
        """Unscale (fp16) and clip gradients; return the total norm as a device tensor.

        The optimizers to unscale are those given to :meth:`prepare_optimizer`, which
        must therefore have been called first.
        """

    def optimizer_step(self, optimizer: Any) -> bool:
        """Step ``optimizer``; ``False`` if the step was skipped (fp16 overflow)."""

    def gather(self, tensor: Any) -> Any:
        """Concatenate ``tensor`` from every process along the first dimension."""

    def pad_across_processes(self, tensor: Any, *, dim: int = 0, pad_index: int = -100) -> Any:
        """Pad ``tensor`` along ``dim`` to the largest size among processes."""

    def reduce(self, tensor: Any, op: ReduceOp = "mean") -> Any:
        """Reduce ``tensor`` across processes with ``op``."""

    def wait_for_everyone(self) -> None:
        """Barrier: return once every process has reached this call."""

    def broadcast_object(self, obj: Any, *, src: int = 0) -> Any:
        """``obj`` as process ``src`` passed it, on every process (a collective).

        For small picklable host values that only one process can compute (a search
        trial's hyperparameters, a pruning decision); the other processes' ``obj`` is
        ignored. With one process it returns ``obj``.
        """

    def main_process_first(self, *, local: bool = True) -> AbstractContextManager[None]:
        """Run the block on the main process first, then on the others."""

    def set_seed(self, seed: int, *, deterministic: bool = False) -> None:
        """Seed python, numpy and torch (every device) identically on this process."""

    def scaler_state_dict(self) -> dict[str, Any] | None:
        """The fp16 loss scaler's state for a checkpoint (None without a scaler)."""

    def load_scaler_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the fp16 loss scaler from :meth:`scaler_state_dict` output."""

    def state_dict(self, model: Any) -> dict[str, Any]:
        """A full, unwrapped state dict of ``model`` (gathered if sharded).

        Every process calls it (gathering is a collective); a sharded runtime may return
        the full dict on the main process only and an empty one elsewhere.
        """

    def load_state_dict(self, model: Any, state: dict[str, Any]) -> None:
        """Load a full state dict into ``model``; every process passes the whole dict."""

    def optimizer_state_dict(self, model: Any, optimizer: Any) -> dict[str, Any]:
        """The optimizer's full state for a checkpoint (gathered from shards; collective)."""

    def load_optimizer_state_dict(self, model: Any, optimizer: Any, state: dict[str, Any]) -> None:
        """Restore :meth:`optimizer_state_dict` output; every process passes the whole dict."""

    @property
    def shards_parameters(self) -> bool:
        """Whether each process holds only part of the weights (FSDP, ZeRO-3).

        Then every process must run every forward pass together, even one that has no
        data left (``generate(synced_gpus=True)``), or the others wait forever.
        """

    @property
    def checkpoint_format(self) -> Literal["full", "sharded"]:
        """How checkpoints of this runtime store weights and optimizer state.

        ``"full"``: one set of files written by the main process from :meth:`state_dict`
        and :meth:`optimizer_state_dict`. ``"sharded"``: every process writes its shards
        with :meth:`save_sharded_state` (FSDP with a sharded state dict type).
        """

    def save_sharded_state(self, directory: str, model: Any, optimizer: Any = None) -> None:
        """Write model (and optimizer) shards under ``directory``; every process calls it."""

    def load_sharded_state(self, directory: str, model: Any, optimizer: Any = None) -> None:
        """Load :meth:`save_sharded_state` output, on any number of processes (collective)."""
