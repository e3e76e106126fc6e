"""Evaluation and prediction: run the model without gradients and collect its outputs.

Per batch, ``prediction_step`` gives ``(loss, logits, labels)``. Labels, logits and
inputs are padded to the longest sequence among processes
(``runtime.pad_across_processes``, dimension 1), logits go through
``preprocess_logits_for_metrics``, and all are gathered (``runtime.gather``); both
collectives are the identity with one process. Gathered outputs are written into
preallocated host buffers (:class:`trainer_loop._nested.NestedAccumulator`): on the CPU
at once, on an accelerator every ``eval_accumulation_steps`` batches or at the end.
Sequence lengths that differ between batches are padded with -100. With several
processes the result is cut to the dataset's length, so the samples repeated to make
the last batches even never count twice.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from trainer_core import EvalLoopOutput, EvalPrediction, PredictionOutput
from trainer_loop._nested import (
    NestedAccumulator,
    detach_to_cpu,
    first_dim,
    map_nested,
    to_numpy,
)
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
    """

    def __init__(
        self, capacity: int | None, limit: int | None, concat: bool, hold_on_device: bool
    ) -> None:
        self._pending: list[Any] = []
        self._hold = hold_on_device
        self._joined = NestedAccumulator(capacity, limit=limit) if concat else None
        self._batches: list[Any] = []

    def add(self, value: Any) -> None:
        if value is None:
            return
        if self._hold:
            self._pending.append(value)
        elif self._joined is not None:
            self._joined.add(value)
        else:
            self._store(value)

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

    @staticmethod
    def per_sample(loss: torch.Tensor, rows: int) -> torch.Tensor:
        return loss.reshape(1).expand(rows) if loss.dim() == 0 else loss.reshape(-1)

    def add(self, loss: torch.Tensor | None, rows: int) -> None:
        if loss is None:
            return
        if self._distributed:
            self._outputs.add(self._runtime.gather(self.per_sample(loss, rows).contiguous()))
        else:
            self._parts.append((loss, rows))

    def flush(self) -> None:
        self._outputs.flush()

    def result(self) -> Any:
        parts = self._parts
        if parts and all(loss.dim() == 0 for loss, _ in parts):  # two ops for the whole run
            counts = torch.tensor([rows for _, rows in parts], device=parts[0][0].device)
            self._outputs.add(torch.stack([loss for loss, _ in parts]).repeat_interleave(counts))
        elif parts:
            self._outputs.add(torch.cat([self.per_sample(loss, rows) for loss, rows in parts]))
        parts.clear()
        return self._outputs.result()


def _with_last_flag(batches: Iterable[Any]) -> Iterator[tuple[Any, bool]]:
    """Yield ``(batch, is_last)``, reading one batch ahead to know which is the last."""
    iterator = iter(batches)
    try:
        current = next(iterator)
    except StopIteration:
        return
    for following in iterator:
        yield current, False
        current = following
    yield current, True


def _rows(batch: Any) -> int:
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


