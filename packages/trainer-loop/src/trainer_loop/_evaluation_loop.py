"""Evaluation and prediction: run the model without gradients and collect its outputs.

Outputs, labels and (optionally) inputs are gathered across processes, moved to the CPU
(every ``eval_accumulation_steps`` batches, or at the end), joined once, padded with
-100 where sequence lengths differ, and handed to ``compute_metrics`` as an
``EvalPrediction``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import torch

from trainer_core import EvalLoopOutput, EvalPrediction, PredictionOutput
from trainer_loop._nested import concatenate, detach_to_cpu, first_dim, to_numpy
from trainer_loop._speed_metrics import speed_metrics

if TYPE_CHECKING:
    from trainer_loop._trainer import Trainer


class _Collector:
    """Per-batch outputs kept as a list on the device, flushed to the CPU in chunks."""

    def __init__(self) -> None:
        self.device_parts: list[Any] = []
        self.host_parts: list[Any] = []

    def add(self, value: Any) -> None:
        if value is not None:
            self.device_parts.append(value)

    def flush(self) -> None:
        self.host_parts.extend(detach_to_cpu(part) for part in self.device_parts)
        self.device_parts.clear()

    def result(self) -> Any:
        self.flush()
        return to_numpy(concatenate(self.host_parts)) if self.host_parts else None


class EvaluationLoop:
    """``evaluate`` / ``predict`` / ``evaluation_loop`` / ``prediction_step`` for a Trainer."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.args = trainer.args

    def evaluate(
        self, eval_dataset: Any, ignore_keys: list[str] | None, prefix: str
    ) -> dict[str, float]:
        trainer = self.trainer
        dataset = eval_dataset if eval_dataset is not None else trainer.eval_dataset
        if isinstance(dataset, dict):
            metrics: dict[str, float] = {}
            for name, part in dataset.items():
                metrics.update(self.evaluate(part, ignore_keys, f"{prefix}_{name}"))
            return metrics
        dataloader = trainer.get_eval_dataloader(dataset)
        start = time.time()
        output = trainer.evaluation_loop(
            dataloader,
            "Evaluation",
            None if trainer.compute_metrics is not None else True,
            ignore_keys,
            prefix,
        )
        steps = len(dataloader) if trainer._has_length(dataloader) else None
        output.metrics.update(
            speed_metrics(prefix, start, num_samples=output.num_samples, num_steps=steps)
        )
        trainer.log(output.metrics)
        trainer.control = trainer.callback_handler.on_evaluate(
            self.args, trainer.state, trainer.control, metrics=output.metrics
        )
        return output.metrics

    def predict(self, dataset: Any, ignore_keys: list[str] | None, prefix: str) -> PredictionOutput:
        trainer = self.trainer
        dataloader = trainer.get_test_dataloader(dataset)
        start = time.time()
        output = trainer.evaluation_loop(dataloader, "Prediction", None, ignore_keys, prefix)
        steps = len(dataloader) if trainer._has_length(dataloader) else None
        output.metrics.update(
            speed_metrics(prefix, start, num_samples=output.num_samples, num_steps=steps)
        )
        trainer.control = trainer.callback_handler.on_predict(
            self.args, trainer.state, trainer.control, metrics=output.metrics
        )
        return PredictionOutput(output.predictions, output.label_ids, output.metrics)

    def _eval_model(self) -> Any:
        trainer = self.trainer
        model = trainer.model_wrapped if trainer.is_in_train else trainer.model
        if not trainer.is_in_train:
            model = model.to(trainer.runtime.device) if trainer.place_model_on_device else model
            if self.args.fp16_full_eval:
                model = model.to(torch.float16)
            elif self.args.bf16_full_eval:
                model = model.to(torch.bfloat16)
        model.eval()
        return model

    def run(
        self,
        dataloader: Any,
        description: str,
        prediction_loss_only: bool | None,
        ignore_keys: list[str] | None,
        prefix: str,
    ) -> EvalLoopOutput:
        trainer, args = self.trainer, self.args
        loss_only = (
            args.prediction_loss_only if prediction_loss_only is None else prediction_loss_only
        )
        model = self._eval_model()
        losses, preds, labels, inputs = _Collector(), _Collector(), _Collector(), _Collector()
        want_inputs = "inputs" in (args.include_for_metrics or [])
        runtime = trainer.runtime
        num_samples = 0
        for step, batch in enumerate(dataloader):
            rows = (
                first_dim(batch) if isinstance(batch, (Mapping, list, tuple, torch.Tensor)) else 0
            )
            num_samples += rows
            loss, logits, label = trainer.prediction_step(model, batch, loss_only, ignore_keys)
            if loss is not None:
                losses.add(runtime.gather(loss.detach().reshape(1).repeat(max(rows, 1))))
            if logits is not None and trainer.preprocess_logits_for_metrics is not None:
                logits = trainer.preprocess_logits_for_metrics(logits, label)
            preds.add(logits)
            labels.add(label)
            if want_inputs:
                inputs.add(trainer._main_input(batch))
            trainer.control = trainer.callback_handler.on_prediction_step(
                args, trainer.state, trainer.control
            )
            if args.eval_accumulation_steps and (step + 1) % args.eval_accumulation_steps == 0:
                for collector in (losses, preds, labels, inputs):
                    collector.flush()
        return self._finish(losses, preds, labels, inputs, num_samples, prefix)

    def _finish(
        self,
        losses: _Collector,
        preds: _Collector,
        labels: _Collector,
        inputs: _Collector,
        num_samples: int,
        prefix: str,
    ) -> EvalLoopOutput:
        trainer = self.trainer
        all_losses, all_preds, all_labels = losses.result(), preds.result(), labels.result()
        all_inputs = inputs.result()
        metrics: dict[str, Any] = {}
        if trainer.compute_metrics is not None and all_preds is not None and all_labels is not None:
            prediction = EvalPrediction(
                predictions=all_preds, label_ids=all_labels, inputs=all_inputs
            )
            metrics = dict(trainer.compute_metrics(prediction))
        if all_losses is not None:
            metrics["loss"] = float(all_losses.mean())
        metrics = {
            k if k.startswith(f"{prefix}_") else f"{prefix}_{k}": v for k, v in metrics.items()
        }
        return EvalLoopOutput(all_preds, all_labels, metrics, num_samples)

    def prediction_step(
        self, model: Any, inputs: dict[str, Any], loss_only: bool, ignore_keys: list[str] | None
    ) -> tuple[torch.Tensor | None, Any, Any]:
        trainer = self.trainer
        inputs = trainer._prepare_inputs(inputs)
        has_labels = bool(trainer.label_names) and all(
            inputs.get(k) is not None for k in trainer.label_names
        )
        labels = _labels_of(inputs, trainer.label_names) if has_labels else None
        ignore = set(
            ignore_keys
            or getattr(getattr(model, "config", None), "keys_to_ignore_at_inference", [])
            or []
        )
        full_eval = self.args.fp16_full_eval or self.args.bf16_full_eval
        with (
            torch.no_grad(),
            nullcontext() if full_eval else trainer.autocast_smart_context_manager(),
        ):
            if has_labels or (trainer.can_return_loss and inputs.get("return_loss")):
                loss, outputs = trainer.compute_loss(model, inputs, return_outputs=True)
                loss = loss.detach().mean()
                logits = _logits_of(outputs, ignore | {"loss"})
            else:
                loss = None
                outputs = model(**inputs)
                logits = _logits_of(outputs, ignore)
        if loss_only:
            return loss, None, None
        return loss, logits, labels


def _labels_of(inputs: Mapping[str, Any], names: list[str]) -> Any:
    values = tuple(inputs[name] for name in names)
    return values[0] if len(values) == 1 else values


def _logits_of(outputs: Any, ignore: set[str]) -> Any:
    if isinstance(outputs, Mapping):
        values = tuple(v for k, v in outputs.items() if k not in ignore and v is not None)
    elif isinstance(outputs, (tuple, list)):
        values = tuple(outputs[1:]) if "loss" in ignore else tuple(outputs)
    else:
        values = (outputs,)
    if not values:
        return None
    return values[0] if len(values) == 1 else values
