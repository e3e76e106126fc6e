"""evaluate / predict / evaluation_loop / prediction_step on tiny models with known answers,
and the evaluation details scripts written for transformers 5 rely on (the NaN filter of
the eval loss, ``label_names=[]``, batch metrics' inputs, a ``loss`` from compute_metrics)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from trainer_args import TrainingArguments
from trainer_core import EvalPrediction, PredictionOutput, TrainerCallback
from trainer_loop import Trainer


class Lines(Dataset):
    """``y = 2x + 1`` exactly: a model with a=2, b=1 has zero loss."""

    def __init__(self, size: int = 10) -> None:
        self.x = torch.arange(size, dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i : i + 1], "labels": 2 * self.x[i] + 1}


class Line(nn.Module):
    """``a * x + b``, with extra outputs to exercise nesting and ignore_keys."""

    def __init__(self, a: float = 2.0, b: float = 1.0) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a))
        self.b = nn.Parameter(torch.tensor(b))

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        pred = self.a * x[:, 0] + self.b
        out = {"logits": pred, "doubled": {"twice": 2 * pred}}
        if labels is not None:
            out = {"loss": nn.functional.mse_loss(pred, labels), **out}
        return out


class Tokens(Dataset):
    """Sequences of lengths 1..size; the label of each token is the token itself."""

    def __init__(self, size: int = 6) -> None:
        self.rows = [torch.arange(1, n + 2) for n in range(size)]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.rows[i], "labels": self.rows[i]}


class Masked(Dataset):
    """Token rows whose labels are the tokens, except rows from ``masked_from`` on, whose
    labels are all -100 (a prompt-only row: no token to score)."""

    def __init__(self, size: int, masked_from: int) -> None:
        self.size, self.masked_from = size, masked_from

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids = torch.tensor([1 + i % 5, 2, 3])
        labels = torch.full_like(ids, -100) if i >= self.masked_from else ids.clone()
        return {"input_ids": ids, "labels": labels}


def pad_collate(features: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Pads each batch to its own longest row (so batches differ in width)."""
    width = max(len(f["input_ids"]) for f in features)
    ids = torch.zeros(len(features), width, dtype=torch.long)
    labels = torch.full((len(features), width), -100)
    for row, feature in enumerate(features):
        ids[row, : len(feature["input_ids"])] = feature["input_ids"]
        labels[row, : len(feature["labels"])] = feature["labels"]
    return {"input_ids": ids, "labels": labels}


