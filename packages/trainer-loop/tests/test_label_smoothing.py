"""Label smoothing against the formula: (1 - e) * NLL + e * mean over classes of -log p."""

from __future__ import annotations

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
