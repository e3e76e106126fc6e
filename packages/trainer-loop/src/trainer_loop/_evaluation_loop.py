"""Evaluation and prediction: run the model without gradients and collect its outputs.

Per batch, ``prediction_step`` gives ``(loss, logits, labels)``. Labels, logits and
inputs are padded to the longest sequence among processes
(``runtime.pad_across_processes``, dimension 1), logits go through
``preprocess_logits_for_metrics``, and all are gathered (``runtime.gather``); both
collectives are the identity with one process. Gathered outputs are written into
preallocated host buffers (:class:`trainer_loop._nested.NestedAccumulator`): on the CPU
at once, on an accelerator every ``eval_accumulation_steps`` batches or at the end.
Sequence lengths that differ between batches are padded with -100 (predictions with
the value of the trainer's ``_prediction_padding_index()`` when it has one: the
``Seq2SeqTrainer`` pads generated ids with the pad token). With several
processes the result is cut to the dataset's length, so the samples repeated to make
the last batches even never count twice.

Speed: a small model predicts a batch in about a hundred microseconds, so what can be
decided once per loop is (:class:`_EvalRun`): with one process and no batch metrics the
step skips collectives and metric calls and writes straight into the buffers; without
a ``prediction_step`` override the built-in step is called without the facade; and
:class:`~trainer_loop._prediction_step.PredictionStep` fixes the ignored keys, the label
reading and the autocast context for the whole loop. Per batch there remain the
forward, two list appends into the buffers and the ``on_prediction_step`` event.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from trainer_core import EvalLoopOutput, EvalPrediction, PredictionOutput
from trainer_dist import holds_tensor
from trainer_loop._nested import (
    PADDING_INDEX,
    NestedAccumulator,
    detach_to_cpu,
    first_dim,
    map_nested,
    rebuild,
    to_numpy,
)
from trainer_loop._optimizer_methods import set_optimizer_mode
from trainer_loop._prediction_step import PredictionStep, full_eval_dtype, overrides
from trainer_loop._speed_metrics import speed_metrics

if TYPE_CHECKING:
    from trainer_loop._trainer import Trainer

logger = logging.getLogger(__name__)


class _Outputs:
    """One kind of output (losses, predictions, labels or inputs) over one evaluation run.

    Args:
        capacity: Rows expected over the run (the dataset length), or None if unknown.
        limit: Rows to keep at most (rows past it are samples repeated by a
            distributed sampler), or None to keep everything.
        concat: False keeps one array per batch (``eval_do_concat_batches=False``).
        hold_on_device: Keep batches on the device until :meth:`flush` (no per-step
            device-to-host copy); False writes them into the host buffer at once.
        padding_index: The value that pads sequences that differ between batches.
    """

    def __init__(
        self,
        capacity: int | None,
        limit: int | None,
        concat: bool,
        hold_on_device: bool,
        padding_index: int = PADDING_INDEX,
    ) -> None:
        self.concat = concat
        self._pending: list[Any] = []
        self._joined = NestedAccumulator(capacity, padding_index, limit) if concat else None
        self._batches: list[Any] = []
        # Where a batch goes is decided here, once: add() runs per batch and output.
        self.sink: Callable[[Any], None]  # add() for a value known not to be None
        if hold_on_device:
            self.sink = self._pending.append
        elif self._joined is not None:
            self.sink = self._joined.add
        else:
            self.sink = self._store

    def add(self, value: Any) -> None:
        if value is not None:
            self.sink(value)

    def _store(self, value: Any) -> None:
        if self._joined is not None:
            self._joined.add(value)
        else:
            self._batches.append(to_numpy(value))

    def flush(self) -> None:
        """Move the batches held on the device into the host buffer."""
        for part in self._pending:
            self._store(detach_to_cpu(part))
        self._pending.clear()

    def result(self) -> Any:
        """Everything collected as numpy arrays (nesting kept), or None if nothing was."""
        self.flush()
        if self._joined is None:
            return self._batches or None
        return to_numpy(self._joined.result())


class _Losses:
    """Per-sample losses over a run (each batch's mean loss repeated for its rows).

    With one process the batch losses stay scalars on the device and are expanded
    once at the end (no per-step tensor work); with several they are repeated and
    gathered per step, as every process must join the collective.
    """

    def __init__(self, runtime: Any, outputs: _Outputs) -> None:
        self._runtime = runtime
        self._distributed = runtime.num_processes > 1
        self._outputs = outputs
        self._parts: list[tuple[torch.Tensor, int]] = []
        self._all_scalars = True  # every loss in _parts is 0-d (the usual case)

    @staticmethod
    def per_sample(loss: torch.Tensor, rows: int) -> torch.Tensor:
        return loss.reshape(1).expand(rows) if loss.dim() == 0 else loss.reshape(-1)

    def add(self, loss: torch.Tensor | None, rows: int) -> None:
        if loss is None:
            return
        if self._distributed:
            self._outputs.add(self._runtime.gather(self.per_sample(loss, rows).contiguous()))
        else:
            self.add_local(loss, rows)

    def add_local(self, loss: torch.Tensor, rows: int) -> None:
        """Keep one process's batch loss (no collective), expanded in :meth:`result`."""
        if loss.ndim:
            self._all_scalars = False
        self._parts.append((loss, rows))

    def flush(self) -> None:
        self._outputs.flush()

    def result(self) -> Any:
        parts = self._parts
        if parts and not self._outputs.concat:  # one array per batch
            for loss, rows in parts:
                self._outputs.add(self.per_sample(loss, rows))
        elif parts and self._all_scalars:  # two ops for the whole run
            counts = torch.tensor([rows for _, rows in parts], device=parts[0][0].device)
            self._outputs.add(torch.stack([loss for loss, _ in parts]).repeat_interleave(counts))
        elif parts:
            self._outputs.add(torch.cat([self.per_sample(loss, rows) for loss, rows in parts]))
        parts.clear()
        self._all_scalars = True
        return self._outputs.result()


def _gather_nested(value: Any, runtime: Any) -> Any:
    """``value`` gathered from every process: tensors with ``runtime.gather``; a list of
    other objects (one per sample: a ``prediction_step`` override's strings, say) with
    the runtime's ``gather_objects``, which also drops the padding of an uneven last
    step; containers walked into. Other values stay this process's."""
    if isinstance(value, torch.Tensor):
        return runtime.gather(value)
    if isinstance(value, Mapping):
        return rebuild(value, {key: _gather_nested(item, runtime) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        gather_objects = getattr(runtime, "gather_objects", None)
        objects = isinstance(value, list) and not holds_tensor(value)  # same on every rank
        if objects and callable(gather_objects):
            return gather_objects(value)
        return rebuild(value, [_gather_nested(item, runtime) for item in value])
    return value


def _rows(batch: Any) -> int:
    """Rows in ``batch``: those of its first tensor (1 when it holds none)."""
    if type(batch) is dict:  # the common batch: a dict whose first value is a tensor
        for value in batch.values():
            if isinstance(value, torch.Tensor):
                return value.shape[0] if value.ndim else 1
            break
    try:
        return first_dim(batch)
    except TypeError:
        return 1


def _expected_samples(dataloader: Any) -> int | None:
    """The dataset's length, when the dataloader has a dataset with one."""
    try:
        return len(dataloader.dataset)
    except (AttributeError, TypeError, NotImplementedError):
        return None


def _plain_numbers(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Metrics with numpy / tensor scalars turned into Python numbers (JSON-friendly)."""

    def plain(value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            return value.item()
        if isinstance(value, (np.ndarray, np.generic)) and value.size == 1:
            return value.item()
        return value

    return {key: map_nested(plain, value) for key, value in metrics.items()}


def _metrics_dict(returned: Any) -> dict[str, Any]:
    """What ``compute_metrics`` returned, which must be a mapping of name to value."""
    if isinstance(returned, Mapping):
        return dict(returned)
    raise TypeError(
        f"compute_metrics returned {type(returned).__name__} ({returned!r:.80}); it must "
        "return a dict of metric names to numbers, e.g. {'accuracy': 0.91}."
    )


def _will_save(trainer: Trainer) -> bool:
    """Whether the running training writes checkpoints (see :func:`_check_savable`)."""
    strategy = str(getattr(trainer.args.save_strategy, "value", trainer.args.save_strategy))
    if strategy == "steps":
        state = trainer.state
        return bool(state.save_steps) and state.save_steps <= state.max_steps
    return strategy != "no"


def _check_savable(metrics: Mapping[str, Any]) -> None:
    """Refuse, at the evaluation, metrics the next checkpoint could not store.

    Evaluations during training are written into ``trainer_state.json`` with every
    checkpoint, so a value JSON cannot hold (an array or tensor of several numbers, an
    object) would fail the first save after it (the reference leaves a half-written
    checkpoint folder then). Standalone ``evaluate()`` returns such values untouched, as
    does training that saves no checkpoint.
    """
    bad = [key for key, value in metrics.items() if not _json_friendly(value)]
    if bad:
        shown = ", ".join(f"{key!r} ({type(metrics[key]).__name__})" for key in bad)
        raise TypeError(
            f"compute_metrics returned values that the checkpoint's trainer_state.json "
            f"cannot hold: {shown}. Return numbers (or strings): split an array into one "
            "metric per entry (e.g. f1_class_0, f1_class_1), or convert it with .tolist()."
        )


def _json_friendly(value: Any) -> bool:
    if value is None or isinstance(value, (str, int, float, bool)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_json_friendly(item) for item in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _json_friendly(v) for k, v in value.items())
    return False


class _EvalRun:
    """The state of one ``evaluation_loop`` call: collected outputs and batch metrics.

    What does not change between batches is decided here, once: how a batch is
    predicted (the built-in :class:`PredictionStep` called directly, or the user's
    ``prediction_step`` override), whether collectives run (several processes), where
    outputs are written, and which of inputs, losses and batch metrics are wanted.
    """

    def __init__(
        self,
        trainer: Trainer,
        dataloader: Any,
        description: str,
        loss_only: bool,
        ignore_keys: list[str] | None = None,
    ) -> None:
        self.trainer, self.args, self.runtime = trainer, trainer.args, trainer.runtime
        self.loss_only = loss_only
        self.expected = _expected_samples(dataloader)
        args = self.args
        self.distributed = self.runtime.num_processes > 1
        limit = self.expected if self.distributed else None
        concat = getattr(args, "eval_do_concat_batches", True)
        hold = self.runtime.device.type != "cpu"
        self.losses = _Losses(self.runtime, _Outputs(self.expected, limit, concat, hold))
        self.labels, self.inputs = (_Outputs(self.expected, limit, concat, hold) for _ in range(2))
        # A trainer may pad its predictions otherwise (Seq2SeqTrainer: generated ids).
        padding = getattr(trainer, "_prediction_padding_index", None)
        self.pred_padding = padding() if callable(padding) else PADDING_INDEX
        self.preds = _Outputs(self.expected, limit, concat, hold, self.pred_padding)
        includes = list(getattr(args, "include_for_metrics", None) or [])
        self.want_inputs = "inputs" in includes or bool(args.include_inputs_for_metrics)
        self.want_losses = "loss" in includes
        self.batch_metrics = bool(getattr(args, "batch_eval_metrics", False))
        self.keep_outputs = not self.batch_metrics or description == "Prediction"
        self.description = description
        self.metrics: dict[str, Any] = {}
        self._pending_metrics: tuple[Any, Any, Any, Any] | None = None
        self.observed = 0
        self.steps = 0
        self.flush_every = args.eval_accumulation_steps
        self.prediction_step = PredictionStep(trainer, ignore_keys)
        self._predict = self._predictor(ignore_keys)
        self._preprocess = trainer.preprocess_logits_for_metrics
        self._on_step = trainer.callback_handler.on_prediction_step
        if not self.distributed and not self.batch_metrics:
            self.step = self._local_step()  # type: ignore[method-assign]  # chosen once per run

    def _predictor(self, ignore_keys: list[str] | None) -> Callable[[Any, Any], tuple[Any, ...]]:
        """``(model, batch) -> (loss, logits, labels)``: the Trainer's ``prediction_step``
        when a subclass overrides it, else the built-in step without the facade call."""
        trainer, loss_only = self.trainer, self.loss_only
        if not overrides(trainer, ("prediction_step",)):
            return self.prediction_step.for_loop(loss_only)
        return lambda model, batch: trainer.prediction_step(model, batch, loss_only, ignore_keys)

    def _padded(self, value: Any, padding_index: int = PADDING_INDEX) -> Any:
        if not self.distributed:  # the collectives are the identity on one process
            return value
        pad = self.runtime.pad_across_processes
        return map_nested(
            lambda t: (
                pad(t, dim=1, pad_index=padding_index)
                if isinstance(t, torch.Tensor) and t.dim() > 1
                else t
            ),
            value,
        )

    def _gathered(self, value: Any) -> Any:
        if not self.distributed:
            return value
        return _gather_nested(value, self.runtime)

    def _collected(self, logits: Any, labels: Any, inputs: Any) -> tuple[Any, Any, Any]:
        """Pad and gather one step's outputs across processes (logits preprocessed between,
        on this process's rows, as the reference does)."""
        labels = self._padded(labels)
        inputs = self._gathered(self._padded(inputs))
        if logits is not None:
            logits = self._padded(logits, self.pred_padding)
            if self._preprocess is not None:
                logits = self._preprocess(logits, labels)
            logits = self._gathered(logits)
        return logits, self._gathered(labels), inputs

    def step(self, model: Any, batch: Any) -> None:
        """Predict one batch, collect its outputs and run ``on_prediction_step``.

        With batch metrics, the batch's gathered outputs wait for
        :meth:`settle_batch_metrics`: whether it was the last batch is known only once
        the loader has been asked for the next one, and the batch must be gathered
        before that (a distributed loader drops the padding of its uneven last step
        while that step is the one handed out).
        """
        trainer = self.trainer
        rows = _rows(batch)
        self.observed += rows
        inputs = trainer._main_input(batch) if self.want_inputs else None
        loss, logits, labels = self._predict(model, batch)
        if loss is not None and loss.requires_grad:  # an override may not detach
            loss = loss.detach()
        self.losses.add(loss, rows)
        if self.distributed:
            logits, labels, inputs = self._collected(logits, labels, inputs)
        elif logits is not None and self._preprocess is not None:
            logits = self._preprocess(logits, labels)
        if self.keep_outputs:
            self.preds.add(logits)
            self.labels.add(labels)
            self.inputs.add(inputs)
        if self.batch_metrics:
            losses = _Losses.per_sample(loss, rows) if loss is not None else None
            # The reference hands batch metrics the whole batch, not only its main input.
            whole = batch if self.want_inputs else None
            self._pending_metrics = (logits, labels, whole, self._gathered(losses))
        trainer.control = self._on_step(self.args, trainer.state, trainer.control)
        self.steps += 1
        every = self.flush_every
        if every and self.steps % every == 0:
            self._flush_all()

    def _local_step(self) -> Callable[..., None]:
        """:meth:`step` for one process without batch metrics: no collectives, no
        per-batch metric call; everything it calls is looked up once, here."""
        trainer, args, predict = self.trainer, self.args, self._predict
        add_loss, preprocess, on_step = self.losses.add_local, self._preprocess, self._on_step
        add_pred, add_label, add_input = self.preds.sink, self.labels.sink, self.inputs.sink
        main_input = trainer._main_input if self.want_inputs else None
        every = self.flush_every or 0

        def local_step(model: Any, batch: Any) -> None:
            rows = _rows(batch)
            self.observed += rows
            inputs = main_input(batch) if main_input is not None else None
            loss, logits, labels = predict(model, batch)
            if loss is not None:
                add_loss(loss.detach() if loss.requires_grad else loss, rows)
            if logits is not None:
                add_pred(logits if preprocess is None else preprocess(logits, labels))
            if labels is not None:
                add_label(labels)
            if inputs is not None:
                add_input(inputs)
            trainer.control = on_step(args, trainer.state, trainer.control)
            self.steps += 1
            if every and self.steps % every == 0:
                self._flush_all()

        return local_step

    def _flush_all(self) -> None:
        for outputs in (self.losses, self.preds, self.labels, self.inputs):
            outputs.flush()

    def settle_batch_metrics(self, *, is_last: bool) -> None:
        """Hand the batch :meth:`step` collected last to ``compute_metrics``, telling it
        whether that was the last batch (``compute_result``); nothing if none waits."""
        pending, self._pending_metrics = self._pending_metrics, None
        if pending is not None:
            self._update_batch_metrics(*pending, is_last)

    def _update_batch_metrics(
        self, logits: Any, labels: Any, inputs: Any, losses: Any, is_last: bool
    ) -> None:
        compute = self.trainer.compute_metrics
        if compute is None or logits is None or labels is None:
            return
        prediction = EvalPrediction(
            predictions=logits,
            label_ids=labels,
            inputs=inputs if self.want_inputs else None,
            losses=losses if self.want_losses else None,
        )
        returned = compute(prediction, compute_result=is_last)  # type: ignore[call-arg]  # batch mode
        # Before the last batch a function may only accumulate (and return None).
        self.metrics = _metrics_dict(returned) if is_last else {}

    def _note_missing_labels(self) -> None:
        """Warn (once per Trainer) that an evaluation skipped ``compute_metrics`` for want
        of labels: the reference skips it silently, and a misnamed label key then shows
        only as metrics that never appear. Prediction on unlabelled data is normal."""
        trainer = self.trainer
        if self.description == "Prediction" or trainer.__dict__.get("_warned_missing_labels"):
            return
        trainer._warned_missing_labels = True
        logger.warning(
            "compute_metrics was not called: no batch of the evaluation set held labels "
            "under label_names=%s, so there was nothing to compare the predictions with. "
            "Give the examples their labels under those keys, or set label_names to the "
            "keys that hold them.",
            list(trainer.label_names),
        )

    def finish(self, prefix: str, extra: dict[str, float]) -> EvalLoopOutput:
        trainer = self.trainer
        all_losses = self.losses.result()
        preds, labels, inputs = self.preds.result(), self.labels.result(), self.inputs.result()
        metrics = self.metrics
        compute = trainer.compute_metrics
        if (
            not self.batch_metrics
            and compute is not None
            and preds is not None
            and labels is not None
        ):
            prediction = EvalPrediction(
                predictions=preds,
                label_ids=labels,
                inputs=inputs if self.want_inputs else None,
                losses=all_losses if self.want_losses else None,
            )
            metrics = _metrics_dict(compute(prediction))
        elif compute is not None and preds is not None and labels is None:
            self._note_missing_labels()
        metrics = _plain_numbers(metrics)
        if trainer.is_in_train and _will_save(trainer):
            _check_savable(metrics)
        mean_loss = _mean_loss(all_losses, self.args.logging_nan_inf_filter)
        if mean_loss is not None:
            metrics[f"{prefix}_loss"] = mean_loss
        metrics.update((f"{prefix}_{k}", v) for k, v in extra.items())
        # Prefixed last, as the reference does: a "loss" from compute_metrics replaces the
        # mean loss (an "eval_loss" does not), and its keys follow the loop's own.
        for key in [k for k in metrics if not k.startswith(f"{prefix}_")]:
            metrics[f"{prefix}_{key}"] = metrics.pop(key)
        num_samples = self.expected
        if num_samples is None or (num_samples == 0 and self.observed > 0):
            num_samples = self.observed * self.runtime.num_processes
        return EvalLoopOutput(preds, labels, metrics, num_samples)


def _mean_loss(losses: Any, skip_non_finite: bool) -> float | None:
    """The mean per-sample loss, or None without losses.

    With ``logging_nan_inf_filter`` (the default) batches whose loss is NaN or infinite
    (say, every label masked) are left out, as they are from the training loss, unless
    no batch has a finite loss.
    """
    if losses is None or not len(losses):
        return None
    if isinstance(losses, list):  # eval_do_concat_batches=False: one array per batch
        losses = np.concatenate([np.asarray(part).reshape(-1) for part in losses])
    values = np.asarray(losses, dtype=np.float64)
    finite = np.isfinite(values)
    if skip_non_finite and finite.any():
        values = values[finite]
    return float(values.mean())


class EvaluationLoop:
    """``evaluate`` / ``predict`` / ``evaluation_loop`` / ``prediction_step`` for a Trainer."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.args = trainer.args

    # ------------------------------------------------------------ entry points
    def evaluate(
        self, eval_dataset: Any, ignore_keys: list[str] | None, prefix: str
    ) -> dict[str, float]:
        """Evaluate one dataset, or each of a dict of them with prefix ``<prefix>_<name>``."""
        trainer = self.trainer
        tracker = trainer._memory_tracker
        tracker.start("eval")
        try:
            dataset = eval_dataset if eval_dataset is not None else trainer.eval_dataset
            if isinstance(dataset, dict):
                metrics: dict[str, float] = {}
                for name, part in dataset.items():
                    # A name lets get_eval_dataloader (or an override) pick the dataset.
                    chosen = name if eval_dataset is None else part
                    metrics.update(self._evaluate_one(chosen, ignore_keys, f"{prefix}_{name}"))
            else:  # the dataset itself, also when it is the trainer's (transformers 5)
                metrics = self._evaluate_one(dataset, ignore_keys, prefix)
            tracker.stop_and_update_metrics("eval", metrics)
        finally:
            tracker.stop("eval")
        return metrics

    def _evaluate_one(
        self, dataset: Any, ignore_keys: list[str] | None, prefix: str
    ) -> dict[str, float]:
        trainer = self.trainer
        dataloader = trainer.get_eval_dataloader(dataset)
        start = time.time()
        loss_only = True if trainer.compute_metrics is None else None
        output = trainer.evaluation_loop(
            dataloader,
            description="Evaluation",
            prediction_loss_only=loss_only,
            ignore_keys=ignore_keys,
            metric_key_prefix=prefix,
        )
        output.metrics.update(self._speed(prefix, start, output, dataloader))
        trainer.log(output.metrics)
        trainer.control = trainer.callback_handler.on_evaluate(
            self.args, trainer.state, trainer.control, metrics=output.metrics
        )
        return output.metrics

    def predict(self, dataset: Any, ignore_keys: list[str] | None, prefix: str) -> PredictionOutput:
        """Predictions, labels and metrics over ``dataset``."""
        trainer = self.trainer
        tracker = trainer._memory_tracker
        tracker.start("test")
        try:
            dataloader = trainer.get_test_dataloader(dataset)
            start = time.time()
            output = trainer.evaluation_loop(
                dataloader,
                description="Prediction",
                prediction_loss_only=None,
                ignore_keys=ignore_keys,
                metric_key_prefix=prefix,
            )
            output.metrics.update(self._speed(prefix, start, output, dataloader))
            trainer.control = trainer.callback_handler.on_predict(
                self.args, trainer.state, trainer.control, metrics=output.metrics
            )
            tracker.stop_and_update_metrics("test", output.metrics)
        finally:
            tracker.stop("test")
        return PredictionOutput(output.predictions, output.label_ids, output.metrics)

    def _speed(
        self, prefix: str, start: float, output: EvalLoopOutput, dataloader: Any
    ) -> dict[str, float]:
        samples = output.num_samples
        # Tracing and preparation times are reported on their own, not counted against
        # throughput (as transformers 5, even in later loops that did not prepare).
        metrics = output.metrics or {}
        start += float(metrics.get(f"{prefix}_jit_compilation_time", 0.0))
        start += float(metrics.get(f"{prefix}_model_preparation_time", 0.0))
        # A prepared loader knows what a step of all processes takes (split_batches).
        per_step = getattr(dataloader, "total_batch_size", None) or (
            self.args.eval_batch_size * self.trainer.runtime.num_processes
        )
        # 0 samples is known (0 steps, a rate of 0.0), not unknown.
        steps = math.ceil(samples / per_step) if samples is not None and per_step else None
        return speed_metrics(prefix, start, num_samples=samples, num_steps=steps)

    # ------------------------------------------------------------------ the loop
    def run(
        self,
        dataloader: Any,
        description: str,
        prediction_loss_only: bool | None,
        ignore_keys: list[str] | None,
        prefix: str,
    ) -> EvalLoopOutput:
        """The loop shared by ``evaluate`` and ``predict``; see the module docstring."""
        args = self.args
        loss_only = (
            args.prediction_loss_only if prediction_loss_only is None else prediction_loss_only
        )
        model, jit_seconds = self.eval_model(dataloader)
        self.trainer.callback_handler.eval_dataloader = dataloader  # on_prediction_step, ...
        if args.past_index >= 0:
            self.trainer._past = None
        run = _EvalRun(self.trainer, dataloader, description, loss_only, ignore_keys)
        # The blank line sets the block apart from a training bar drawn above it.
        logger.info("\n***** Running %s *****", description)
        if run.expected is not None:
            logger.info("  Num examples = %d", run.expected)
        else:
            logger.info("  Num examples: Unknown")
        logger.info("  Batch size = %s", args.eval_batch_size)
        self._iterate(run, model, dataloader)
        self.trainer.__dict__.pop("_past", None)  # evaluation memories stay out of training
        extra = {"jit_compilation_time": jit_seconds} if jit_seconds is not None else {}
        preparation = getattr(self.trainer, "model_preparation_time", None)
        if preparation is not None:
            extra["model_preparation_time"] = preparation
        return run.finish(prefix, extra)

    def _iterate(self, run: _EvalRun, model: Any, dataloader: Any) -> None:
        """Run every batch through ``run``; the loop's step is exposed to an override of
        ``prediction_step`` that calls ``super()`` (see :meth:`prediction_step`)."""
        trainer = self.trainer
        previous = getattr(trainer, "_active_prediction_step", None)
        trainer._active_prediction_step = run.prediction_step
        step = run.step
        try:
            with torch.no_grad():
                if run.batch_metrics:
                    for batch in dataloader:
                        run.settle_batch_metrics(is_last=False)  # the one before this
                        step(model, batch)
                    run.settle_batch_metrics(is_last=True)
                else:
                    for batch in dataloader:
                        step(model, batch)
        finally:
            trainer._active_prediction_step = previous

    # ------------------------------------------------------------- the model
    def eval_model(self, dataloader: Any) -> tuple[Any, float | None]:
        """The model to evaluate, in eval mode, and the seconds spent tracing it (jit).

        Inside ``train`` it is the training wrapper. Otherwise the model is cast for
        ``fp16_full_eval`` / ``bf16_full_eval``, prepared by the runtime (device, data
        parallel, ``torch_compile``) and, with ``jit_mode_eval``, traced; the result is
        kept for the next evaluation of the same model.
        """
        trainer = self.trainer
        jit_seconds = None
        if trainer.is_in_train:
            model = trainer.model_wrapped
        else:
            cached = getattr(trainer, "_eval_model_cache", None)
            if cached is not None and cached[0] is trainer.model:
                model = cached[1]
            else:
                model, jit_seconds = self._prepare_eval_model(dataloader)
                trainer._eval_model_cache = (trainer.model, model)
        model.eval()
        set_optimizer_mode(trainer.optimizer, "eval")  # schedule-free optimizers
        return model, jit_seconds

    def _prepare_eval_model(self, dataloader: Any) -> tuple[Any, float | None]:
        trainer, args = self.trainer, self.args
        model = trainer.model
        dtype = full_eval_dtype(args)
        if dtype is not None:
            model = model.to(dtype=dtype)
        model = self._prepared(model)
        model.eval()
        if not args.jit_mode_eval:
            return model, None
        start = time.time()
        traced = self._traced(model, dataloader)
        return traced, (time.time() - start if traced is not model else None)

    def _prepared(self, model: Any) -> Any:
        """``runtime.prepare_model``, timed when it is the trainer's first preparation.

        As transformers 5 does, the seconds an evaluation or prediction before any
        training spent preparing the model are kept in ``trainer.model_preparation_time``
        and reported as ``<prefix>_model_preparation_time`` by every later loop of that
        trainer; a trainer that trained first never reports it. The evaluation cache
        (set here, or emptied by the training set-up) marks a trainer already prepared.
        """
        trainer = self.trainer
        first = not hasattr(trainer, "_eval_model_cache")
        start = time.time()
        model = trainer.runtime.prepare_model(model, training=False)
        if first:
            trainer.model_preparation_time = round(time.time() - start, 4)
        return model

    def _traced(self, model: Any, dataloader: Any) -> Any:
        """``model`` traced with TorchScript on the first batch, or itself if that fails."""
        example = next(iter(dataloader), None)
        if not isinstance(example, Mapping):
            logger.warning("jit_mode_eval: the batches are not dicts; evaluating untraced.")
            return model
        example = {k: v for k, v in self.trainer._prepare_inputs(example).items() if v is not None}
        try:
            with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
                # The user asked for TorchScript: torch's deprecation notice and the
                # tracer's remarks are summarised in the log rather than raised.
                warnings.simplefilter("always")
                traced = torch.jit.freeze(
                    torch.jit.trace(model, example_kwarg_inputs=example, strict=False)
                )
                traced(**example)  # the first calls optimise the frozen graph
        except (RuntimeError, TypeError, ValueError, NameError, IndexError) as error:
            logger.warning(
                "jit_mode_eval: tracing the model failed (%s); evaluating untraced.", error
            )
            return model
        remarks = {str(w.message) for w in caught if "deprecated" not in str(w.message)}
        if remarks:
            logger.warning("jit_mode_eval: the tracer noted: %s", " | ".join(sorted(remarks)))
        return traced

    # --------------------------------------------------------- prediction_step
    def prediction_step(
        self, model: Any, inputs: dict[str, Any], loss_only: bool, ignore_keys: list[str] | None
    ) -> tuple[torch.Tensor | None, Any, Any]:
        """``(loss, logits, labels)`` of one batch without gradients (see Trainer).

        Inside a loop (an override calling ``super().prediction_step``) the loop's
        :class:`PredictionStep` is reused; a direct call builds one.
        """
        trainer = self.trainer
        step = getattr(trainer, "_active_prediction_step", None)
        if step is None or not step.serves(trainer, ignore_keys):
            step = PredictionStep(trainer, ignore_keys)
        return step(model, inputs, loss_only)
