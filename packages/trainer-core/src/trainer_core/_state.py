"""What the training loop knows (TrainerState) and what callbacks ask of it (TrainerControl).

``TrainerState`` is written to ``trainer_state.json`` in every checkpoint. Its JSON keys
are the reference Trainer's field names, so a checkpoint written by either trainer
resumes in the other; keys this version does not know are skipped, so files written by
newer releases still load.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import logging
import math
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class ExportableState(metaclass=abc.ABCMeta):  # noqa: B024 (ABC for its subclass hook only)
    """Mixin for objects whose state is stored in a checkpoint and restored on resume.

    A subclass implements :meth:`state` returning ``{"args": {...}, "attributes": {...}}``
    of plain JSON values: ``args`` are the constructor's keyword arguments and
    ``attributes`` the values that change while training. Keeping to JSON (no pickle)
    means a checkpoint can be inspected by hand and loaded without executing code.

    The check is structural, as for ``collections.abc``: any class that defines both
    ``state`` and ``from_state`` counts as an ``ExportableState``. Users keep callbacks
    built on the reference library's own mixin of that name (its
    ``EarlyStoppingCallback``, their subclasses of it); this way those callbacks are saved
    in ``trainer_state.json`` and restored on resume like ours, without this package
    importing that library.
    """

    @classmethod
    def __subclasshook__(cls, other: type) -> bool | Any:
        """Accept classes defining both ``state`` and ``from_state`` (see above)."""
        if cls is ExportableState and _defines(other, "state") and _defines(other, "from_state"):
            return True
        return NotImplemented

    def state(self) -> dict[str, Any]:
        """Return ``{"args": ..., "attributes": ...}`` describing this object.

        Raises:
            NotImplementedError: always, in this base class.
        """
        raise NotImplementedError(
            f"{type(self).__name__} inherits ExportableState but does not implement state(); "
            'return {"args": {...constructor kwargs...}, "attributes": {...}}'
        )

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Any:
        """Rebuild an object from what :meth:`state` returned.

        The constructor receives ``state["args"]``; each entry of ``state["attributes"]``
        is then set on the new object.
        """
        instance = cls(**state["args"])
        for name, value in state.get("attributes", {}).items():
            setattr(instance, name, value)
        return instance


def _defines(klass: type, name: str) -> bool:
    """Whether ``klass`` or one of its bases defines ``name`` (as ``None``: opted out)."""
    for base in klass.__mro__:
        if name in vars(base):
            return vars(base)[name] is not None
    return False


def _export_callbacks(callbacks: Iterable[Any]) -> dict[str, Any]:
    """Turn callback objects into the ``{class name: state}`` mapping stored in JSON.

    Two callbacks of the same class are stored as a list of states, in order.
    """
    exported: dict[str, Any] = {}
    for callback in callbacks:
        if not isinstance(callback, ExportableState):
            raise TypeError(
                "stateful_callbacks accepts only ExportableState objects (they define "
                f"state()), got {type(callback).__name__}; make the callback inherit "
                "trainer_core.ExportableState or leave it out of stateful_callbacks"
            )
        name = type(callback).__name__
        if name not in exported:
            exported[name] = callback.state()
        elif isinstance(exported[name], list):
            exported[name].append(callback.state())
        else:
            exported[name] = [exported[name], callback.state()]
    return exported


@dataclass
class TrainerState:
    """The loop's progress, shared with callbacks and saved with every checkpoint.

    A "step" is one optimizer update: with ``gradient_accumulation_steps=n`` a step
    consumes ``n`` batches.

    Attributes:
        epoch: Progress in epochs; the fractional part is the share of the current epoch
            done. ``0`` (an int, as the reference's) until the first step, so metrics
            and logs taken before training read ``'epoch': 0``.
        global_step: Optimizer updates completed.
        max_steps: Optimizer updates this training will run.
        logging_steps: Log every this many steps (resolved from a ratio if one was given).
        eval_steps: Evaluate every this many steps.
        save_steps: Save a checkpoint every this many steps.
        train_batch_size: Per-device batch size actually used (it can differ from the
            arguments when ``auto_find_batch_size`` shrank it).
        num_train_epochs: Epochs this training will run.
        num_input_tokens_seen: Input tokens consumed, when token counting is on.
        total_flos: Floating point operations done since training began (a float so it
            cannot overflow).
        log_history: Every dict logged since training began, oldest first.
        best_metric: Best value of ``metric_for_best_model`` seen so far.
        best_global_step: Step at which ``best_metric`` was reached.
        best_model_checkpoint: Folder of the checkpoint holding the best model.
        is_local_process_zero: Whether this is the main process of its machine.
        is_world_process_zero: Whether this is the main process of the whole run.
        is_hyper_param_search: Whether a hyperparameter search runs this training.
        trial_name: Name of the search trial, if any.
        trial_params: Hyperparameters of the search trial, if any.
        stateful_callbacks: ``{class name: state}`` of the callbacks saved with the
            checkpoint. A list of ``ExportableState`` objects may be passed instead; it is
            converted to that mapping on construction.
    """

    epoch: float = 0
    global_step: int = 0
    max_steps: int = 0
    logging_steps: int = 500
    eval_steps: int = 500
    save_steps: int = 500
    train_batch_size: int | None = None
    num_train_epochs: int = 0
    num_input_tokens_seen: int = 0
    total_flos: float = 0.0
    log_history: list[dict[str, Any]] = field(default_factory=list)
    best_metric: float | None = None
    best_global_step: int | None = None
    best_model_checkpoint: str | None = None
    is_local_process_zero: bool = True
    is_world_process_zero: bool = True
    is_hyper_param_search: bool = False
    trial_name: str | None = None
    trial_params: dict[str, Any] | None = None
    stateful_callbacks: Any = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.log_history is None:
            self.log_history = []
        if self.stateful_callbacks is None:
            self.stateful_callbacks = {}
        elif not isinstance(self.stateful_callbacks, dict):
            self.stateful_callbacks = _export_callbacks(self.stateful_callbacks)

    def save_to_json(self, json_path: str | os.PathLike[str]) -> None:
        """Write the state to ``json_path`` atomically.

        The JSON is written to a temporary file in the same folder and renamed over the
        target, so a crash mid-write leaves either the old file or the new one, never a
        truncated file that a resume would choke on. Keys are sorted and indented as the
        reference Trainer writes them, so diffs between the two stay readable.
        """
        text = json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"
        target = Path(json_path)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            # os.open with 0o666 lets the umask decide the mode, like a plain open() would.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    @classmethod
    def load_from_json(cls, json_path: str | os.PathLike[str]) -> TrainerState:
        """Read a state written by :meth:`save_to_json` or by the reference Trainer.

        Keys missing from the file take their defaults (older releases wrote fewer
        fields); keys this class does not know are skipped with a debug log (newer
        releases add fields).

        Raises:
            ValueError: the file does not hold a JSON object.
        """
        with open(json_path, encoding="utf-8") as handle:
            data = json.load(handle)
        if not isinstance(data, dict):
            raise ValueError(
                f"{os.fspath(json_path)} holds a JSON {type(data).__name__}, but a trainer "
                "state file must hold a JSON object of TrainerState fields"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            logger.debug("Ignoring unknown keys in %s: %s", os.fspath(json_path), unknown)
        return cls(**{key: value for key, value in data.items() if key in known})

    def compute_steps(self, args: Any, max_steps: int) -> None:
        """Resolve ``logging_steps``, ``eval_steps`` and ``save_steps`` from ``args``.

        A value below 1 is a ratio of the whole training (``0.1`` = every tenth of
        ``max_steps``, rounded up); a value of 1 or more is a step count. A ``None``
        value keeps the current one.
        """
        for kind in ("logging", "eval", "save"):
            value = getattr(args, f"{kind}_steps", None)
            if value is None:
                continue
            if value < 1:
                value = math.ceil(max_steps * value)
            setattr(self, f"{kind}_steps", int(value))


@dataclass
class TrainerControl(ExportableState):
    """Switches callbacks flip to steer the loop; the loop reads them after each event.

    The loop resets them at fixed points (see :meth:`_new_training`, :meth:`_new_epoch`
    and :meth:`_new_step`), so a callback only ever has to turn a switch on.

    Attributes:
        should_training_stop: End training after this step. Never reset during a
            training: once on, the loop stops.
        should_epoch_stop: End the current epoch after this step. Reset when the next
            epoch begins.
        should_save: Save a checkpoint after this step. Reset when the next step begins.
        should_evaluate: Evaluate after this step. Reset when the next step begins.
        should_log: Log after this step. Reset when the next step begins.
    """

    should_training_stop: bool = False
    should_epoch_stop: bool = False
    should_save: bool = False
    should_evaluate: bool = False
    should_log: bool = False

    def _new_training(self) -> None:
        """Reset what must not carry over from a previous ``train()`` call."""
        self.should_training_stop = False

    def _new_epoch(self) -> None:
        """Reset what must not carry over from the previous epoch."""
        self.should_epoch_stop = False

    def _new_step(self) -> None:
        """Reset the per-step requests before a new step starts."""
        self.should_save = False
        self.should_evaluate = False
        self.should_log = False

    def state(self) -> dict[str, Any]:
        """Return every switch as constructor arguments; there are no other attributes."""
        return {"args": dataclasses.asdict(self), "attributes": {}}