class Tagger(nn.Module):
    """Per-token scores over 8 classes: the token's own id gets the highest score."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(1.0))

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None) -> tuple:
        logits = nn.functional.one_hot(input_ids, 8).float() * self.scale
        if labels is None:
            return (logits,)
        loss = nn.functional.cross_entropy(
            logits.flatten(0, 1), labels.flatten(), ignore_index=-100
        )
        return (loss, logits)


def _args(tmp_path, **overrides) -> TrainingArguments:
    defaults = dict(
        output_dir=str(tmp_path),
        per_device_eval_batch_size=4,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    defaults.update(overrides)
    return TrainingArguments(**defaults)


class Recorder(TrainerCallback):
    def __init__(self) -> None:
        self.events: list[tuple[str, dict | None]] = []

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self.events.append(("evaluate", dict(metrics)))

    def on_predict(self, args, state, control, metrics=None, **kwargs):
        self.events.append(("predict", dict(metrics)))

    def on_prediction_step(self, args, state, control, **kwargs):
        self.events.append(("step", None))


def _abs_error(prediction: EvalPrediction) -> dict[str, float]:
    predictions, labels = prediction  # tuple unpacking, as reference scripts write it
    first = predictions[0] if isinstance(predictions, tuple) else predictions
    return {"abs_error": float(np.abs(first - labels).mean())}


# ------------------------------------------------------------------- evaluate
def test_evaluate_reports_prefixed_metrics_logs_them_and_calls_on_evaluate(tmp_path) -> None:
    recorder = Recorder()
    trainer = Trainer(
        model=Line(2.0, 2.0),  # off by exactly 1 everywhere: mse 1, abs error 1
        args=_args(tmp_path),
        eval_dataset=Lines(10),
        compute_metrics=_abs_error,
        callbacks=[recorder],
    )
    metrics = trainer.evaluate()
    assert metrics["eval_loss"] == pytest.approx(1.0)
    assert metrics["eval_abs_error"] == pytest.approx(1.0)
    assert {"eval_runtime", "eval_samples_per_second", "eval_steps_per_second"} <= set(metrics)
    assert [name for name, _ in recorder.events] == ["step"] * 3 + ["evaluate"]
    assert recorder.events[-1][1]["eval_loss"] == pytest.approx(1.0)
    assert trainer.state.log_history[-1]["eval_abs_error"] == pytest.approx(1.0)
    custom = trainer.evaluate(metric_key_prefix="dev")
    assert "dev_loss" in custom and "eval_loss" not in custom


def test_eval_loss_is_the_mean_over_samples_not_over_batches(tmp_path) -> None:
    # Batches of 4, 4, 2: per-batch losses weighted by their sizes.
    model = Line(2.0, 1.0)
    with torch.no_grad():
        model.a.fill_(2.5)
    metrics = Trainer(model=model, args=_args(tmp_path)).evaluate(Lines(10))
    expected = float(((0.5 * torch.arange(10.0)) ** 2).mean())
    assert metrics["eval_loss"] == pytest.approx(expected, rel=1e-5)


def test_a_dict_of_eval_datasets_is_evaluated_under_one_prefix_each(tmp_path) -> None:
    trainer = Trainer(
        model=Line(2.0, 2.0), args=_args(tmp_path), eval_dataset={"a": Lines(4), "b": Lines(6)}
    )
    metrics = trainer.evaluate()
    assert metrics["eval_a_loss"] == pytest.approx(1.0)
    assert metrics["eval_b_loss"] == pytest.approx(1.0)
    assert metrics["eval_b_samples_per_second"] > 0
    assert trainer.evaluate({"c": Lines(3)})["eval_c_loss"] == pytest.approx(1.0)


def test_training_evaluates_each_eval_set_through_an_override_by_keyword(tmp_path) -> None:
    """The QA example's ``evaluate(eval_dataset, eval_examples, ignore_keys, prefix)``
    adds a parameter: positional calls would hand it the prefix as ``ignore_keys``."""

    class ExamplesTrainer(Trainer):
        def evaluate(
            self, eval_dataset=None, eval_examples=None, ignore_keys=None, metric_key_prefix="eval"
        ):
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)

    args = _args(tmp_path, max_steps=2, eval_strategy="steps", eval_steps=2, save_strategy="no")
    trainer = ExamplesTrainer(
        model=Line(2.0, 2.0),
        args=args,
        train_dataset=Lines(4),
        eval_dataset={"a": Lines(4), "b": Lines(6)},
    )
    trainer.train()
    logged = {key for entry in trainer.state.log_history for key in entry}
    assert {"eval_a_loss", "eval_b_loss"} <= logged
    assert "eval_loss" not in logged


# -------------------------------------------------------------------- predict
def test_predict_returns_predictions_labels_and_metrics_keeping_the_nesting(tmp_path) -> None:
    recorder = Recorder()
    trainer = Trainer(model=Line(), args=_args(tmp_path), callbacks=[recorder])
    output = trainer.predict(Lines(10))
    assert isinstance(output, PredictionOutput)
    logits, extra = output.predictions
    np.testing.assert_allclose(logits, 2 * np.arange(10) + 1)
    np.testing.assert_allclose(extra["twice"], 4 * np.arange(10) + 2)
    np.testing.assert_allclose(output.label_ids, 2 * np.arange(10) + 1)
    assert output.metrics["test_loss"] == pytest.approx(0.0)
    assert recorder.events[-1][0] == "predict"
    assert not any(name == "evaluate" for name, _ in recorder.events)


def test_ignore_keys_and_the_configs_keys_to_ignore_drop_outputs(tmp_path) -> None:
    trainer = Trainer(model=Line(), args=_args(tmp_path))
    only_logits = trainer.predict(Lines(5), ignore_keys=["doubled"]).predictions
    assert isinstance(only_logits, np.ndarray) and only_logits.shape == (5,)

    model = Line()
    model.config = type("Config", (), {"keys_to_ignore_at_inference": ["logits"]})()
    trainer = Trainer(model=model, args=_args(tmp_path))
    assert set(trainer.predict(Lines(5)).predictions) == {"twice"}
    # Changed between two predictions, as transformers reads it each time.
    model.config.keys_to_ignore_at_inference = ["doubled"]
    only_logits = trainer.predict(Lines(5)).predictions
    assert isinstance(only_logits, np.ndarray) and only_logits.shape == (5,)


def test_sequences_of_different_widths_are_padded_with_minus_100(tmp_path) -> None:
    trainer = Trainer(
        model=Tagger(),
        args=_args(tmp_path, per_device_eval_batch_size=2),
        data_collator=pad_collate,
    )
    output = trainer.predict(Tokens(6))
    assert output.predictions.shape == (6, 6, 8)
    assert output.label_ids.shape == (6, 6)
    # The first batch (lengths 1, 2) was 2 wide: the rest of its rows is -100.
    assert (output.predictions[:2, 2:] == -100).all()
    assert (output.label_ids[0, 1:] == -100).all()
    assert output.label_ids[5].tolist() == [1, 2, 3, 4, 5, 6]
    predicted = output.predictions.argmax(-1)
    real = output.label_ids != -100
    assert (predicted[real] == output.label_ids[real]).all()


def test_prediction_loss_only_returns_no_predictions(tmp_path) -> None:
    trainer = Trainer(model=Line(), args=_args(tmp_path, prediction_loss_only=True))
    output = trainer.predict(Lines(5))
    assert output.predictions is None and output.label_ids is None
    assert "test_loss" in output.metrics


def test_without_labels_there_is_no_loss_and_no_label_ids(tmp_path) -> None:
    class Unlabelled(Lines):
        def __getitem__(self, i):
            return {"x": self.x[i : i + 1]}

    output = Trainer(model=Line(), args=_args(tmp_path)).predict(Unlabelled(5))
    assert output.label_ids is None and "test_loss" not in output.metrics
    assert output.predictions[0].shape == (5,)


def test_compute_metrics_gets_inputs_and_losses_when_asked(tmp_path) -> None:
    received: list[EvalPrediction] = []

    def compute(prediction):
        received.append(prediction)
        return {"n": len(prediction)}

    args = _args(tmp_path, include_for_metrics=["inputs", "loss"])
    trainer = Trainer(model=Tagger(), args=args, data_collator=pad_collate, compute_metrics=compute)
    metrics = trainer.evaluate(Tokens(4))
    prediction = received[0]
    assert metrics["eval_n"] == 4  # predictions, labels, inputs, losses
    assert prediction.inputs.shape == (4, 4) and prediction.inputs[3].tolist() == [1, 2, 3, 4]
    assert prediction.losses.shape == (4,)


def test_preprocess_logits_for_metrics_runs_per_batch_before_joining(tmp_path) -> None:
    shapes = []

    def argmax(logits, labels):
        shapes.append(tuple(logits.shape))
        return logits.argmax(-1)

    trainer = Trainer(
        model=Tagger(),
        args=_args(tmp_path, per_device_eval_batch_size=3),
        data_collator=pad_collate,
        preprocess_logits_for_metrics=argmax,
    )
    output = trainer.predict(Tokens(6))
    assert shapes == [(3, 3, 8), (3, 6, 8)]
    assert output.predictions.shape == (6, 6)
    assert output.predictions[5].tolist() == [1, 2, 3, 4, 5, 6]


def test_eval_accumulation_steps_give_the_same_outputs(tmp_path) -> None:
    runs = []
    for steps in (None, 1, 2):
        args = _args(tmp_path, per_device_eval_batch_size=2, eval_accumulation_steps=steps)
        trainer = Trainer(model=Tagger(), args=args, data_collator=pad_collate)
        runs.append(trainer.predict(Tokens(5)))
    for other in runs[1:]:
        np.testing.assert_array_equal(other.predictions, runs[0].predictions)
        np.testing.assert_array_equal(other.label_ids, runs[0].label_ids)
        assert other.metrics["test_loss"] == pytest.approx(runs[0].metrics["test_loss"])


def test_batch_eval_metrics_are_computed_per_batch_with_compute_result_on_the_last(
    tmp_path,
) -> None:
    calls = []

    def compute(prediction, compute_result):
        calls.append((len(prediction.label_ids), compute_result))
        return {"batches": len(calls)} if compute_result else {}

    args = _args(tmp_path, batch_eval_metrics=True)
    trainer = Trainer(model=Line(), args=args, compute_metrics=compute)
    metrics = trainer.evaluate(Lines(10))
    assert calls == [(4, False), (4, False), (2, True)]
    assert metrics["eval_batches"] == 3
    output = trainer.predict(Lines(10))  # prediction still returns every output
    assert output.predictions[0].shape == (10,)


def test_eval_do_concat_batches_false_keeps_one_array_per_batch(tmp_path) -> None:
    args = _args(tmp_path, eval_do_concat_batches=False)
    output = Trainer(model=Line(), args=args).predict(Lines(10))
    assert [len(batch[0]) for batch in output.predictions] == [4, 4, 2]
    assert [len(labels) for labels in output.label_ids] == [4, 4, 2]


def test_an_overridden_prediction_step_is_used_by_evaluate_and_predict(tmp_path) -> None:
    class Constant(Trainer):
        def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
            rows = inputs["x"].shape[0]
            return torch.tensor(3.0), torch.full((rows,), 7.0), inputs["labels"]

    trainer = Constant(model=Line(), args=_args(tmp_path), compute_metrics=_abs_error)
    assert trainer.evaluate(Lines(4))["eval_loss"] == pytest.approx(3.0)
    output = trainer.predict(Lines(4))
    assert output.predictions.tolist() == [7.0] * 4
    assert output.metrics["test_abs_error"] == pytest.approx(
        np.mean(np.abs(7 - (2 * np.arange(4) + 1)))
    )


def test_numpy_and_tensor_metric_values_become_python_numbers(tmp_path) -> None:
    def compute(prediction):
        return {"np": np.float32(0.5), "tensor": torch.tensor(2), "text": "ok"}

    trainer = Trainer(model=Line(), args=_args(tmp_path), compute_metrics=compute)
    metrics = trainer.evaluate(Lines(4))
    assert type(metrics["eval_np"]) is float and type(metrics["eval_tensor"]) is int
    assert metrics["eval_text"] == "ok"


def test_prediction_loop_is_the_evaluation_loop(tmp_path) -> None:
    trainer = Trainer(model=Line(), args=_args(tmp_path))
    loader = trainer.get_test_dataloader(Lines(6))
    output = trainer.prediction_loop(loader, "Prediction", metric_key_prefix="x")
    assert output.num_samples == 6 and "x_loss" in output.metrics


# ---------------------------------------------------------- precision and speed-ups
def test_bf16_full_eval_casts_the_model_and_returns_float32_arrays(tmp_path) -> None:
    model = Line()
    trainer = Trainer(model=model, args=_args(tmp_path, bf16_full_eval=True))
    output = trainer.predict(Lines(4))
    assert model.a.dtype == torch.bfloat16
    assert output.predictions[0].dtype == np.float32
    np.testing.assert_allclose(output.predictions[0], [1, 3, 5, 7])


@pytest.mark.slow  # TorchScript tracing and freezing take seconds
def test_jit_mode_eval_traces_the_model_and_reports_the_compilation_time(tmp_path) -> None:
    args = _args(tmp_path, jit_mode_eval=True, per_device_eval_batch_size=2)
    trainer = Trainer(model=Tagger(), args=args, data_collator=pad_collate)
    output = trainer.predict(Tokens(5))
    assert output.metrics["test_jit_compilation_time"] > 0
    assert isinstance(trainer._eval_model_cache[1], torch.jit.ScriptModule)
    args = _args(tmp_path, per_device_eval_batch_size=2)
    plain = Trainer(model=Tagger(), args=args, data_collator=pad_collate)
    np.testing.assert_array_equal(output.predictions, plain.predict(Tokens(5)).predictions)


def test_jit_mode_eval_falls_back_when_the_model_cannot_be_traced(tmp_path, caplog) -> None:
    # Line returns a dict holding a dict: TorchScript cannot trace mixed value types.
    trainer = Trainer(model=Line(), args=_args(tmp_path, jit_mode_eval=True))
    metrics = trainer.evaluate(Lines(4))
    assert "eval_jit_compilation_time" not in metrics
    assert metrics["eval_loss"] == pytest.approx(0.0)
    assert "evaluating untraced" in caplog.text


@pytest.mark.slow
def test_torch_compile_is_applied_to_evaluation_once(tmp_path) -> None:
    args = _args(tmp_path, torch_compile=True, torch_compile_backend="eager")
    trainer = Trainer(model=Line(), args=args)
    first = trainer.predict(Lines(4))
    compiled = trainer._eval_model_cache[1]
    trainer.predict(Lines(4))
    assert trainer._eval_model_cache[1] is compiled
    assert compiled is not trainer.model  # the compiled wrapper, reused
    np.testing.assert_allclose(first.predictions[0], [1, 3, 5, 7])


def test_outputs_held_on_an_accelerator_are_written_to_the_host_at_flush() -> None:
    from trainer_loop._evaluation_loop import _Outputs

    outputs = _Outputs(capacity=4, limit=None, concat=True, hold_on_device=True)
    outputs.add(torch.ones(2, 3))
    outputs.add(torch.zeros(2, 2))
    assert outputs._joined.buffers is None  # nothing copied per step
    outputs.flush()
    assert outputs._joined.buffers is not None
    result = outputs.result()
    assert result.shape == (4, 3) and (result[2:, 2] == -100).all()


# ------------------------------------------- as transformers 5 evaluates (scripts rely on it)
def test_batches_with_a_nan_loss_are_left_out_of_the_eval_loss(tmp_path) -> None:
    dataset = Masked(6, masked_from=4)  # the second batch (rows 4, 5) has no label
    finite = Trainer(model=Tagger(), args=_args(tmp_path)).evaluate(Masked(4, masked_from=4))
    filtered = Trainer(model=Tagger(), args=_args(tmp_path)).evaluate(dataset)
    assert filtered["eval_loss"] == pytest.approx(finite["eval_loss"])
    unfiltered = Trainer(model=Tagger(), args=_args(tmp_path, logging_nan_inf_filter=False))
    assert math.isnan(unfiltered.evaluate(dataset)["eval_loss"])


def test_an_eval_set_with_no_finite_loss_reports_nan(tmp_path) -> None:
    metrics = Trainer(model=Tagger(), args=_args(tmp_path)).evaluate(Masked(4, masked_from=0))
    assert math.isnan(metrics["eval_loss"])


def test_empty_label_names_means_no_labels_not_the_models_default(tmp_path) -> None:
    trainer = Trainer(model=Tagger(), args=_args(tmp_path, label_names=[]))
    assert trainer.label_names == []
    output = trainer.predict(Masked(4, masked_from=4))
    assert output.label_ids is None
    assert "test_loss" not in output.metrics
    # Without label names the model's outputs are all predictions, its loss included.
    assert output.predictions[1].shape == (4, 3, 8)


def test_batch_metrics_receive_the_whole_batch_as_inputs(tmp_path) -> None:
    received: list[EvalPrediction] = []

    def compute(prediction, compute_result):
        received.append(prediction)
        return {"seen": len(received)} if compute_result else {}

    args = _args(tmp_path, batch_eval_metrics=True, include_for_metrics=["inputs", "loss"])
    Trainer(model=Tagger(), args=args, compute_metrics=compute).evaluate(Masked(6, 6))
    assert [type(p.inputs) for p in received] == [dict, dict]
    assert sorted(received[0].inputs) == ["input_ids", "labels"]
    assert [p.losses.shape for p in received] == [(4,), (2,)]


def test_unjoined_batches_give_one_loss_array_per_batch(tmp_path) -> None:
    received: list[EvalPrediction] = []

    def compute(prediction):
        received.append(prediction)
        return {}

    args = _args(tmp_path, eval_do_concat_batches=False, include_for_metrics=["loss"])
    trainer = Trainer(model=Tagger(), args=args, compute_metrics=compute)
    metrics = trainer.evaluate(Masked(10, 10))
    losses = received[0].losses
    assert [len(batch) for batch in losses] == [4, 4, 2]
    assert metrics["eval_loss"] == pytest.approx(float(np.concatenate(losses).mean()))


def test_a_loss_from_compute_metrics_replaces_the_mean_loss_as_in_the_reference(
    tmp_path,
) -> None:
    def with_loss(prediction):
        return {"loss": 5.0, "eval_runtime": -1.0}

    trainer = Trainer(model=Tagger(), args=_args(tmp_path), compute_metrics=with_loss)
    metrics = trainer.evaluate(Masked(4, 4))
    assert metrics["eval_loss"] == 5.0
    assert metrics["eval_runtime"] >= 0  # the loop's own prefixed keys are not replaced


# ---------------------------------------- a model that returns a loss without labels
class _Contrastive(nn.Module):
    """CLIP-style: ``forward(..., return_loss=True)`` scores each x against every y."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 8), nn.Linear(4, 8)

    def forward(self, x: torch.Tensor, y: torch.Tensor, return_loss: bool = True) -> dict:
        similarity = self.a(x) @ self.b(y).T
        outputs = {"logits_per_x": similarity}
        if return_loss:
            targets = torch.arange(len(x))
            outputs = {"loss": nn.functional.cross_entropy(similarity, targets), **outputs}
        return outputs


