"""The training loop end to end through `trainer`: accumulation, events, stopping, options."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, IterableDataset

from trainer import EarlyStoppingCallback, Trainer, TrainerCallback, TrainingArguments
from trainer_core import Event
from trainer_testing.models import RegressionDataset, RegressionModel


def _args(output_dir: str, **overrides) -> TrainingArguments:
    defaults = dict(
        output_dir=output_dir,
        per_device_train_batch_size=8,
        learning_rate=0.1,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
    )
    defaults.update(overrides)
    return TrainingArguments(**defaults)


def _losses(trainer: Trainer) -> list[float]:
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


# --------------------------------------------------------- gradient accumulation
def test_accumulating_4_batches_of_8_matches_one_batch_of_32(tmp_output) -> None:
    runs = {}
    for batch, accumulation in ((32, 1), (8, 4)):
        torch.manual_seed(0)
        model = RegressionModel()
        args = _args(
            tmp_output,
            per_device_train_batch_size=batch,
            gradient_accumulation_steps=accumulation,
            num_train_epochs=3,
            max_grad_norm=0.0,
        )
        trainer = Trainer(model=model, args=args, train_dataset=RegressionDataset(64))
        trainer.train()
        runs[batch] = (_losses(trainer), _weights(model), trainer.state.global_step)
    (big_losses, big_weights, big_steps), (small_losses, small_weights, small_steps) = (
        runs[32],
        runs[8],
    )
    assert big_steps == small_steps == 6
    assert small_losses == pytest.approx(big_losses, rel=1e-5)
    for big, small in zip(big_weights, small_weights, strict=True):
        torch.testing.assert_close(small, big, rtol=1e-5, atol=1e-6)


class TokenDataset(Dataset):
    """Token classification with a varying number of padded (-100) label positions."""

    def __init__(self, size: int = 32, length: int = 6) -> None:
        generator = torch.Generator().manual_seed(1)
        self.ids = torch.randint(0, 8, (size, length), generator=generator)
        self.labels = self.ids.clone() % 3
        for row in range(size):  # row r keeps (r % length) + 1 labelled positions
            self.labels[row, (row % length) + 1 :] = -100

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[index], "labels": self.labels[index]}


class TokenTagger(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(8, 3)

    def forward(
        self, input_ids: torch.Tensor, labels: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        logits = self.embed(input_ids)
        out = {"logits": logits}
        if labels is not None:  # mean over labelled tokens of this batch only
            out["loss"] = nn.functional.cross_entropy(logits.reshape(-1, 3), labels.reshape(-1))
        return out


def test_accumulation_normalises_by_labelled_tokens_across_the_window(tmp_output) -> None:
    results = {}
    for batch, accumulation in ((16, 1), (4, 4)):
        torch.manual_seed(0)
        model = TokenTagger()
        args = _args(
            tmp_output,
            per_device_train_batch_size=batch,
            gradient_accumulation_steps=accumulation,
            num_train_epochs=2,
            max_grad_norm=0.0,
        )
        trainer = Trainer(model=model, args=args, train_dataset=TokenDataset())
        trainer.train()
        results[batch] = (_losses(trainer), _weights(model))
    assert results[4][0] == pytest.approx(results[16][0], rel=1e-5)
    torch.testing.assert_close(results[4][1][0], results[16][1][0], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------- events
class EventRecorder(TrainerCallback):
    """Records the name of every event it receives (one method per ``Event``)."""

    def __init__(self) -> None:
        self.events: list[str] = []


def _recording_method(name: str):
    def record(self, args, state, control, **kwargs):
        self.events.append(name)

    return record


for _event in Event:
    setattr(EventRecorder, _event.value, _recording_method(_event.value))


def test_callback_events_fire_in_the_documented_order(tmp_output) -> None:
    recorder = EventRecorder()
    args = _args(
        tmp_output,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=2,
        num_train_epochs=2,
        logging_steps=2,
        eval_strategy="epoch",
    )
    trainer = Trainer(
        model=RegressionModel(),
        args=args,
        train_dataset=RegressionDataset(8),
        eval_dataset=RegressionDataset(8),
        callbacks=[recorder],
    )
    trainer.train()
    step = [
        "on_step_begin",
        "on_substep_end",
        "on_pre_optimizer_step",
        "on_optimizer_step",
        "on_step_end",
    ]
    evaluation = ["on_prediction_step", "on_log", "on_evaluate"]
    epoch = ["on_epoch_begin", *step, *step, "on_log", "on_epoch_end", *evaluation]
    assert recorder.events == [
        "on_init_end",
        "on_train_begin",
        *epoch,
        *epoch,
        "on_log",
        "on_train_end",
    ]


# ------------------------------------------------------------- early stopping
def test_early_stopping_stops_after_patience_evaluations_without_improvement(tmp_output) -> None:
    scores = iter([0.5, 0.6, 0.55, 0.54, 0.53, 0.52, 0.51, 0.5])
    args = _args(
        tmp_output,
        max_steps=8,
        eval_strategy="steps",
        eval_steps=1,
        save_strategy="steps",
        save_steps=1,
        load_best_model_at_end=True,
        metric_for_best_model="score",
        greater_is_better=True,
    )
    trainer = Trainer(
        model=RegressionModel(),
        args=args,
        train_dataset=RegressionDataset(64),
        eval_dataset=RegressionDataset(8),
        compute_metrics=lambda prediction: {"score": next(scores)},
        callbacks=[EarlyStoppingCallback(early_stopping_patience=2)],
    )
    trainer.train()
    assert trainer.state.global_step == 4
    assert trainer.state.best_metric == 0.6
    assert trainer.state.best_model_checkpoint.endswith("checkpoint-2")


# -------------------------------------------------------------------- errors
class NoLossModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 1)

    def forward(
        self, input_x: torch.Tensor, labels: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        return {"logits": self.linear(input_x)}


def test_model_without_loss_raises_an_explanation(tmp_output) -> None:
    trainer = Trainer(
        model=NoLossModel(), args=_args(tmp_output, max_steps=1), train_dataset=RegressionDataset(8)
    )
    with pytest.raises(ValueError, match=r"did not return a loss.*only logits"):
        trainer.train()


# ---------------------------------------------------------- loop options
def test_train_output_has_the_reference_metrics(tmp_output) -> None:
    trainer = Trainer(
        model=RegressionModel(),
        args=_args(tmp_output, num_train_epochs=1.5),
        train_dataset=RegressionDataset(64),
    )
    output = trainer.train()
    assert output.global_step == 12  # 1.5 epochs of 8 steps
    assert set(output.metrics) >= {
        "train_runtime",
        "train_samples_per_second",
        "train_steps_per_second",
        "total_flos",
        "train_loss",
        "epoch",
    }
    assert output.training_loss == pytest.approx(output.metrics["train_loss"])
    assert trainer.state.epoch == pytest.approx(1.5)


class CountingIterable(IterableDataset):
    def __iter__(self):
        data = RegressionDataset(1000)
        for index in range(len(data)):
            yield data[index]


def test_iterable_dataset_needs_and_honours_max_steps(tmp_output) -> None:
    with pytest.raises(ValueError, match="max_steps"):  # when built, as the reference
        Trainer(model=RegressionModel(), args=_args(tmp_output), train_dataset=CountingIterable())
    trainer = Trainer(model=RegressionModel(), args=_args(tmp_output))
    trainer.train_dataset = CountingIterable()  # assigned later: train() checks again
    with pytest.raises(ValueError, match="max_steps"):
        trainer.train()
    trainer = Trainer(
        model=RegressionModel(),
        args=_args(tmp_output, max_steps=7),
        train_dataset=CountingIterable(),
    )
    assert trainer.train().global_step == 7


def test_model_init_builds_a_fresh_model_for_each_train_call(tmp_output) -> None:
    built: list[RegressionModel] = []

    def model_init() -> RegressionModel:
        built.append(RegressionModel())
        return built[-1]

    trainer = Trainer(
        model_init=model_init,
        args=_args(tmp_output, max_steps=2),
        train_dataset=RegressionDataset(16),
    )
    trainer.train()
    first = trainer.model
    trainer.train()
    assert trainer.model is not first
    assert len(built) == 3  # once at construction, once per train()


class OutOfMemoryAbove5(RegressionModel):
    def forward(self, input_x: torch.Tensor, labels: torch.Tensor | None = None):
        if input_x.shape[0] > 5:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated by the test model)")
        return super().forward(input_x, labels)


def test_auto_find_batch_size_shrinks_until_it_fits(tmp_output) -> None:
    args = _args(tmp_output, per_device_train_batch_size=16, auto_find_batch_size=True, max_steps=3)
    trainer = Trainer(model=OutOfMemoryAbove5(), args=args, train_dataset=RegressionDataset(64))
    trainer.train()
    assert trainer.state.train_batch_size == 5  # 16, 14, 12, 10, 9, 8, 7, 6, 5
    assert trainer.state.global_step == 3


def test_label_smoothing_changes_the_training_loss(tmp_output) -> None:
    losses = {}
    for factor in (0.0, 0.3):
        torch.manual_seed(0)
        args = _args(tmp_output, label_smoothing_factor=factor, max_steps=1, learning_rate=0.0)
        trainer = Trainer(model=TokenTagger(), args=args, train_dataset=TokenDataset())
        losses[factor] = trainer.train().training_loss
    assert losses[0.3] != pytest.approx(losses[0.0])


def test_tokens_seen_and_tokens_per_second(tmp_output) -> None:
    args = _args(
        tmp_output,
        per_device_train_batch_size=4,
        max_steps=3,
        include_num_input_tokens_seen=True,
        include_tokens_per_second=True,
    )
    trainer = Trainer(model=TokenTagger(), args=args, train_dataset=TokenDataset())
    output = trainer.train()
    assert trainer.state.num_input_tokens_seen == 3 * 4 * 6
    assert output.metrics["train_tokens_per_second"] > 0
    assert all("num_input_tokens_seen" in entry for entry in trainer.state.log_history)


def test_full_determinism_reproduces_weights_with_dropout(tmp_output) -> None:
    weights = []
    for _ in range(2):
        args = _args(tmp_output, full_determinism=True, max_steps=5)
        trainer = Trainer(
            model_init=lambda: RegressionModel(dropout=0.5),
            args=args,
            train_dataset=RegressionDataset(64),
        )
        trainer.train()
        weights.append(_weights(trainer.model))
    for first, second in zip(*weights, strict=True):
        torch.testing.assert_close(first, second, rtol=0, atol=0)


def test_torch_compile_wraps_the_trained_model(tmp_output) -> None:
    args = _args(tmp_output, torch_compile=True, torch_compile_backend="eager", max_steps=2)
    trainer = Trainer(model=RegressionModel(), args=args, train_dataset=RegressionDataset(16))
    trainer.train()
    assert hasattr(trainer.model_wrapped, "_orig_mod")


def test_weighted_loss_subclass_from_the_reference_works_as_written(tmp_output) -> None:
    transformers = pytest.importorskip("transformers")

    class CustomTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False):
            labels = inputs.pop("labels")
            outputs = model(**inputs)
            logits = outputs.get("logits")
            loss_fct = nn.CrossEntropyLoss(
                weight=torch.tensor([1.0, 2.0, 3.0], device=model.device)
            )
            loss = loss_fct(logits.view(-1, self.model.config.num_labels), labels.view(-1))
            return (loss, outputs) if return_outputs else loss

    config = transformers.BertConfig(
        vocab_size=20,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=3,
    )
    ids = torch.randint(0, 20, (16, 5), generator=torch.Generator().manual_seed(0))
    dataset = [{"input_ids": row, "labels": torch.tensor(int(row[0]) % 3)} for row in ids]
    trainer = CustomTrainer(
        model=transformers.BertForSequenceClassification(config),
        args=_args(tmp_output, max_steps=2, gradient_accumulation_steps=2),
        train_dataset=dataset,
    )
    assert trainer.train().global_step == 2


def test_gradient_checkpointing_calls_the_models_enabling_method(tmp_output) -> None:
    class Checkpointable(RegressionModel):
        enabled_with = None

        def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None):
            self.enabled_with = gradient_checkpointing_kwargs or {}

    model = Checkpointable()
    args = _args(
        tmp_output,
        gradient_checkpointing=True,
        max_steps=1,
        gradient_checkpointing_kwargs={"use_reentrant": False},
    )
    Trainer(model=model, args=args, train_dataset=RegressionDataset(8)).train()
    assert model.enabled_with == {"use_reentrant": False}
    with pytest.raises(ValueError, match="gradient_checkpointing_enable"):
        Trainer(model=RegressionModel(), args=args, train_dataset=RegressionDataset(8)).train()


def test_the_reference_runtime_flags_are_off_for_one_process(tmp_output) -> None:
    trainer = Trainer(model=RegressionModel(), args=_args(tmp_output))
    assert not trainer.is_deepspeed_enabled
    assert not trainer.is_fsdp_enabled
    assert not trainer.is_fsdp_xla_enabled
