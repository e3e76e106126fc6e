"""Training a tiny MLP through the runtime reproduces a hand-written torch loop."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainer_dist import SingleProcessRuntime

STEPS = 8
MAX_NORM = 0.5


def _data() -> TensorDataset:
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(64, 6, generator=generator)
    targets = inputs @ torch.randn(6, 1, generator=generator) + 0.1
    return TensorDataset(inputs, targets)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 1))


def _hand_written_losses(
    autocast: Callable[[], contextlib.AbstractContextManager[object]],
) -> list[float]:
    model = _model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05)
    losses = []
    for inputs, targets in DataLoader(_data(), batch_size=8):
        with autocast():
            loss = nn.functional.mse_loss(model(inputs).float(), targets)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), MAX_NORM)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses


def _runtime_losses(runtime: SingleProcessRuntime, accumulation: int = 1) -> list[float]:
    model = runtime.prepare_model(_model(), training=True)
    optimizer = runtime.prepare_optimizer(torch.optim.AdamW(model.parameters(), lr=0.05))
    loader = runtime.prepare_dataloader(DataLoader(_data(), batch_size=8 // accumulation))
    losses, window = [], []
    for batch in loader:
        window.append(batch)
        if len(window) < accumulation:
            continue
        total = torch.zeros((), device=runtime.device)
        for index, (inputs, targets) in enumerate(window):
            sync = runtime.no_sync(model) if index < accumulation - 1 else contextlib.nullcontext()
            with sync, runtime.autocast():
                loss = nn.functional.mse_loss(model(inputs).float(), targets) / accumulation
            runtime.backward(loss)
            total += loss.detach()
        window.clear()
        runtime.clip_grad_norm(model.parameters(), MAX_NORM)
        assert runtime.optimizer_step(optimizer)
        model.zero_grad(set_to_none=True)
        losses.append(total.item())
    return losses


def test_fp32_loss_curve_equals_the_hand_written_loop() -> None:
    expected = _hand_written_losses(contextlib.nullcontext)
    assert len(expected) == STEPS
    assert expected[-1] < expected[0]
    assert _runtime_losses(SingleProcessRuntime(device="cpu")) == expected


def test_gradient_accumulation_with_no_sync_matches_full_batches() -> None:
    expected = _hand_written_losses(contextlib.nullcontext)
    got = _runtime_losses(SingleProcessRuntime(device="cpu"), accumulation=2)
    torch.testing.assert_close(torch.tensor(got), torch.tensor(expected), rtol=1e-5, atol=1e-6)


def test_bf16_loss_curve_matches_hand_written_autocast_and_stays_near_fp32() -> None:
    def bf16() -> contextlib.AbstractContextManager[object]:
        return torch.autocast("cpu", dtype=torch.bfloat16)

    runtime = SingleProcessRuntime(device="cpu", mixed_precision="bf16")
    got = torch.tensor(_runtime_losses(runtime))
    torch.testing.assert_close(got, torch.tensor(_hand_written_losses(bf16)), rtol=1e-3, atol=1e-4)
    fp32 = torch.tensor(_hand_written_losses(contextlib.nullcontext))
    torch.testing.assert_close(got, fp32, rtol=0.05, atol=0.02)
    assert not torch.equal(got, fp32)  # autocast really ran in bf16
