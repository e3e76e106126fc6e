"""A fake ``TrainerLike`` for search-backend tests: "training" evaluates a known function
of the trial's hyperparameters, so a test knows every objective and the best trial.

Torch-free and importable by module name, so that Ray Tune's workers can unpickle it.
"""

from __future__ import annotations

import json
import math
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from trainer_core import TrainerControl, TrainerState, default_compute_objective


def quadratic_loss(params: dict[str, Any], step: int) -> float:
    """An evaluation loss that is smallest at ``learning_rate=1e-2`` and falls with each
    evaluation (``1/step``), as training would."""
    return (math.log10(params["learning_rate"]) + 2.0) ** 2 + 1.0 / step


def dipping_loss(params: dict[str, Any], step: int) -> float:
    """An evaluation loss that ranks trials differently by their best and by their last
    report: ``learning_rate >= 0.1`` dips to 0.5 at step 2 and ends at 2.0, any smaller
    rate stays at 1.0. A search's ``ray_scope`` decides which of the two wins."""
    if params["learning_rate"] >= 0.1:
        return 0.5 if step == 2 else 2.0
    return 1.0


@dataclass
class FakeSearchArgs:
    """The few ``TrainingArguments`` fields a search backend reads."""

    output_dir: str
    eval_strategy: str = "steps"
    world_size: int = 1
    learning_rate: float = 5e-5
    ray_scope: str = "last"
    n_gpu: int = 0


@dataclass
class TrainEndRecorder:
    """Stands in for the callback handler: records ``on_train_end`` calls."""

    calls: list[int] = field(default_factory=list)

    def on_train_end(self, args: Any, state: TrainerState, control: TrainerControl) -> Any:
        self.calls.append(state.global_step)
        return control


class FakeSearchTrainer:
    """Trains by evaluating ``loss(params, step)`` at steps ``1..evaluations``.

    Each ``train(trial=...)`` asks ``backend`` for the trial's values (as the real
    trainer does), reports every evaluation to it, and appends a record to
    :attr:`trials`: ``{"id", "params", "steps", "resumed_from"}``. A trial the backend
    ends early (pruning) has fewer steps.
    """

    def __init__(
        self,
        backend: Any,
        args: Any,
        *,
        hp_space: Callable[[Any], Any] | None = None,
        loss: Callable[[dict[str, Any], int], float] = quadratic_loss,
        evaluations: int = 3,
    ) -> None:
        self.backend = backend
        self.args = args
        self.hp_space = hp_space or backend.default_hp_space
        self.loss = loss
        self.evaluations = evaluations
        self.compute_objective: Callable[[dict[str, float]], Any] = default_compute_objective
        self.hp_name: Callable[[Any], str] | None = None
        self.objective: Any = None
        self.state = TrainerState()
        self.control = TrainerControl()
        self.callback_handler = TrainEndRecorder()
        self.trials: list[dict[str, Any]] = []

    def train(self, resume_from_checkpoint: str | bool | None = None, trial: Any = None) -> None:
        params = self.backend.hyperparameters(self, trial)
        record = {
            "id": self.backend.trial_id(trial),
            "params": params,
            "steps": [],
            "resumed_from": resume_from_checkpoint,
        }
        self.trials.append(record)
        self.state = TrainerState()
        for step in range(1, self.evaluations + 1):
            self.state.global_step = step
            metrics = {"eval_loss": self.loss(params, step), "epoch": float(step)}
            self.objective = self.compute_objective(metrics)
            record["steps"].append(step)
            self.backend.report(self, trial, step, metrics)
        self.callback_handler.on_train_end(self.args, self.state, self.control)

    def evaluate(self) -> dict[str, float]:
        return {"eval_loss": self.loss(self.trials[-1]["params"], self.evaluations)}

    def _tune_save_checkpoint(self, checkpoint_dir: str) -> None:
        folder = os.path.join(checkpoint_dir, f"checkpoint-{self.state.global_step}")
        os.makedirs(folder)
        with open(os.path.join(folder, "fake_state.json"), "w") as file:
            json.dump({"step": self.state.global_step, "objective": self.objective}, file)


def check_search_backend_contract(backend: Any, *, registered: bool = False) -> None:
    """The parts of the ``SearchBackend`` contract every implementation must meet
    without running a search: the protocol's methods, a name, an availability check
    that only looks, and an instance that pickles (Ray ships it to its workers).

    With ``registered`` (the package is installed), also what the loop relies on to
    find it: ``trainer.hp_search_backends`` loads the backend's class under its
    ``name``, and that class is built with no arguments.

    Raises:
        AssertionError: naming the broken part of the contract.
    """
    from trainer_core import HP_SEARCH_BACKENDS_GROUP, SearchBackend, load_plugin

    if not isinstance(backend, SearchBackend):
        raise AssertionError(f"{type(backend).__name__} lacks SearchBackend's methods")
    if not (isinstance(backend.name, str) and backend.name):
        raise AssertionError(f"{type(backend).__name__}.name must be a non-empty string")
    if not isinstance(backend.is_available(), bool):
        raise AssertionError(f"{type(backend).__name__}.is_available() must return a bool")
    if backend.is_available():
        backend.ensure_available()
    copy = pickle.loads(pickle.dumps(backend))
    if type(copy) is not type(backend) or copy.name != backend.name:
        raise AssertionError(f"{type(backend).__name__} does not survive pickling")
    if registered:
        loaded = load_plugin(HP_SEARCH_BACKENDS_GROUP, backend.name)
        if loaded is not type(backend):
            raise AssertionError(
                f"{HP_SEARCH_BACKENDS_GROUP} {backend.name!r} loads {loaded!r}, not "
                f"{type(backend).__name__}"
            )
        if not isinstance(loaded(), SearchBackend):
            raise AssertionError(f"{loaded.__name__}() is not a SearchBackend")
