"""What every backend does the same way: import its library, run one trial, refuse
what it cannot serve."""

from __future__ import annotations

import importlib.util
from types import ModuleType
from typing import Any

from trainer_core import TrainerLike, import_optional


def is_installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it."""
    return importlib.util.find_spec(module) is not None


def require(module: str, backend: str) -> ModuleType:
    """Import ``module`` or raise ``MissingExtraError`` naming the extra to install."""
    return import_optional(
        module,
        package="trainer-hpsearch",
        extra=module.split(".", maxsplit=1)[0],  # the extras are named after the libraries
        feature=f"Hyperparameter search with backend='{backend}'",
    )


def run_trial(trainer: TrainerLike, trial: Any, checkpoint: str | None = None) -> Any:
    """Train once for ``trial``; return its objective.

    The trainer sets ``objective`` at each in-training evaluation; a trial that never
    evaluated during training is evaluated once at the end, so every trial has one.
    """
    trainer.objective = None
    trainer.train(resume_from_checkpoint=checkpoint, trial=trial)
    if trainer.objective is None:
        trainer.objective = trainer.compute_objective(trainer.evaluate())
    return trainer.objective


def refuse_several_processes(trainer: TrainerLike, backend: str) -> None:
    """Refuse a launch of several processes for a backend whose trials run in worker
    processes of its own (Ray Tune): those workers cannot join the launch's process
    group, so the launched processes would each run a whole search of their own."""
    runtime = getattr(trainer, "runtime", None)
    world_size = runtime.num_processes if runtime is not None else trainer.args.world_size
    if world_size > 1:
        raise RuntimeError(
            f"Hyperparameter search with backend='{backend}' runs in a single process, but "
            f"this run has {world_size} processes (a distributed launch). Ray Tune runs each "
            "trial in worker processes it starts itself, which cannot join this launch's "
            "process group. Launch the search script without torchrun / accelerate launch "
            "(give trials devices with resources_per_trial), or use backend='optuna' or "
            "'sigopt', which search under several processes."
        )


def refuse_several_directions(direction: str | list[str], backend: str) -> str:
    """Backends other than optuna optimise one objective."""
    if isinstance(direction, (list, tuple)):
        raise ValueError(
            f"backend='{backend}' optimises a single objective, but direction={direction!r} "
            "asks for several. Use backend='optuna' for multi-objective search, or pass one "
            "direction ('minimize' or 'maximize')."
        )
    if direction not in ("minimize", "maximize"):
        raise ValueError(f"direction must be 'minimize' or 'maximize', got {direction!r}.")
    return direction
