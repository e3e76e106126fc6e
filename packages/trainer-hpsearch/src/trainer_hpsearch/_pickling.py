"""Ray Tune ships the trainer to its workers by pickling it: find what cannot travel
before Ray fails with an error that does not say which attribute it was."""

from __future__ import annotations

from typing import Any

from trainer_hpsearch._common import require


def _fails(dumps: Any, value: Any) -> str | None:
    try:
        dumps(value)
    except Exception as error:  # pickling raises many types (TypeError, PicklingError, ...)
        return f"{type(error).__name__}: {error}"
    return None


def _culprits(dumps: Any, trainer: Any) -> list[str]:
    found = []
    for name, value in vars(trainer).items():
        if _fails(dumps, value) is None:
            continue
        callbacks = getattr(value, "callbacks", None) if name == "callback_handler" else None
        if callbacks:
            found += [f"callback {type(c).__name__}" for c in callbacks if _fails(dumps, c)]
        else:
            found.append(f"attribute {name!r} ({type(value).__name__})")
    return found


def check_picklable(trainer: Any) -> None:
    """Raise a ``TypeError`` naming the trainer's attributes (or callbacks) that cannot
    be pickled, and how to get rid of them, when Ray could not ship ``trainer``."""
    dumps = require("ray.cloudpickle", "ray").dumps
    error = _fails(dumps, trainer)
    if error is None:
        return
    culprits = _culprits(dumps, trainer) or ["(not found attribute by attribute)"]
    raise TypeError(
        "Ray Tune runs each trial in a worker process and must pickle the Trainer to send "
        f"it there, but pickling failed ({error}). Not picklable: {', '.join(culprits)}. "
        "Remove such callbacks (trainer.pop_callback) or attributes before the search, "
        "or use backend='optuna', which runs trials in this process."
    )
