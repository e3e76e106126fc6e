"""Samplers for the Trainer's loaders: seeded random order, or batches of similar length.

``group_by_length`` trades a little randomness for less padding: indices are shuffled,
cut into "megabatches" of up to 50 batches, and each megabatch is sorted by length so
that neighbouring (hence co-batched) examples have similar lengths. The single longest
example is moved to the very first batch so that an out-of-memory error, if any, happens
on step one rather than hours in.

``sortish_sampler`` (``Seq2SeqTrainingArguments``) goes one step further: the batches
cut from the sorted chunks are themselves shuffled, so batch lengths do not run from
long to short within each chunk (:class:`SortishSampler`).

Every pass re-seeds the sampler's generator with ``seed + epoch``, so an epoch's order
depends only on the data seed and the epoch (and plain shuffling gives the reference's
order). Every process of a distributed run builds the same order from the same seed; the
runtime deals whole batches of it to the processes (trainer-dist's sharded loaders), so
a batch of similar lengths stays one process's batch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import IterableDataset, RandomSampler, Sampler, SequentialSampler

from trainer_loop._dataloader_options import has_length, is_hf_dataset

__all__ = [
    "LengthGroupedSampler",
    "SeekableRandomSampler",
    "SeekableSequentialSampler",
    "SortishSampler",
    "build_eval_sampler",
    "build_train_sampler",
    "seeded_generator",
]

logger = logging.getLogger(__name__)

_MAX_MEGABATCH_MULT = 50
_SEED_RANGE = 2**64  # torch seeds are unsigned 64-bit: seed + epoch wraps around
_BATCHES_PER_MEGABATCH_DIVISOR = 4


def seeded_generator(seed: int) -> torch.Generator:
    """Return a fresh CPU ``torch.Generator`` seeded with ``seed``.

    Samplers own their generator so that the data order depends only on the data seed,
    not on how much randomness model initialisation or dropout consumed before.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {seed!r} ({type(seed).__name__}).")
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


