"""Common set-up mistakes are refused at construction or before the first step, with a
message that names the mistake and the fix (found by comparing with the reference)."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
import torch
from torch import nn

from trainer_args import TrainingArguments
from trainer_core import TrainerCallback
from trainer_loop import Trainer
from trainer_loop._trainer_setup import check_first_example


class Classifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, Any]:
        logits = self.linear(x)
        if labels is None:
            return {"logits": logits}
        return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}


class StepCounter(TrainerCallback):
    def __init__(self) -> None:
        self.steps = 0

    def on_step_end(self, args, state, control, **kwargs):
        self.steps += 1


def _data(n: int = 8, **keys: str) -> list[dict[str, Any]]:
    x = torch.linspace(-1, 1, 4 * n).reshape(n, 4)
    feature, label = keys.get("feature", "x"), keys.get("label", "labels")
    return [{feature: x[i], label: int(x[i, 0] > 0)} for i in range(n)]


def _args(tmp_path, **overrides: Any) -> TrainingArguments:
    settings: dict[str, Any] = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=2,
        max_steps=2,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    settings.update(overrides)
    return TrainingArguments(**settings)


def _refused_before_a_step(trainer: Trainer, error: type[Exception], *words: str) -> None:
    counter = StepCounter()
    trainer.add_callback(counter)
    with pytest.raises(error) as caught:
        trainer.train()
    for word in words:
        assert word in str(caught.value)
    assert counter.steps == 0
    assert trainer.state.global_step == 0
    assert not any(name.startswith("checkpoint-") for name in os.listdir(trainer.args.output_dir))


# ------------------------------------------------------------- at construction
def test_a_model_on_the_meta_device_is_refused_at_construction(tmp_path) -> None:
    with torch.device("meta"):
        model = Classifier()
    with pytest.raises(ValueError, match="meta device") as caught:
        Trainer(model=model, args=_args(tmp_path), train_dataset=_data())
    assert "'linear.weight'" in str(caught.value)
    assert "to_empty" in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_gradient_checkpointing_without_support_is_refused_at_construction(tmp_path) -> None:
    args = _args(tmp_path, gradient_checkpointing=True)
    with pytest.raises(ValueError, match="gradient_checkpointing=True, but Classifier"):
        Trainer(model=Classifier(), args=args, train_dataset=_data())


def test_gradient_checkpointing_with_support_is_accepted(tmp_path) -> None:
    class Checkpointed(Classifier):
        def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None) -> None:
            self.enabled = True

    model = Checkpointed()
    args = _args(tmp_path, gradient_checkpointing=True)
    Trainer(model=model, args=args, train_dataset=_data()).train()
    assert model.enabled


def test_neither_model_nor_model_init_says_what_to_pass(tmp_path) -> None:
    with pytest.raises(RuntimeError, match="both are None") as caught:
        Trainer(args=_args(tmp_path))
    assert "model=" in str(caught.value)
    assert "model_init=" in str(caught.value)


# ---------------------------------------------------- when train() starts
def test_train_without_a_training_set_says_how_to_pass_one(tmp_path) -> None:
    trainer = Trainer(model=Classifier(), args=_args(tmp_path))
    _refused_before_a_step(trainer, ValueError, "train_dataset=", "trainer.evaluate()")


def test_zero_epochs_without_max_steps_is_refused_before_a_step(tmp_path) -> None:
    args = _args(tmp_path, max_steps=-1, num_train_epochs=0)
    trainer = Trainer(model=Classifier(), args=args, train_dataset=_data())
    _refused_before_a_step(trainer, ValueError, "num_train_epochs=0", "would run no step")


def test_zero_epochs_with_max_steps_trains_max_steps(tmp_path) -> None:
    args = _args(tmp_path, max_steps=2, num_train_epochs=0)
    trainer = Trainer(model=Classifier(), args=args, train_dataset=_data())
    assert trainer.train().global_step == 2


@pytest.mark.parametrize(
    ("eval_dataset", "where"),
    [("validation", "eval_dataset is"), ({"val": "validation"}, "eval_dataset['val']")],
)
def test_a_split_name_as_eval_dataset_is_refused_at_construction_and_before_a_step(
    tmp_path, eval_dataset: Any, where: str
) -> None:
    args = _args(tmp_path, eval_strategy="steps", eval_steps=1)
    with pytest.raises(TypeError, match=rf"{re.escape(where)}.*not a dataset"):
        Trainer(model=Classifier(), args=args, train_dataset=_data(), eval_dataset=eval_dataset)
    trainer = Trainer(model=Classifier(), args=args, train_dataset=_data())
    trainer.eval_dataset = eval_dataset  # assigned after construction: caught by train()
    _refused_before_a_step(trainer, TypeError, where, "not a dataset")


def test_text_under_a_required_input_is_refused_with_the_tokenizer_hint(tmp_path) -> None:
    data = [{"x": f"example {i}", "labels": i % 2} for i in range(8)]
    trainer = Trainer(model=Classifier(), args=_args(tmp_path), train_dataset=data)
    _refused_before_a_step(trainer, TypeError, "text under 'x'", "Tokenize the dataset")


def test_text_is_left_to_a_collator_of_the_user_s(tmp_path) -> None:
    data = [{"x": f"example {i}", "labels": i % 2} for i in range(8)]

    def collate(examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        lengths = torch.tensor([[float(len(e["x"]))] * 4 for e in examples])
        return {"x": lengths, "labels": torch.tensor([e["labels"] for e in examples])}

    args = _args(tmp_path, remove_unused_columns=False)
    trainer = Trainer(model=Classifier(), args=args, train_dataset=data, data_collator=collate)
    assert trainer.train().global_step == 2


def test_label_names_the_batches_lack_are_refused_before_a_step(tmp_path) -> None:
    args = _args(tmp_path, label_names=["target"])
    trainer = Trainer(model=Classifier(), args=args, train_dataset=_data(), eval_dataset=_data())
    _refused_before_a_step(trainer, ValueError, "label_names=['target']", "'labels', 'x'")


def test_a_label_name_the_default_collator_renames_is_explained(tmp_path) -> None:
    args = _args(tmp_path, label_names=["label"])
    data = _data(label="label")
    trainer = Trainer(model=Classifier(), args=args, train_dataset=data)
    _refused_before_a_step(trainer, ValueError, "renamed 'labels'")


@pytest.mark.parametrize("label_names", [["labels"], []])
def test_label_names_the_batches_have_or_none_on_purpose_train(tmp_path, label_names) -> None:
    args = _args(tmp_path, label_names=label_names)
    trainer = Trainer(model=Classifier(), args=args, train_dataset=_data())
    assert trainer.train().global_step == 2


def test_text_in_a_datasets_dataset_is_refused_before_a_step(tmp_path) -> None:
    datasets = pytest.importorskip("datasets")
    data = datasets.Dataset.from_dict({"x": [f"example {i}" for i in range(8)], "labels": [0] * 8})
    trainer = Trainer(model=Classifier(), args=_args(tmp_path), train_dataset=data)
    _refused_before_a_step(trainer, TypeError, "text under 'x'")


def test_a_dataset_whose_reads_have_side_effects_is_not_read(tmp_path) -> None:
    class Recording(torch.utils.data.Dataset):
        def __init__(self) -> None:
            self.reads = 0

        def __len__(self) -> int:
            return 8

        def __getitem__(self, index: int) -> dict[str, Any]:
            self.reads += 1
            return {"x": "text", "labels": index % 2}

    dataset = Recording()
    trainer = Trainer(model=Classifier(), args=_args(tmp_path), train_dataset=dataset)
    check_first_example(trainer)
    assert dataset.reads == 0


def test_an_evaluation_without_labels_says_why_compute_metrics_was_skipped(
    tmp_path, caplog
) -> None:
    calls: list[Any] = []
    unlabelled = [{"x": row["x"]} for row in _data(4)]
    trainer = Trainer(
        model=Classifier(),
        args=_args(tmp_path),
        eval_dataset=unlabelled,
        compute_metrics=lambda prediction: calls.append(prediction) or {},
    )
    with caplog.at_level("WARNING", logger="trainer_loop"):
        trainer.predict(unlabelled)  # prediction on unlabelled data is normal: no warning
        assert "compute_metrics was not called" not in caplog.text
        trainer.evaluate()
        trainer.evaluate()
    assert calls == []
    warnings = [r for r in caplog.records if "compute_metrics was not called" in r.getMessage()]
    assert len(warnings) == 1  # once per Trainer
    assert "label_names=['labels']" in warnings[0].getMessage()