def _pairs(count: int = 8) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    return [
        {"x": torch.randn(4, generator=generator), "y": torch.randn(4, generator=generator)}
        for _ in range(count)
    ]


def test_a_model_returning_its_loss_without_labels_is_evaluated_with_it(tmp_path) -> None:
    """As in the reference: no label names and ``return_loss`` on (the batch's, else the
    forward's default) computes the loss, with ``()`` as the labels."""
    torch.manual_seed(0)
    model = _Contrastive()
    seen = []

    def metrics(prediction):
        seen.append(prediction.label_ids)
        return {"rows": len(prediction.predictions)}

    args = TrainingArguments(
        str(tmp_path), per_device_eval_batch_size=4, report_to="none", use_cpu=True
    )
    trainer = Trainer(model=model, args=args, compute_metrics=metrics)
    assert trainer.label_names == [] and trainer.can_return_loss
    result = trainer.evaluate(_pairs())
    with torch.no_grad():
        expected = [model(**_stack(_pairs()[i : i + 4]))["loss"].item() for i in (0, 4)]
    assert result["eval_loss"] == pytest.approx(sum(expected) / 2)
    assert result["eval_rows"] == 8 and seen == [()]
    output = trainer.predict(_pairs())
    assert output.label_ids == () and output.predictions.shape == (8, 4)  # no loss column
    trainer.data_collator = lambda rows: {**_stack(rows), "return_loss": False}
    assert "eval_loss" not in trainer.evaluate(_pairs())  # the batch's own choice wins


def _stack(rows):
    return {key: torch.stack([row[key] for row in rows]) for key in rows[0]}
