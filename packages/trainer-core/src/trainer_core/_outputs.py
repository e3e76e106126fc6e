"""What ``train``, ``evaluate``, ``predict`` and ``hyperparameter_search`` return.

Plain containers with no torch or numpy import: the arrays inside are whatever the loop
produced (numpy arrays, nested tuples of them, or ``None``), so reporting and search
code can handle results without loading torch.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, NamedTuple


class EvalPrediction:
    """Predictions and labels handed to ``compute_metrics``.

    It unpacks like a tuple, as code written for the reference does
    (``logits, labels = eval_pred``): the tuple holds ``predictions`` and ``label_ids``,
    then ``inputs`` if given, then ``losses`` if given. Indexing, slicing and ``len``
    follow that same tuple.

    Args:
        predictions: Model outputs over the dataset, as an array or tuple of arrays.
        label_ids: The labels to compare against, or ``None`` when there are none.
        inputs: The model inputs, when asked for (``include_inputs_for_metrics``).
        losses: Per-batch losses, when asked for (``include_for_metrics=["loss"]``).
    """

    def __init__(
        self, predictions: Any, label_ids: Any, inputs: Any = None, losses: Any = None
    ) -> None:
        self.predictions = predictions
        self.label_ids = label_ids
        self.inputs = inputs
        self.losses = losses

    def _as_tuple(self) -> tuple[Any, ...]:
        items: tuple[Any, ...] = (self.predictions, self.label_ids)
        if self.inputs is not None:
            items += (self.inputs,)
        if self.losses is not None:
            items += (self.losses,)
        return items

    @property
    def elements(self) -> tuple[Any, ...]:
        """The tuple it unpacks to (transformers 5's attribute of that name)."""
        return self._as_tuple()

    def __iter__(self) -> Any:
        return iter(self._as_tuple())

    def __len__(self) -> int:
        return len(self._as_tuple())

    def __getitem__(self, index: int | slice) -> Any:
        return self._as_tuple()[index]

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={value!r}"
            for name, value in vars(self).items()
            if value is not None or name in ("predictions", "label_ids")
        )
        return f"EvalPrediction({fields})"


class EvalLoopOutput(NamedTuple):
    """Everything one evaluation loop gathered.

    Attributes:
        predictions: Model outputs over the dataset.
        label_ids: Labels, or ``None`` when the dataset has none.
        metrics: Computed metrics, or ``None`` when nothing computed them.
        num_samples: Samples seen, or ``None`` when the dataloader had no length.
    """

    predictions: Any
    label_ids: Any
    metrics: dict[str, float] | None
    num_samples: int | None


class PredictionOutput(NamedTuple):
    """What ``Trainer.predict`` returns.

    Attributes:
        predictions: Model outputs over the dataset.
        label_ids: Labels, or ``None`` when the dataset has none.
        metrics: Metrics (at least the speed metrics), or ``None``.
    """

    predictions: Any
    label_ids: Any
    metrics: dict[str, float] | None


class TrainOutput(NamedTuple):
    """What ``Trainer.train`` returns.

    Attributes:
        global_step: Optimizer updates done.
        training_loss: Mean training loss over the run.
        metrics: Speed metrics, FLOPs and the final loss.
    """

    global_step: int
    training_loss: float
    metrics: dict[str, float]


class BestRun(NamedTuple):
    """The best trial ``Trainer.hyperparameter_search`` found.

    Attributes:
        run_id: The backend's id of the trial (also the name of its checkpoint folder).
        objective: The objective value the trial reached.
        hyperparameters: The hyperparameters of the trial.
        run_summary: The backend's own summary object, when it has one (Ray Tune's
            analysis, for instance).
    """

    run_id: str
    objective: float | list[float]
    hyperparameters: dict[str, Any]
    run_summary: Any | None = None


class HPSearchBackend(str, Enum):
    """The hyperparameter search backends, by the names users pass as ``backend``."""

    OPTUNA = "optuna"
    RAY = "ray"
    SIGOPT = "sigopt"
    WANDB = "wandb"

    def __str__(self) -> str:
        """Return the backend name, the same on every Python version."""
        return self.value
