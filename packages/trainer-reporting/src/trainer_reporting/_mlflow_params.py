"""Turn the arguments and model configuration into MLflow params within MLflow's limits.

MLflow stores each param as a string of bounded length and accepts a bounded number per
request; a value over the limit would fail the whole request, so it is left out with a
warning instead, and the rest is sent in batches.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any

from trainer_reporting._logs import env_flag

logger = logging.getLogger(__name__)


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings become dotted keys: ``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def drop_long_values(params: Mapping[str, Any], max_length: int) -> dict[str, Any]:
    """``params`` without the values whose text is longer than ``max_length``, each
    dropped one named in a warning."""
    kept: dict[str, Any] = {}
    for key, value in params.items():
        if len(str(value)) > max_length:
            logger.warning(
                "MLflow: the param %r is %d characters long, over MLflow's limit of %d, so "
                "it was not logged. Set MLFLOW_FLATTEN_PARAMS=true to log a nested value "
                "key by key.",
                key,
                len(str(value)),
                max_length,
            )
            continue
        kept[key] = value
    return kept


def param_batches(params: Mapping[str, Any], batch_size: int) -> Iterator[dict[str, Any]]:
    """``params`` split into dicts of at most ``batch_size`` entries, in order."""
    items = list(params.items())
    for start in range(0, len(items), batch_size):
        yield dict(items[start : start + batch_size])


def max_log_params() -> int | None:
    """``MLFLOW_MAX_LOG_PARAMS`` as a count, or None when unset or not a number."""
    value = os.getenv("MLFLOW_MAX_LOG_PARAMS", "")
    return int(value) if value.isdigit() else None


def unlogged_params(params: Mapping[str, Any], logged: Mapping[str, str]) -> dict[str, Any]:
    """``params`` without those the run already holds.

    MLflow never changes a logged param: logging one again with another value fails the
    whole request (and with it the training). A run that already has params is a resumed
    one (``MLFLOW_RUN_ID``, where ``logging_dir``'s timestamp or the epochs may differ) or
    the script's own run; its values are kept, each differing one named in a warning.
    """
    kept: dict[str, Any] = {}
    for key, value in params.items():
        if key not in logged:
            kept[key] = value
        elif logged[key] != str(value):
            logger.warning(
                "MLflow: the run already has the param %r = %r, so the new value %r was not "
                "logged (MLflow does not change a param once logged). Start a new run, "
                "without MLFLOW_RUN_ID, to record the new value.",
                key,
                logged[key],
                str(value),
            )
    return kept


def run_params(
    params: Mapping[str, Any], logged: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """The batches of params to log, after ``MLFLOW_FLATTEN_PARAMS``, the length limit and
    ``MLFLOW_MAX_LOG_PARAMS`` have been applied, leaving out those already ``logged`` in
    the run (see :func:`unlogged_params`)."""
    from mlflow.utils import validation

    if env_flag("MLFLOW_FLATTEN_PARAMS"):
        params = flatten_params(params)
    params = drop_long_values(params, validation.MAX_PARAM_VAL_LENGTH)
    limit = max_log_params()
    if limit is not None and limit < len(params):
        logger.debug(
            "Logging the first %d of %d params (MLFLOW_MAX_LOG_PARAMS).", limit, len(params)
        )
        params = dict(list(params.items())[:limit])
    if logged:
        params = unlogged_params(params, logged)
    return list(param_batches(params, validation.MAX_PARAMS_TAGS_PER_BATCH))
