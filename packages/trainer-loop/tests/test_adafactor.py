"""Our Adafactor steps like transformers' (the reference ``optim="adafactor"`` runs), and
``optim="adafactor"`` configures it as the reference's Trainer does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from trainer_args import TrainingArguments
from trainer_loop import Adafactor, create_optimizer, get_optimizer_cls_and_kwargs

transformers = pytest.importorskip("transformers")

SETTINGS = [
    pytest.param({"lr": 1e-2, "scale_parameter": False, "relative_step": False}, id="trainer"),
    pytest.param({}, id="defaults-relative-scaled"),
    pytest.param({"lr": 1e-2, "relative_step": False}, id="scaled-external-lr"),
    pytest.param({"lr": None, "warmup_init": True, "scale_parameter": False}, id="warmup"),
    pytest.param(
        {"lr": 1e-2, "relative_step": False, "beta1": 0.9, "clip_threshold": 0.5},
        id="first-moment-clipped",
    ),
]


def _parameters() -> list[torch.nn.Parameter]:
    """A 2-D (factored), a 1-D and a 3-D parameter."""
    generator = torch.Generator().manual_seed(0)
    shapes = [(5, 3), (3,), (2, 4, 3)]
    return [torch.nn.Parameter(torch.randn(*shape, generator=generator)) for shape in shapes]


def _train(optimizer_cls: type, settings: dict[str, Any], steps: int = 6) -> list[torch.Tensor]:
    weight, bias, stack = _parameters()
    groups = [
        {"params": [weight, stack], "weight_decay": 0.1},
        {"params": [bias], "weight_decay": 0.0},
    ]
    optimizer = optimizer_cls(groups, **settings)
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        optimizer.zero_grad()
        inputs = torch.randn(4, 5, generator=generator)
        loss = (inputs @ weight + bias).pow(2).mean() + stack.sin().sum()
        loss.backward()
        optimizer.step()
    return [weight.detach(), bias.detach(), stack.detach()]


@pytest.mark.parametrize("settings", SETTINGS)
def test_steps_match_the_reference_adafactor(settings: dict[str, Any]) -> None:
    ours = _train(Adafactor, settings)
    reference = _train(transformers.Adafactor, settings)
    for mine, theirs in zip(ours, reference, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-6, atol=1e-6)


def test_a_reference_state_dict_continues_in_ours() -> None:
    settings = {"lr": 1e-2, "scale_parameter": False, "relative_step": False, "beta1": 0.9}
    params = _parameters()
    reference = transformers.Adafactor(params, **settings)
    for param in params:
        param.grad = torch.ones_like(param)
    reference.step()
    ours = Adafactor(params, **settings)
    ours.load_state_dict(reference.state_dict())
    assert ours.state[params[0]]["step"] == 1
    ours.step()
    assert ours.state[params[0]]["step"] == 2


@pytest.mark.parametrize(
    ("settings", "message"),
    [({"lr": 1e-3}, "relative_step"), ({"relative_step": False, "warmup_init": True}, "warmup")],
)
def test_contradictory_options_are_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Adafactor(_parameters(), **settings)


def test_optim_adafactor_is_ours_with_the_reference_trainers_settings(tmp_path: Path) -> None:
    args = TrainingArguments(output_dir=str(tmp_path), optim="adafactor", learning_rate=1e-3)
    optimizer_cls, kwargs = get_optimizer_cls_and_kwargs(args)
    assert optimizer_cls is Adafactor
    assert kwargs == {"lr": 1e-3, "scale_parameter": False, "relative_step": False}


def test_optim_args_reach_adafactor(tmp_path: Path) -> None:
    args = TrainingArguments(
        output_dir=str(tmp_path),
        optim="adafactor",
        optim_args="beta1=0.9,clip_threshold=0.5",
        weight_decay=0.01,
    )
    optimizer = create_optimizer(torch.nn.Linear(3, 2), args)
    assert isinstance(optimizer, Adafactor)
    assert optimizer.defaults["beta1"] == 0.9
    assert optimizer.defaults["clip_threshold"] == 0.5
    assert [group["weight_decay"] for group in optimizer.param_groups] == [0.01, 0.0]


def _schedule_trace(
    schedule_cls: type, optimizer_cls: type, settings: dict[str, Any]
) -> list[float]:
    """``get_last_lr()`` (two groups) before training and after each of three steps."""
    weight, bias, _ = _parameters()
    optimizer = optimizer_cls([{"params": [weight]}, {"params": [bias]}], **settings)
    schedule = schedule_cls(optimizer, initial_lr=0.25)
    trace = list(schedule.get_last_lr())
    assert all("initial_lr" not in group for group in optimizer.param_groups)
    for _ in range(3):
        optimizer.zero_grad()
        (weight.sum(dim=0) * bias).pow(2).sum().backward()
        optimizer.step()
        schedule.step()
        trace.extend(float(lr) for lr in schedule.get_last_lr())
    return trace


@pytest.mark.parametrize(
    "settings",
    [{}, {"warmup_init": True}, {"scale_parameter": False}, {"lr": 0.1, "relative_step": False}],
    ids=["relative-scaled", "warmup", "unscaled", "external-lr"],
)
def test_adafactor_schedule_reports_what_the_reference_schedule_does(
    settings: dict[str, Any],
) -> None:
    from transformers.optimization import AdafactorSchedule as ReferenceSchedule

    from trainer_loop import AdafactorSchedule, get_adafactor_schedule

    expected = _schedule_trace(ReferenceSchedule, transformers.Adafactor, settings)
    assert expected[:2] == [0.25, 0.25]
    assert _schedule_trace(AdafactorSchedule, Adafactor, settings) == pytest.approx(expected)
    # Ours reads the reference's optimizer too (it has the same ``_get_lr``).
    assert _schedule_trace(
        get_adafactor_schedule, transformers.Adafactor, settings
    ) == pytest.approx(expected)
