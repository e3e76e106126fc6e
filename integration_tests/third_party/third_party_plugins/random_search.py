"""``hyperparameter_search(backend="random")``: plain random search over choices."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from trainer_core import BestRun, TrainerLike


@dataclass(frozen=True)
class RandomTrial:
    """One trial: its number and the values drawn for it."""

    number: int
    params: dict[str, Any]


class RandomSearch:
    """Draws each trial's values uniformly from the choices ``hp_space`` lists.

    ``hp_space(trial)`` returns ``{field: [choices]}``; it is called with ``None``.
    """

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def is_available(self) -> bool:
        return True

    def ensure_available(self) -> None:
        return None

    def default_hp_space(self, trial: Any) -> dict[str, list[Any]]:
        return {"learning_rate": [1e-3, 1e-2, 1e-1], "seed": [1, 2, 3]}

    def run(
        self, trainer: TrainerLike, n_trials: int, direction: str | list[str], **kwargs: Any
    ) -> BestRun:
        if direction not in ("minimize", "maximize"):
            raise ValueError(f"random search optimises one direction, got {direction!r}")
        draw = random.Random(self.seed)
        best: BestRun | None = None
        for number in range(n_trials):
            space = trainer.hp_space(None)
            trial = RandomTrial(number, {key: draw.choice(list(v)) for key, v in space.items()})
            trainer.objective = None  # the trainer keeps the last trial's value otherwise
            trainer.train(trial=trial)
            if trainer.objective is None:
                trainer.objective = trainer.compute_objective(trainer.evaluate())
            objective = float(trainer.objective)  # type: ignore[arg-type]
            if best is None or (
                objective < best.objective
                if direction == "minimize"
                else objective > best.objective
            ):
                best = BestRun(str(number), objective, dict(trial.params))
        if best is None:
            raise ValueError("n_trials must be at least 1")
        return best

    def hyperparameters(self, trainer: TrainerLike, trial: RandomTrial) -> dict[str, Any]:
        return dict(trial.params)

    def trial_params(self, trial: RandomTrial) -> dict[str, Any]:
        return dict(trial.params)

    def trial_id(self, trial: RandomTrial) -> str:
        return str(trial.number)

    def report(
        self, trainer: TrainerLike, trial: Any, step: int, metrics: dict[str, float]
    ) -> None:
        return None  # no pruning