class _EvalRun:
    """The state of one ``evaluation_loop`` call: collected outputs and batch metrics."""

    def __init__(
        self, trainer: Trainer, dataloader: Any, description: str, loss_only: bool
    ) -> None:
        self.trainer, self.args, self.runtime = trainer, trainer.args, trainer.runtime
        self.loss_only = loss_only
        self.expected = _expected_samples(dataloader)
        args = self.args
        limit = self.expected if self.runtime.num_processes > 1 else None
        concat = getattr(args, "eval_do_concat_batches", True)
        hold = self.runtime.device.type != "cpu"
        self.losses = _Losses(self.runtime, _Outputs(self.expected, limit, True, hold))
        self.distributed = self.runtime.num_processes > 1
        self.preds, self.labels, self.inputs = (
            _Outputs(self.expected, limit, concat, hold) for _ in range(3)
        )
        includes = list(getattr(args, "include_for_metrics", None) or [])
        self.want_inputs = "inputs" in includes or bool(args.include_inputs_for_metrics)
        self.want_losses = "loss" in includes
        self.batch_metrics = bool(getattr(args, "batch_eval_metrics", False))
        self.keep_outputs = not self.batch_metrics or description == "Prediction"
        self.metrics: dict[str, Any] = {}
        self.observed = 0
        self.steps = 0
        self.flush_every = args.eval_accumulation_steps

    def _padded(self, value: Any) -> Any:
        if not self.distributed:  # the collectives are the identity on one process
            return value
        pad = self.runtime.pad_across_processes
        return map_nested(
            lambda t: (
                pad(t, dim=1, pad_index=-100) if isinstance(t, torch.Tensor) and t.dim() > 1 else t
            ),
            value,
        )

    def _gathered(self, value: Any) -> Any:
        if not self.distributed:
            return value
        gather = self.runtime.gather
        return map_nested(lambda t: gather(t) if isinstance(t, torch.Tensor) else t, value)

    def _collected(self, logits: Any, labels: Any, inputs: Any) -> tuple[Any, Any, Any]:
        """Pad and gather one step's outputs across processes (logits preprocessed between,
        on this process's rows, as the reference does)."""
        trainer = self.trainer
        labels = self._padded(labels)
        inputs = self._gathered(self._padded(inputs))
        if logits is not None:
            logits = self._padded(logits)
            if trainer.preprocess_logits_for_metrics is not None:
                logits = trainer.preprocess_logits_for_metrics(logits, labels)
            logits = self._gathered(logits)
        return logits, self._gathered(labels), inputs

    def step(self, model: Any, batch: Any, is_last: bool, ignore_keys: list[str] | None) -> None:
        trainer = self.trainer
        rows = _rows(batch)
        self.observed += rows
        inputs = trainer._main_input(batch) if self.want_inputs else None
        loss, logits, labels = trainer.prediction_step(model, batch, self.loss_only, ignore_keys)
        if loss is not None:
            loss = loss.detach()
        self.losses.add(loss, rows)
        if self.distributed:
            logits, labels, inputs = self._collected(logits, labels, inputs)
        elif logits is not None and trainer.preprocess_logits_for_metrics is not None:
            logits = trainer.preprocess_logits_for_metrics(logits, labels)
        if self.keep_outputs:
            self.preds.add(logits)
            self.labels.add(labels)
            self.inputs.add(inputs)
        if self.batch_metrics:
            losses = _Losses.per_sample(loss, rows) if loss is not None else None
            self._update_batch_metrics(logits, labels, inputs, self._gathered(losses), is_last)
        trainer.control = trainer.callback_handler.on_prediction_step(
            self.args, trainer.state, trainer.control
        )
        self.steps += 1
        every = self.flush_every
        if every and self.steps % every == 0:
            for outputs in (self.losses, self.preds, self.labels, self.inputs):
                outputs.flush()

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
        self.metrics = dict(compute(prediction, compute_result=is_last))  # type: ignore[call-arg]  # batch mode

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
            metrics = dict(compute(prediction))
        metrics = _plain_numbers(metrics)
        if all_losses is not None and len(all_losses):
            metrics["loss"] = float(np.asarray(all_losses, dtype=np.float64).mean())
        metrics.update(extra)
        metrics = {
            k if k.startswith(f"{prefix}_") else f"{prefix}_{k}": v for k, v in metrics.items()
        }
        num_samples = self.expected
        if num_samples is None or (num_samples == 0 and self.observed > 0):
            num_samples = self.observed * self.runtime.num_processes
        return EvalLoopOutput(preds, labels, metrics, num_samples)


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
            else:
                metrics = self._evaluate_one(eval_dataset, ignore_keys, prefix)
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
        output = trainer.evaluation_loop(dataloader, "Evaluation", loss_only, ignore_keys, prefix)
        output.metrics.update(self._speed(prefix, start, output))
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
            output = trainer.evaluation_loop(dataloader, "Prediction", None, ignore_keys, prefix)
            output.metrics.update(self._speed(prefix, start, output))
            trainer.control = trainer.callback_handler.on_predict(
                self.args, trainer.state, trainer.control, metrics=output.metrics
            )
            tracker.stop_and_update_metrics("test", output.metrics)
        finally:
            tracker.stop("test")
        return PredictionOutput(output.predictions, output.label_ids, output.metrics)

    def _speed(self, prefix: str, start: float, output: EvalLoopOutput) -> dict[str, float]:
        samples = output.num_samples
        # Tracing time is reported on its own, not counted against throughput.
        start += float((output.metrics or {}).get(f"{prefix}_jit_compilation_time", 0.0))
        per_step = self.args.eval_batch_size * self.trainer.runtime.num_processes
        steps = math.ceil(samples / per_step) if samples and per_step else None
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
        if args.past_index >= 0:
            self.trainer._past = None
        run = _EvalRun(self.trainer, dataloader, description, loss_only)
        logger.info("***** Running %s *****", description)
        if run.expected is not None:
            logger.info("  Num examples = %d", run.expected)
        logger.info("  Batch size = %s", args.eval_batch_size)
        batches = (
            _with_last_flag(dataloader) if run.batch_metrics else ((b, False) for b in dataloader)
        )
        with torch.no_grad():
            for batch, is_last in batches:
                run.step(model, batch, is_last, ignore_keys)
        extra = {"jit_compilation_time": jit_seconds} if jit_seconds is not None else {}
        return run.finish(prefix, extra)

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
        return model, jit_seconds

    def _prepare_eval_model(self, dataloader: Any) -> tuple[Any, float | None]:
        trainer, args = self.trainer, self.args
        model = trainer.model
        dtype = _full_eval_dtype(args)
        if dtype is not None:
            model = model.to(dtype=dtype)
        model = trainer.runtime.prepare_model(model, training=False)
        model.eval()
        if not args.jit_mode_eval:
            return model, None
        start = time.time()
        traced = self._traced(model, dataloader)
        return traced, (time.time() - start if traced is not model else None)

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
        """``(loss, logits, labels)`` of one batch without gradients (see Trainer)."""
        trainer = self.trainer
        inputs = trainer._prepare_inputs(inputs)
        names = trainer.label_names
        has_labels = bool(names) and all(inputs.get(k) is not None for k in names)
        labels = _labels_of(inputs, names) if has_labels else None
        ignore = _ignore_set(trainer, ignore_keys)
        full_eval = _full_eval_dtype(self.args) is not None and not trainer.is_in_train
        # The loop runs under no_grad already; a direct call of this method may not.
        no_grad = torch.no_grad() if torch.is_grad_enabled() else nullcontext()
        with no_grad, nullcontext() if full_eval else trainer.autocast_smart_context_manager():
            if has_labels or (trainer.can_return_loss and inputs.get("return_loss")):
                loss, outputs = trainer.compute_loss(model, inputs, return_outputs=True)
                loss = loss.detach()
                if loss.dim():  # a per-sample or per-device loss
                    loss = loss.mean()
                logits = None if loss_only else _logits_of(outputs, ignore | {"loss"})
            else:
                loss = None
                outputs = model(**inputs)
                if self.args.past_index >= 0:
                    trainer._past = outputs[self.args.past_index - 1]
                logits = None if loss_only else _logits_of(outputs, ignore)
        if loss_only:
            return loss, None, None
        return loss, logits, labels


