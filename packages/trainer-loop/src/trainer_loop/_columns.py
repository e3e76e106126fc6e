"""Which inputs a model takes, and dropping dataset columns it does not take.

The Trainer calls ``model(**batch)``, so a column the model's ``forward`` does not accept
(raw text, ids, lengths) would be a ``TypeError``. With ``remove_unused_columns=True`` the
reference drops those columns: from a ``datasets.Dataset`` up front, and from every
example inside the collator for other datasets. Label names are always kept, since the
loss needs them even when ``forward`` takes them under another name.

One deliberate difference from the reference: a ``forward`` that takes ``**kwargs``
accepts every name (:func:`accepts_any_input`), so :func:`remove_unused_columns` removes
nothing from it (the reference would keep only the literal parameter names).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from trainer_loop._dataloader_options import is_hf_dataset

__all__ = [
    "RemoveColumnsCollator",
    "accepts_any_input",
    "can_return_loss",
    "default_label_names",
    "model_input_names",
    "remove_unused_columns",
]

logger = logging.getLogger(__name__)

_ALWAYS_KEPT = ("label", "label_ids")
_QA_LABELS = ("start_positions", "end_positions")
_KEYWORD_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _unwrap(model: Any) -> Any:
    """The model whose ``forward`` defines the inputs, under DDP / compile / PEFT wrappers."""
    for _ in range(8):  # wrappers nest a few levels at most; the bound avoids cycles
        if callable(getattr(model, "get_base_model", None)):
            model = model.get_base_model()
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif type(model).__name__ in ("DistributedDataParallel", "DataParallel"):
            model = model.module
        else:
            break
    return model


def _forward_signature(model: Any) -> inspect.Signature:
    target = _unwrap(model)
    forward = getattr(target, "forward", target)
    try:
        return inspect.signature(forward)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"Cannot read the inputs of {type(target).__name__}: its forward has no "
            f"inspectable signature ({error}). Set remove_unused_columns=False and "
            "label_names explicitly."
        ) from error


def model_input_names(model: Any, *, label_names: Iterable[str] = ()) -> set[str]:
    """Names a batch may carry when it is passed as ``model(**batch)``.

    Only the named parameters count; check :func:`accepts_any_input` first when a
    ``forward(..., **kwargs)`` should keep every column.

    Args:
        model: A module (its ``forward`` is read, through DDP, ``torch.compile`` and PEFT
            wrappers) or a callable.
        label_names: Extra names to keep, typically ``args.label_names``; ``"label"`` and
            ``"label_ids"`` are always kept since collators rename them to ``labels``.

    Returns:
        The names of the parameters of ``forward`` that can be passed by keyword (not
        ``*args`` / ``**kwargs`` / positional-only ones), plus the label names.
    """
    parameters = _forward_signature(model).parameters.values()
    names = {param.name for param in parameters if param.kind in _KEYWORD_KINDS}
    names.update(_ALWAYS_KEPT)
    names.update(label_names)
    return names


def accepts_any_input(model: Any) -> bool:
    """Whether ``forward`` takes only ``**kwargs``, so that no column can be judged unused.

    A ``forward`` that names its inputs *and* takes ``**kwargs`` (every transformers 5
    model, whose keywords carry loss and attention options) still has its unnamed
    columns removed, as the reference does: the keywords are not a place for data.
    """
    parameters = list(_forward_signature(model).parameters.values())
    named = [
        p
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    return _takes_var_keyword(parameters) and not named


def default_label_names(model: Any) -> list[str]:
    """Label names the Trainer uses when ``args.label_names`` is None.

    The names are read from ``forward``: every parameter whose name contains ``label``
    (usually just ``labels``), and, for question answering models (``forward`` takes
    both ``start_positions`` and ``end_positions``), those two. A ``forward`` with
    ``**kwargs`` and no label parameter gets ``["labels"]``, since labels would reach it
    through the keywords. Models such as CLIP take no labels at all; they compute their
    loss when ``return_loss`` is true (see :func:`can_return_loss`) and get ``[]`` here.
    """
    parameters = _forward_signature(model).parameters
    names = [name for name in parameters if "label" in name]
    if all(name in parameters for name in _QA_LABELS):
        names.extend(name for name in _QA_LABELS if name not in names)
    if not names and _takes_var_keyword(parameters.values()):
        names = ["labels"]
    return names


def can_return_loss(model: Any) -> bool:
    """Whether ``forward`` computes a loss without labels by default (``return_loss=True``).

    Such models (CLIP-like contrastive models) are evaluated with a loss even though
    their batches carry no label columns.
    """
    param = _forward_signature(model).parameters.get("return_loss")
    return param is not None and param.default is True


def _takes_var_keyword(parameters: Iterable[inspect.Parameter]) -> bool:
    return any(param.kind is inspect.Parameter.VAR_KEYWORD for param in parameters)


def remove_unused_columns(
    dataset: Any,
    model: Any,
    *,
    label_names: Iterable[str] = (),
    description: str | None = "training",
    log: logging.Logger | None = None,
    accepted: Collection[str] | None = None,
) -> Any:
    """Drop the columns of a ``datasets.Dataset`` that ``model.forward`` cannot take.

    Other datasets, and every dataset when ``forward`` takes ``**kwargs``, are returned
    unchanged: wrap the collator of other datasets in :class:`RemoveColumnsCollator`
    instead. The dropped names are logged once at INFO.

    Args:
        dataset: The dataset to clean.
        model: The model whose ``forward`` defines the accepted names.
        label_names: Extra names to keep (``args.label_names``).
        description: What the dataset is for ("training", "evaluation", "test"), used in
            the log and error messages; None (a subclass calling the hook without one)
            names no set.
        log: Logger for the INFO line; this module's logger by default.
        accepted: The names to keep, replacing those read from ``forward`` (a
            subclass's ``_signature_columns``).

    Returns:
        A new ``datasets.Dataset`` without the unused columns, or ``dataset`` itself.

    Raises:
        ValueError: No column would remain; the message lists the dataset's columns and
            the names ``forward`` accepts.
    """
    if not is_hf_dataset(dataset):
        return dataset
    if accepted is None:
        if accepts_any_input(model):
            return dataset
        accepted = model_input_names(model, label_names=label_names)
    columns = list(dataset.column_names)
    unused = [name for name in columns if name not in accepted]
    if not unused:
        return dataset
    if len(unused) == len(columns):
        raise ValueError(_nothing_left_message(description, columns, accepted, model))
    (log or logger).info(_dropped_message(description, unused, model))
    labels = {"labels", *_ALWAYS_KEPT, *label_names}
    if all(name in labels or name in unused for name in columns):
        (log or logger).warning(_only_labels_message(description, unused, model))
    return dataset.remove_columns(unused)


def _of_the_set(description: str | None) -> str:
    """``"of the training set"``, or ``"of the dataset"`` when the caller named no set."""
    return f"of the {description} set" if description else "of the dataset"


def _only_labels_message(description: str | None, unused: list[str], model: Any) -> str:
    return (
        f"Only label columns {_of_the_set(description)} are accepted by "
        f"{_model_name(model)}.forward, so the model will receive no inputs (dropped: "
        f"{', '.join(unused)}). Tokenize raw text into the model's inputs (e.g. "
        "input_ids with dataset.map(tokenizer)), or set remove_unused_columns=False for a "
        "data_collator that builds them."
    )


def _model_name(model: Any) -> str:
    return type(_unwrap(model)).__name__


def _dropped_message(description: str | None, unused: list[str], model: Any) -> str:
    return dropped_columns_line(description, f"{_model_name(model)}.forward", unused)


def dropped_columns_line(description: str | None, forward: str, dropped: list[str]) -> str:
    """The info line naming the columns left out: its start is the reference's, which
    users search their logs for; its end says how to keep them."""
    where = f"in the {description} set" if description else "in the dataset"
    return (
        f"The following columns {where} don't have a corresponding argument in `{forward}` "
        f"and have been ignored: {', '.join(dropped)}. Set remove_unused_columns=False to "
        "keep them (for example for a custom collator that uses them)."
    )


def _nothing_left_message(
    description: str | None, columns: list[str], accepted: Collection[str], model: Any
) -> str:
    return (
        f"No column {_of_the_set(description)} is accepted by {_model_name(model)}.forward, so "
        f"removing unused columns would leave nothing. Dataset columns: {columns}; forward "
        f"accepts: {sorted(accepted)}. Rename the columns to the model's input names (for "
        "example with dataset.rename_column) or set remove_unused_columns=False."
    )


class RemoveColumnsCollator:
    """Wrap a collator so that each example loses the keys ``forward`` does not take.

    Used for datasets whose columns cannot be dropped up front (torch datasets,
    streams). Only mapping examples are filtered; others pass through untouched. The
    dropped names are logged once per process, on the first batch that has any.

    Args:
        data_collator: The collator that builds the batch from the filtered examples.
        signature_columns: Names to keep (:func:`model_input_names`); None keeps every
            key (pass None when :func:`accepts_any_input` is true).
        logger: Where to log the dropped names; nothing is logged when None.
        model_name: Model class name for the log line.
        description: What the data is for ("training", "evaluation"), for the log line.

    The parameters come in the reference's order, so that positional calls copied from
    it keep their meaning.
    """

    def __init__(
        self,
        data_collator: Callable[[list[Any]], Any],
        signature_columns: Collection[str] | None,
        logger: logging.Logger | None = None,
        model_name: str | None = None,
        description: str | None = None,
    ) -> None:
        self.data_collator = data_collator
        self.signature_columns = None if signature_columns is None else frozenset(signature_columns)
        self.logger = logger
        self.description = description
        self.model_name = model_name
        self._logged = False

    def __call__(self, features: list[Any]) -> Any:
        """Filter every example, then collate.

        A batch whose examples hold only accepted keys is passed as it is: the subset
        test runs in C, while rebuilding each dict cost ~30 us a batch of 32 on the hot
        path.
        """
        keep = self.signature_columns
        if (
            keep is not None
            and features
            and isinstance(features[0], Mapping)
            and not all(map(keep.issuperset, features))
        ):
            if not self._logged:
                self._log_dropped(next(r for r in features if not keep.issuperset(r)), keep)
            original = features[0]
            features = [{k: v for k, v in row.items() if k in keep} for row in features]
            if not features[0]:
                raise ValueError(self._nothing_left(original, keep))
        return self.data_collator(features)

    def _nothing_left(self, example: Mapping[str, Any], keep: frozenset[str]) -> str:
        """The error for examples none of whose keys the model takes (an empty batch)."""
        where = f" of the {self.description} set" if self.description else ""
        forward = f"{self.model_name}.forward" if self.model_name else "the model's forward"
        return (
            f"No key of the examples{where} is accepted by {forward}, so removing unused "
            f"columns would leave empty batches. Example keys: {sorted(map(str, example))}; "
            f"forward accepts: {sorted(keep)}. Rename the keys to the model's input names, "
            "or set remove_unused_columns=False (for a data_collator that builds the inputs "
            "from these keys)."
        )

    def _log_dropped(self, example: Mapping[str, Any], keep: frozenset[str]) -> None:
        dropped = [name for name in example if name not in keep]
        if not dropped:
            return
        self._logged = True
        if self.logger is None:
            return
        forward = f"{self.model_name}.forward" if self.model_name else "the model's forward"
        self.logger.info("%s", dropped_columns_line(self.description, forward, dropped))
