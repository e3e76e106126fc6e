"""Which search backend ``hyperparameter_search(backend=...)`` means.

The loop never imports a search library or trainer-hpsearch: backends are plugins of
the ``trainer.hp_search_backends`` entry-point group, loaded by name, so another
distribution can add or replace one.
"""

from __future__ import annotations

from typing import Any

from trainer_core import (
    HP_SEARCH_BACKENDS_GROUP,
    KNOWN_PROVIDERS,
    HPSearchBackend,
    SearchBackend,
    available_plugins,
    load_plugin,
)

DEFAULT_ORDER = ("optuna", "ray", "sigopt")
"""Tried in this order when no backend is named; the first whose library is installed wins."""

_WANDB_REFUSED = (
    "backend='wandb' is not supported: W&B sweeps need W&B's sweep server to choose the "
    "trials, which trainer does not drive. Use backend='optuna', 'ray' or 'sigopt' (and "
    "report_to='wandb' to log each trial to W&B)."
)


def resolve_backend(backend: str | HPSearchBackend | SearchBackend | None) -> SearchBackend:
    """The backend object for ``backend``: a name, an ``HPSearchBackend``, an object that
    already is a backend (a custom one), or ``None`` for the first installed one."""
    if backend is None:
        return default_backend()
    if not isinstance(backend, str):  # HPSearchBackend is a str too
        if isinstance(backend, SearchBackend):
            return backend
        raise TypeError(
            f"backend must be a name ({', '.join(DEFAULT_ORDER)}), an HPSearchBackend or a "
            f"SearchBackend object; got {type(backend).__name__}."
        )
    name = str(getattr(backend, "value", backend))
    if name == "wandb" and name not in available_plugins(HP_SEARCH_BACKENDS_GROUP):
        raise ValueError(_WANDB_REFUSED)
    return load_plugin(HP_SEARCH_BACKENDS_GROUP, name)()


def default_backend() -> SearchBackend:
    """The first of optuna, Ray Tune and SigOpt that is installed, as the reference picks."""
    installed = available_plugins(HP_SEARCH_BACKENDS_GROUP)
    for name in DEFAULT_ORDER:
        if name in installed:
            backend = load_plugin(HP_SEARCH_BACKENDS_GROUP, name)()
            if backend.is_available():
                return backend
    providers = KNOWN_PROVIDERS[HP_SEARCH_BACKENDS_GROUP]
    choices = "; ".join(f"{name}: pip install '{providers[name]}'" for name in DEFAULT_ORDER)
    raise RuntimeError(
        "hyperparameter_search needs a search backend and none is installed. Install one "
        f"({choices}), or pip install 'trainer[optuna]'."
    )


def backend_label(backend: SearchBackend) -> Any:
    """What ``Trainer.hp_search_backend`` holds during a search: the ``HPSearchBackend``
    member for the reference's names, the plain name for other plugins."""
    try:
        return HPSearchBackend(backend.name)
    except ValueError:
        return backend.name