def _full_eval_dtype(args: Any) -> torch.dtype | None:
    if args.fp16_full_eval:
        return torch.float16
    if args.bf16_full_eval:
        return torch.bfloat16
    return None


def _ignore_set(trainer: Trainer, ignore_keys: list[str] | None) -> frozenset[str]:
    """``ignore_keys``, or the model's default, as a set (the default cached per model)."""
    if ignore_keys is not None:
        return frozenset(ignore_keys)
    cached = getattr(trainer, "_ignore_keys_cache", None)
    if cached is None or cached[0] is not trainer.model:
        cached = (trainer.model, frozenset(_ignored_at_inference(trainer)))
        trainer._ignore_keys_cache = cached
    return cached[1]


def _ignored_at_inference(trainer: Trainer) -> list[str]:
    """The model config's ``keys_to_ignore_at_inference``; a config that does not say
    drops ``past_key_values`` (a cache, not a prediction), as the reference does."""
    config = getattr(trainer.runtime.unwrap_model(trainer.model), "config", None)
    if config is None:
        return []
    return list(getattr(config, "keys_to_ignore_at_inference", ["past_key_values"]))


def _labels_of(inputs: Mapping[str, Any], names: list[str]) -> Any:
    if len(names) == 1:
        return inputs[names[0]]
    return tuple(inputs[name] for name in names)


def _collectable(value: Any) -> bool:
    """Whether ``value`` is a tensor or a non-empty container of tensors (joinable)."""
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, Mapping):
        return bool(value) and all(_collectable(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return bool(value) and all(_collectable(v) for v in value)
    return False


def _logits_of(outputs: Any, ignore: AbstractSet[str]) -> Any:
    """The outputs other than the loss and the ignored keys (one, or a tuple of them).

    A tuple output drops its first element when it holds the loss (``"loss"`` ignored).
    Outputs that are neither tensors nor containers of tensors (a generation cache
    object, strings) cannot be joined across batches and are left out.
    """
    if isinstance(outputs, (dict, Mapping)):  # dict first: skips the ABC check
        values = tuple(v for k, v in outputs.items() if k not in ignore and _collectable(v))
    elif isinstance(outputs, (tuple, list)):
        kept = outputs[1:] if "loss" in ignore else outputs
        values = tuple(v for v in kept if _collectable(v))
    else:
        values = (outputs,)
    if not values:
        return None
    return values[0] if len(values) == 1 else values
