"""The Trainer's Hub methods: ``push_to_hub``, ``create_model_card``, ``init_hf_repo``.

(Scaffold: filled in by the Hub work.)
"""

from __future__ import annotations

from typing import Any


class HubMethods:
    """The Trainer's Hub methods (a mixin of ``Trainer``)."""

    def init_hf_repo(self) -> None:
        raise NotImplementedError("push_to_hub is not implemented yet.")

    def push_to_hub(
        self, commit_message: str | None = "End of training", blocking: bool = True, **kwargs: Any
    ) -> Any:
        raise NotImplementedError("push_to_hub is not implemented yet.")