class _SeekablePasses:
    """Passes seeded by epoch, any of which can start anywhere without producing the
    skipped part.

    Each pass (epoch) re-seeds ``generator`` with ``seed + epoch`` (``seed`` is the
    generator's seed when the sampler was built), as accelerate's
    ``SeedableRandomSampler`` does for the reference's Trainer, so epoch ``e`` has the
    same order as there and depends on nothing but the seed and ``e``. The loop sets
    the epoch (:meth:`set_epoch`); a pass iterated to its end moves to the next one.

    A pass draws its whole order at once (one ``randperm``), so resuming inside it
    (:meth:`seek`) costs one permutation whatever the position. A checkpoint also
    stores the generator state at the pass's start and the pass's epoch
    (:meth:`sampler_state`), which a pass resumed in that same epoch restores:
    checkpoints of earlier releases, whose later epochs continued one generator, resume
    with their own order. A resumed run whose steps per epoch changed (another batch size
    or accumulation) may land in another epoch than the saved pass: it draws that epoch's
    own order instead, as the reference does.

    ``pass_order`` is the whole order of the pass being drawn, the skipped part
    included: a distributed runtime completes an epoch's uneven last step with samples
    from the start of the pass, which a resumed pass no longer yields (trainer-dist's
    sharded loaders read it).

    Without a generator, passes draw from torch's global generator and are not seeded.
    """

    generator: torch.Generator | None
    seed: int | None = None
    epoch = 0
    pass_order: list[int] | None = None
    _pass_start: torch.Tensor | None = None
    _pass_epoch: int | None = None
    _pending_state: torch.Tensor | None = None
    _skip = 0

    def _remember_seed(self) -> None:
        """Keep the generator's seed: every pass re-seeds the generator from it."""
        self.seed = self.generator.initial_seed() if self.generator is not None else None

    def _draw(self) -> list[int]:
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass the one of ``epoch`` (the loop calls this every epoch)."""
        self.epoch = epoch

    def _start_pass(self) -> None:
        generator = self.generator
        if generator is None:
            return
        if self._pending_state is not None:
            generator.set_state(self._pending_state)
            self._pending_state = None
        elif self.seed is not None:
            generator.manual_seed((self.seed + self.epoch) % _SEED_RANGE)
        self._pass_start = generator.get_state()
        self._pass_epoch = self.epoch

    def _next_pass(self) -> Iterator[int]:
        self._start_pass()
        indices = self._draw()
        self.pass_order = indices
        skip, self._skip = self._skip, 0
        yield from indices[skip:] if skip else indices
        self.epoch += 1

    def sampler_state(self) -> dict[str, torch.Tensor | int]:
        """The generator state at the start of the latest pass and that pass's epoch
        (empty without a generator)."""
        if self.generator is None:
            return {}
        if self._pass_start is None:  # no pass drawn yet: the next one starts here
            return {"pass_start": self.generator.get_state(), "pass_epoch": self.epoch}
        return {"pass_start": self._pass_start, "pass_epoch": self._pass_epoch}

    def seek(
        self,
        *,
        skip: int = 0,
        state: Mapping[str, Any] | None = None,
        mid_pass: bool = False,
        passes_done: int | None = None,
    ) -> None:
        """Make the next pass continue where a stopped run left off.

        Args:
            skip: Samples of the next pass to leave out (already trained on).
            state: What :meth:`sampler_state` returned when the checkpoint was saved.
                With ``mid_pass``, the next pass repeats the pass that was running, if
                that pass was of the next pass's epoch (a state without an epoch, from
                an earlier release, is taken to be).
            mid_pass: Whether the checkpoint was taken inside a pass (else the next
                pass is drawn for its epoch, as in an uninterrupted run).
            passes_done: Whole passes before the next one: its epoch (unchanged when
                None).
        """
        if skip < 0:
            raise ValueError(f"skip must be >= 0 samples, got {skip}.")
        self._skip = skip
        if passes_done is not None:
            self.set_epoch(passes_done)
        self._pending_state = None
        if self.generator is None or not mid_pass or not state or "pass_start" not in state:
            return
        saved_epoch = state.get("pass_epoch")
        if saved_epoch is None or int(saved_epoch) == self.epoch:
            self._pending_state = state["pass_start"].clone()


class SeekableRandomSampler(_SeekablePasses, RandomSampler):
    """A ``RandomSampler`` (without replacement) whose position a checkpoint restores.

    Each pass is one ``torch.randperm(len(data_source), generator=generator)`` with the
    generator re-seeded ``seed + epoch``: the reference's order, epoch by epoch. See
    :meth:`seek` for resuming inside a pass without iterating over what came before.
    """

    def __init__(self, data_source: Any, generator: torch.Generator | None = None) -> None:
        super().__init__(data_source, generator=generator)
        self._remember_seed()

    def _draw(self) -> list[int]:
        return torch.randperm(len(self.data_source), generator=self.generator).tolist()

    def __iter__(self) -> Iterator[int]:
        return self._next_pass()


class SeekableSequentialSampler(_SeekablePasses, SequentialSampler):
    """The dataset's own order, every pass (``train_sampling_strategy="sequential"``).

    A ``SequentialSampler`` that a resumed run can start mid-pass (:meth:`seek`) without
    drawing the skipped indices; having no generator, it saves no state.
    """

    def __init__(self, data_source: Any) -> None:
        super().__init__(data_source)
        self.generator = None

    def _draw(self) -> list[int]:
        return list(range(len(self.data_source)))

    def __iter__(self) -> Iterator[int]:
        return self._next_pass()


class LengthGroupedSampler(_SeekablePasses, Sampler[int]):
    """Random order in which batches hold examples of similar length.

    Each pass draws a permutation from ``generator``, cuts it into megabatches of
    ``mult * batch_size`` indices where ``mult = clamp(n // (4 * batch_size), 1, 50)``,
    sorts every megabatch by decreasing length, and swaps the overall longest example
    into position 0. Every index appears exactly once per pass, and the same seed and
    epoch give the same order (the reference draws this sampler's passes from torch's
    global generator instead, so its order there depends on everything else the run
    drew; ours depends on the data seed only).

    Args:
        batch_size: Examples per optimisation step (the reference passes the per-device
            batch size times gradient accumulation steps).
        dataset: Used to measure lengths when ``lengths`` is not given: the
            ``length_column_name`` column of a ``datasets.Dataset`` if present, else
            ``len(dataset[i][model_input_name])`` for every item (slow: one full read).
        lengths: Length of every example; takes precedence over ``dataset``.
        model_input_name: Key of the sequence to measure in each item.
        generator: Source of randomness; the global torch generator when None.
        length_column_name: Column of precomputed lengths in a ``datasets.Dataset``.

    Raises:
        ValueError: Neither ``dataset`` nor ``lengths`` is given, ``batch_size`` is not
            positive, or items cannot be measured.
    """

    def __init__(
        self,
        batch_size: int,
        dataset: Any = None,
        lengths: Sequence[int] | torch.Tensor | None = None,
        model_input_name: str | None = "input_ids",
        generator: torch.Generator | None = None,
        *,
        length_column_name: str = "length",
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
        if dataset is None and lengths is None:
            raise ValueError(
                "LengthGroupedSampler needs the example lengths: pass lengths=[...] or a "
                "dataset to measure."
            )
        self.batch_size = batch_size
        self.model_input_name = model_input_name or "input_ids"
        self.generator = generator
        self._remember_seed()
        if lengths is None:
            lengths = _measure_lengths(dataset, self.model_input_name, length_column_name)
        self.lengths = _as_int_list(lengths)

    def __len__(self) -> int:
        return len(self.lengths)

    def _draw(self) -> list[int]:
        return length_grouped_indices(self.lengths, self.batch_size, self.generator)

    def __iter__(self) -> Iterator[int]:
        return self._next_pass()


def length_grouped_indices(
    lengths: Sequence[int], batch_size: int, generator: torch.Generator | None = None
) -> list[int]:
    """Compute one pass of :class:`LengthGroupedSampler` (see there for the contract)."""
    count = len(lengths)
    if count == 0:
        return []
    indices, megabatch_size = _shuffled_then_sorted_in_chunks(lengths, batch_size, generator)
    # Megabatch heads are their maxima; move the global maximum to the front.
    heads = range(0, count, megabatch_size)
    longest = max(heads, key=lambda head: lengths[indices[head]])
    indices[0], indices[longest] = indices[longest], indices[0]
    return indices


def _shuffled_then_sorted_in_chunks(
    lengths: Sequence[int], batch_size: int, generator: torch.Generator | None
) -> tuple[list[int], int]:
    """A random permutation, sorted by decreasing length within chunks of whole batches.

    The chunk holds ``clamp(n // (4 * batch_size), 1, 50)`` batches, the reference's
    megabatch; returns the order and the chunk size. Both length samplers start here.
    """
    count = len(lengths)
    mult = count // (_BATCHES_PER_MEGABATCH_DIVISOR * batch_size)
    chunk_size = max(1, min(mult, _MAX_MEGABATCH_MULT)) * batch_size
    order = torch.randperm(count, generator=generator).tolist()
    for start in range(0, count, chunk_size):
        order[start : start + chunk_size] = sorted(
            order[start : start + chunk_size], key=lengths.__getitem__, reverse=True
        )
    return order, chunk_size


class SortishSampler(_SeekablePasses, Sampler[int]):
    """Random order of whole batches, each batch holding examples of similar length.

    One pass: a permutation drawn from ``generator`` is cut into chunks of
    ``mult * batch_size`` indices (``mult = clamp(n // (4 * batch_size), 1, 50)``), each
    chunk is sorted by decreasing length and cut into batches of ``batch_size``; the
    batch holding the longest example comes first (an out-of-memory error shows on step
    one), the other full batches follow in an order drawn from ``generator``, and a
    short batch, if ``n`` is not a multiple of ``batch_size``, comes last (so that the
    loader's batches stay aligned with these). Every index appears once per pass, the
    same seed and epoch give the same pass, and successive passes differ.

    Unlike :class:`LengthGroupedSampler`, whose batches run from long to short inside
    each megabatch, the lengths of successive batches here are unrelated: the loss curve
    shows no saw-tooth, and with several processes the batches of one global step are
    not the neighbours in length order.

    Args:
        batch_size: Examples per batch of the loader that draws from this sampler.
        lengths: Length of every example (see :func:`dataset_lengths`).
        generator: Source of randomness; the global torch generator when None.

    Raises:
        ValueError: ``batch_size`` is not a positive int, or ``lengths`` are not ints.
    """

    def __init__(
        self,
        batch_size: int,
        lengths: Sequence[int] | torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
        self.batch_size = batch_size
        self.lengths = _as_int_list(lengths)
        self.generator = generator
        self._remember_seed()

    def __len__(self) -> int:
        return len(self.lengths)

    def _draw(self) -> list[int]:
        return sortish_indices(self.lengths, self.batch_size, self.generator)

    def __iter__(self) -> Iterator[int]:
        return self._next_pass()


def sortish_indices(
    lengths: Sequence[int], batch_size: int, generator: torch.Generator | None = None
) -> list[int]:
    """Compute one pass of :class:`SortishSampler` (see there for the contract)."""
    count = len(lengths)
    if count == 0:
        return []
    order, _ = _shuffled_then_sorted_in_chunks(lengths, batch_size, generator)
    batches = [order[start : start + batch_size] for start in range(0, count, batch_size)]
    short = batches.pop() if len(batches[-1]) < batch_size else None
    if not batches:  # fewer examples than one batch
        return order
    # Each batch is sorted, so its first index is its longest.
    longest = max(range(len(batches)), key=lambda b: lengths[batches[b][0]])
    first = batches.pop(longest)
    shuffled = [batches[b] for b in torch.randperm(len(batches), generator=generator).tolist()]
    if short is not None:
        shuffled.append(short)
    return [index for batch in (first, *shuffled) for index in batch]


def dataset_lengths(
    dataset: Any, model_input_name: str = "input_ids", length_column_name: str = "length"
) -> list[int] | None:
    """The length of every example of ``dataset``, or None when it cannot tell.

    From a ``datasets.Dataset`` column named ``length_column_name`` when there is one,
    else by measuring ``len(example[model_input_name])`` in every example (one read of
    the whole dataset). None for streams and for examples without that key.
    """
    if dataset is None or isinstance(dataset, IterableDataset) or not has_length(dataset):
        return None
    column = _length_column(dataset, length_column_name)
    if column is not None:
        return column
    if len(dataset) == 0:
        return []
    first = dataset[0]
    if not isinstance(first, Mapping) or model_input_name not in first:
        return None
    try:
        return _measure_lengths(dataset, model_input_name, length_column_name)
    except (ValueError, TypeError):  # a later example lacks the key or has no length
        return None


def _measure_lengths(dataset: Any, model_input_name: str, length_column_name: str) -> list[int]:
    column = _length_column(dataset, length_column_name)
    if column is not None:
        return column
    logger.warning(
        "Sampling by length: measuring '%s' in every item of the dataset, which reads the "
        "whole dataset once. Precompute the lengths in a '%s' column (datasets.Dataset) or "
        "pass lengths= to the sampler to skip this.",
        model_input_name,
        length_column_name,
    )
    lengths = []
    for index in range(len(dataset)):
        item = dataset[index]
        if not isinstance(item, Mapping) or model_input_name not in item:
            raise ValueError(
                f"Cannot measure item {index} of {type(dataset).__name__}: expected a dict "
                f"with a '{model_input_name}' key, got {type(item).__name__}"
                f"{' with keys ' + str(list(item)) if isinstance(item, Mapping) else ''}. "
                "Pass lengths= or set model_input_name to the key of the sequence."
            )
        lengths.append(len(item[model_input_name]))
    return lengths


def _length_column(dataset: Any, length_column_name: str) -> list[int] | None:
    """The precomputed lengths of a ``datasets.Dataset``, or None when there are none."""
    if not is_hf_dataset(dataset):
        return None
    if length_column_name not in dataset.column_names:
        return None
    return list(dataset[length_column_name])


def _as_int_list(lengths: Sequence[int] | torch.Tensor) -> list[int]:
    if isinstance(lengths, torch.Tensor):
        return lengths.tolist()
    try:
        return [int(length) for length in lengths]
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"lengths must be a sequence of ints (one per example), got "
            f"{type(lengths).__name__}: {error}"
        ) from error


def build_train_sampler(
    dataset: Any,
    args: Any,
    *,
    train_batch_size: int,
    seed: int | None = None,
    model_input_name: str = "input_ids",
) -> Sampler[int] | None:
    """Choose the training sampler the arguments ask for.

    Args:
        dataset: The training dataset.
        args: ``TrainingArguments`` (reads ``data_seed``, ``seed``, ``group_by_length``,
            ``train_sampling_strategy``, ``length_column_name``).
        train_batch_size: The per-device batch size. Length grouping groups the examples
            of one optimizer step: this times ``args.gradient_accumulation_steps``.
        seed: Fallback seed when ``args.data_seed`` is None; defaults to ``args.seed``.
        model_input_name: Key measured for length grouping when the dataset has no
            length column (the tokenizer's first model input name).

    Returns:
        None for streams (IterableDataset or no ``len``), which the DataLoader iterates
        in their own order; a :class:`SeekableSequentialSampler` when
        ``train_sampling_strategy="sequential"`` (transformers 5; it wins over
        ``sortish_sampler``, which shuffles); a :class:`SortishSampler` when ``sortish_sampler``
        (``Seq2SeqTrainingArguments``) is set and the examples' lengths can be read (else
        a warning and the next choice); a :class:`LengthGroupedSampler` when
        ``group_by_length``; else a :class:`SeekableRandomSampler`. All draw from a
        generator seeded with ``data_seed`` if set, else ``seed``, so the order is
        reproducible and the same on every process.
    """
    if dataset is None or isinstance(dataset, IterableDataset) or not has_length(dataset):
        if dataset is not None and getattr(args, "group_by_length", False):
            logger.warning(
                "group_by_length=True is ignored: the training set is a stream (no length), "
                "so its examples come in their own order."
            )
        return None
    if getattr(args, "train_sampling_strategy", "random") == "sequential":
        return SeekableSequentialSampler(dataset)
    data_seed = getattr(args, "data_seed", None)
    if data_seed is None:
        data_seed = seed if seed is not None else getattr(args, "seed", 42)
    generator = seeded_generator(data_seed)
    length_column_name = getattr(args, "length_column_name", None) or "length"
    if getattr(args, "sortish_sampler", False):
        lengths = dataset_lengths(dataset, model_input_name, length_column_name)
        if lengths is not None:
            return SortishSampler(train_batch_size, lengths, generator=generator)
        logger.warning(
            "sortish_sampler=True, but the lengths of the training examples cannot be read "
            "(no '%s' column, and the examples are not dicts holding '%s'): sampling in "
            "random order instead.",
            length_column_name,
            model_input_name,
        )
    if not getattr(args, "group_by_length", False):
        return SeekableRandomSampler(dataset, generator=generator)
    return LengthGroupedSampler(
        train_batch_size * max(1, getattr(args, "gradient_accumulation_steps", 1)),
        dataset=dataset,
        model_input_name=model_input_name,
        generator=generator,
        length_column_name=length_column_name,
    )


def build_eval_sampler(dataset: Any) -> Sampler[int] | None:
    """Evaluation keeps the dataset's order: a ``SequentialSampler``, None for streams."""
    if dataset is None or isinstance(dataset, IterableDataset) or not has_length(dataset):
        return None
    return SequentialSampler(dataset)
