"""Label smoothing against the formula: (1 - e) * NLL + e * mean over classes of -log p."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from trainer_loop import LabelSmoother


def test_matches_the_smoothed_cross_entropy_formula_and_ignores_padding() -> None:
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [1.0, 1.0, 1.0]])
    labels = torch.tensor([0, 2, -100])
    epsilon = 0.2
    log_probs = torch.log_softmax(logits[:2], dim=-1)
    nll = -log_probs[torch.arange(2), labels[:2]]
    uniform = -log_probs.mean(dim=-1)
    expected = ((1 - epsilon) * nll + epsilon * uniform).mean()
    assert LabelSmoother(epsilon)({"logits": logits}, labels).item() == pytest.approx(
        expected.item(), rel=1e-6
    )


def test_causal_shift_predicts_the_next_token() -> None:
    logits = torch.randn(1, 4, 5)
    labels = torch.tensor([[1, 2, 3, 4]])
    shifted = LabelSmoother(0.0)((logits,), labels, shift_labels=True)
    expected = torch.nn.functional.cross_entropy(logits[0, :3], labels[0, 1:])
    assert shifted.item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("count", [10, torch.tensor(10)])
@pytest.mark.parametrize("shift", [False, True])
def test_num_items_in_batch_divides_the_sum_instead_of_averaging(
    count: object, shift: bool
) -> None:
    logits = torch.randn(2, 4, 5, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([[1, 2, -100, 4], [0, -100, 3, 3]])
    smoother = LabelSmoother(0.1)
    mean = smoother({"logits": logits}, labels, shift_labels=shift)
    active = int((labels[:, 1:] if shift else labels).ne(-100).sum())
    summed = smoother({"logits": logits}, labels, shift_labels=shift, num_items_in_batch=count)
    assert summed.item() == pytest.approx(mean.item() * active / 10, rel=1e-6)


def test_a_batch_without_labelled_positions_has_a_zero_loss_not_nan() -> None:
    logits = torch.randn(2, 3, 5, requires_grad=True)
    loss = LabelSmoother(0.1)({"logits": logits}, torch.full((2, 3), -100))
    assert loss.item() == 0.0
    loss.backward()  # still part of the graph: its gradient is zero
    assert torch.count_nonzero(logits.grad) == 0


class _TokenScorer(torch.nn.Module):
    """Scores each of 4 positions over 5 classes; no loss of its own (smoothing gives it)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embedding = torch.nn.Embedding(5, 5)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None) -> dict:
        return {"logits": self.embedding(input_ids)}


def test_an_unlabelled_micro_batch_adds_nothing_to_the_logged_loss(tmp_path) -> None:
    """With accumulation, a micro-batch of padding only weighs 0 in its window: the logged
    loss is the other micro-batch's (not NaN, nor twice it after the NaN filter)."""
    from trainer_args import TrainingArguments
    from trainer_loop import Trainer

    ids = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 0], [3, 4, 0, 1]])
    labels = ids.clone()
    labels[:2] = -100  # the window's first micro-batch holds no labelled position
    rows = [{"input_ids": i, "labels": label} for i, label in zip(ids, labels, strict=True)]
    model = _TokenScorer()
    expected = LabelSmoother(0.1)(model(ids[2:]), labels[2:]).item()
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        gradient_accumulation_steps=2,
        max_steps=1,
        logging_steps=1,
        label_smoothing_factor=0.1,
        train_sampling_strategy="sequential",
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=rows)
    trainer.train()
    assert trainer.state.log_history[0]["loss"] == pytest.approx(expected, rel=1e-6)


def test_a_multi_label_classifier_keeps_its_own_loss_with_a_warning(tmp_path) -> None:
    from types import SimpleNamespace

    from trainer_args import TrainingArguments
    from trainer_loop import Trainer

    model = _TokenScorer()
    model.config = SimpleNamespace(problem_type="multi_label_classification")
    args = TrainingArguments(output_dir=str(tmp_path), label_smoothing_factor=0.1, use_cpu=True)
    with pytest.warns(UserWarning, match="ignored for a multi-label classification model"):
        trainer = Trainer(model=model, args=args)
    assert trainer.label_smoother is None


def test_is_a_dataclass_as_the_references_smoother() -> None:
    # Scripts print it, compare it, and copy it with dataclasses.replace.
    assert repr(LabelSmoother(0.2)) == "LabelSmoother(epsilon=0.2, ignore_index=-100)"
    assert LabelSmoother(0.2) == LabelSmoother(epsilon=0.2, ignore_index=-100)
    assert dataclasses.replace(LabelSmoother(0.2), ignore_index=0).ignore_index == 0
