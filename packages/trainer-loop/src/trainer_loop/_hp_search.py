"""``Trainer.hyperparameter_search`` and the loop's hooks for a running search.

(Scaffold: filled in by the hyperparameter-search work.)
"""

from __future__ import annotations

from typing import Any


class HyperparameterSearchMethods:
    """The Trainer's hyperparameter-search methods (a mixin of ``Trainer``)."""

    hp_search_backend: Any = None

    def hyperparameter_search(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("hyperparameter_search is not implemented yet.")

    def _hp_search_setup(self, trial: Any) -> None:
        """Put a trial's values into ``self.args`` before a trial's ``train()``."""

    def _report_to_hp_search(self, trial: Any, step: int, metrics: dict[str, float]) -> None:
        """Tell the search backend a trial's metrics after each evaluation in training."""
