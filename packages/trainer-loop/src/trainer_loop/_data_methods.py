"""The Trainer's data methods: datasets to DataLoaders, samplers, unused columns.

A mixin of ``Trainer``, so that subclasses keep overriding the reference's hooks
(``get_train_dataloader``, ``_get_train_sampler``, ``_remove_unused_columns``, ...) by
name; the work itself is done by the data modules (``_dataloaders``, ``_samplers``,
``_columns``), which know nothing of the Trainer class.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch
from torch.utils.data import DataLoader

from trainer_loop._columns import remove_unused_columns
from trainer_loop._dataloader_options import has_length, num_examples
from trainer_loop._dataloaders import build_dataloader, remove_columns_collator
from trainer_loop._samplers import build_eval_sampler, build_train_sampler
from trainer_loop._subclass_hooks import call_train_sampler, signature_columns


class _KeptLoader(NamedTuple):
    """An evaluation loader and what it was built for."""

    dataset: Any
    runtime: Any
    batch_size: int
    loader: Any


class DataMethods:
    """The Trainer's data methods (a mixin of ``Trainer``; they read ``args``, ``model``,
    the datasets and ``label_names`` from it)."""

    args: Any
    model: Any
    train_dataset: Any
    eval_dataset: Any
    label_names: list[str]
    processing_class: Any
    runtime: Any
    _train_batch_size: int

    @staticmethod
    def _has_length(obj: Any) -> bool:
        return has_length(obj)

    def _remove_unused_columns(self, dataset: Any, description: str | None = None) -> Any:
        if not self.args.remove_unused_columns:
            return dataset
        return remove_unused_columns(
            dataset,
            self.model,
            label_names=self.label_names,
            description=description,
            accepted=signature_columns(self),
        )

    def _get_collator_with_removed_columns(
        self, data_collator: Callable[[list[Any]], Any], description: str | None = None
    ) -> Callable[[list[Any]], Any]:
        """``data_collator`` behind a filter of the keys ``forward`` does not take.

        The counterpart of ``_remove_unused_columns`` for datasets whose examples are
        filtered per batch (torch datasets, lists of dicts, streams); overrides of
        ``get_*_dataloader`` written for the reference call it.
        """
        return remove_columns_collator(self, data_collator, description)

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        return build_train_sampler(
            self.train_dataset if train_dataset is None else train_dataset,
            self.args,
            train_batch_size=self._train_batch_size,
            seed=self.args.data_seed if self.args.data_seed is not None else self.args.seed,
            model_input_name=_first_model_input(self.processing_class),
        )

    def _get_eval_sampler(self, eval_dataset: Any) -> Any:
        return build_eval_sampler(eval_dataset)

    def get_train_dataloader(self) -> DataLoader:
        """The training DataLoader (sampler, collator, workers from the arguments)."""
        if self.train_dataset is None:
            raise ValueError("Trainer: training requires a train_dataset.")
        return build_dataloader(
            self,
            self.train_dataset,
            batch_size=self._train_batch_size,
            sampler_for=lambda dataset: call_train_sampler(self, dataset),
            description="training",
            training=True,
        )

    def _eval_dataloader(self, dataset: Any, description: str) -> DataLoader:
        return build_dataloader(
            self,
            dataset,
            batch_size=self.args.eval_batch_size,
            sampler_for=self._get_eval_sampler,
            description=description,
            training=False,
        )

    def get_eval_dataloader(self, eval_dataset: Any | str | None = None) -> DataLoader:
        """The evaluation DataLoader; ``eval_dataset`` may name one of a dict of datasets."""
        key = eval_dataset if isinstance(eval_dataset, str) else "eval"
        if isinstance(eval_dataset, str):
            eval_dataset = self.eval_dataset[eval_dataset]  # type: ignore[index]  # dict of datasets
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if dataset is None:
            raise ValueError("Trainer: evaluation requires an eval_dataset.")
        if not self._keeps_eval_workers():
            return self._eval_dataloader(dataset, "evaluation")
        return self._kept_eval_dataloader(key, dataset)

    def _keeps_eval_workers(self) -> bool:
        return bool(self.args.dataloader_persistent_workers and self.args.dataloader_num_workers)

    def _kept_eval_dataloader(self, key: str, dataset: Any) -> DataLoader:
        """The evaluation loader built for ``dataset`` before, so that its persistent
        workers serve every evaluation instead of a fresh set starting each time.

        A loader is reused only for the same dataset object, batch size and runtime: a
        different dataset passed under the same name, or a runtime rebuilt by a new
        ``train()``, gets a loader of its own.
        """
        kept = self.__dict__.setdefault("_eval_dataloaders", {})
        entry = kept.get(key)
        if (
            entry is not None
            and entry.dataset is dataset
            and entry.runtime is self.runtime
            and entry.batch_size == self.args.eval_batch_size
        ):
            return entry.loader
        loader = self._eval_dataloader(dataset, "evaluation")
        kept[key] = _KeptLoader(dataset, self.runtime, self.args.eval_batch_size, loader)
        return loader

    def get_test_dataloader(self, test_dataset: Any) -> DataLoader:
        """The test DataLoader for ``predict``."""
        return self._eval_dataloader(test_dataset, "test")

    @staticmethod
    def num_examples(dataloader: DataLoader) -> int:
        """Examples behind ``dataloader`` (its dataset's length, or batches x batch size)."""
        return num_examples(dataloader)

    @staticmethod
    def num_tokens(train_dl: DataLoader, max_steps: int | None = None) -> int:
        """Tokens (``input_ids`` elements) in ``train_dl``, or in its first ``max_steps``
        batches."""
        total = 0
        for step, batch in enumerate(train_dl):
            total += batch["input_ids"].numel()
            if max_steps is not None and step + 1 >= max_steps:
                break
        return total

    def _main_input(self, inputs: Any) -> torch.Tensor | None:
        name = getattr(self.model, "main_input_name", "input_ids")
        value = inputs.get(name) if isinstance(inputs, Mapping) else None
        return value if isinstance(value, torch.Tensor) else None


def _first_model_input(processing_class: Any) -> str:
    """The input whose length groups examples: the processing class's first model
    input (``input_values`` for an audio feature extractor), else ``input_ids``."""
    names = getattr(processing_class, "model_input_names", None)
    return names[0] if names else "input_ids"
