"""Learning-rate schedules, checked step by step against formulas written out here."""

from __future__ import annotations

import io
import json
import math
import pickle
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch.optim.lr_scheduler import LambdaLR, ReduceLROnPlateau

from trainer_args import SchedulerType, TrainingArguments
from trainer_loop import (
    SCHEDULER_NAMES,
    GreedyLR,
    create_scheduler,
    get_cosine_schedule_with_warmup,
    get_linear_schedule_with_warmup,
    get_scheduler,
)

LR = 0.1


def make_args(tmp_path: Path, **overrides: Any) -> TrainingArguments:
    return TrainingArguments(output_dir=str(tmp_path), **overrides)


def make_optimizer() -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)


def run(scheduler: Any, steps: int) -> list[float]:
    """The learning rate in force at each of ``steps`` optimizer steps."""
    rates = []
    for _ in range(steps):
        rates.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    return rates


def check(name: str, expected: Callable[[int], float], steps: int, **kwargs: Any) -> None:
    scheduler = get_scheduler(name, make_optimizer(), **kwargs)
    assert isinstance(scheduler, LambdaLR)
    assert run(scheduler, steps) == pytest.approx([LR * expected(s) for s in range(steps)])


def test_constant() -> None:
    check("constant", lambda s: 1.0, 5)
    check("constant", lambda s: 1.0, 5, num_warmup_steps=3)  # ignored, as upstream


def test_constant_with_warmup() -> None:
    check("constant_with_warmup", lambda s: s / 4 if s < 4 else 1.0, 8, num_warmup_steps=4)


def test_linear_with_warmup() -> None:
    def linear(s: int) -> float:
        return s / 3 if s < 3 else max(0.0, (10 - s) / (10 - 3))

    check("linear", linear, 13, num_warmup_steps=3, num_training_steps=10)
    rates = run(get_scheduler("linear", make_optimizer(), 3, 10), 11)
    assert rates[:4] == pytest.approx([0.0, LR / 3, 2 * LR / 3, LR])
    assert rates[10] == 0.0


def test_linear_without_warmup_starts_at_the_peak() -> None:
    check("linear", lambda s: (8 - s) / 8, 8, num_warmup_steps=0, num_training_steps=8)


@pytest.mark.parametrize("cycles", [0.5, 1.0, 2.0])
def test_cosine(cycles: float) -> None:
    def cosine(s: int) -> float:
        if s < 2:
            return s / 2
        progress = (s - 2) / (12 - 2)
        return max(0.0, 0.5 * (1 + math.cos(math.pi * 2 * cycles * progress)))

    kwargs = {} if cycles == 0.5 else {"scheduler_specific_kwargs": {"num_cycles": cycles}}
    check("cosine", cosine, 14, num_warmup_steps=2, num_training_steps=12, **kwargs)


def test_cosine_default_ends_at_zero_and_passes_half_way() -> None:
    rates = run(get_scheduler("cosine", make_optimizer(), 0, 10), 11)
    assert rates[5] == pytest.approx(LR / 2)
    assert rates[10] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("cycles", [None, 3])
def test_cosine_with_restarts(cycles: int | None) -> None:
    n = 1 if cycles is None else cycles

    def restarts(s: int) -> float:
        if s < 2:
            return s / 2
        progress = (s - 2) / (14 - 2)
        if progress >= 1:
            return 0.0
        return 0.5 * (1 + math.cos(math.pi * ((n * progress) % 1.0)))

    extra = {} if cycles is None else {"scheduler_specific_kwargs": {"num_cycles": cycles}}
    check("cosine_with_restarts", restarts, 16, num_warmup_steps=2, num_training_steps=14, **extra)


def test_cosine_with_restarts_returns_to_the_peak_at_each_cycle() -> None:
    scheduler = get_scheduler("cosine_with_restarts", make_optimizer(), 0, 12, {"num_cycles": 3})
    rates = run(scheduler, 12)
    assert rates[0] == rates[4] == rates[8] == pytest.approx(LR)


@pytest.mark.parametrize(("lr_end", "power"), [(None, None), (0.01, 2.0)])
def test_polynomial(lr_end: float | None, power: float | None) -> None:
    end = 1e-7 if lr_end is None else lr_end
    exponent = 1.0 if power is None else power

    def polynomial(s: int) -> float:
        if s < 3:
            return s / 3
        if s > 11:
            return end / LR
        remaining = 1 - (s - 3) / (11 - 3)
        return ((LR - end) * remaining**exponent + end) / LR

    extra = {} if lr_end is None else {"lr_end": lr_end, "power": power}
    check(
        "polynomial",
        polynomial,
        14,
        num_warmup_steps=3,
        num_training_steps=11,
        scheduler_specific_kwargs=extra,
    )


def test_polynomial_rejects_an_end_above_the_start() -> None:
    with pytest.raises(ValueError, match="lr_end"):
        get_scheduler("polynomial", make_optimizer(), 0, 10, {"lr_end": LR})


def test_inverse_sqrt_with_warmup_uses_it_as_timescale() -> None:
    def inverse_sqrt(s: int) -> float:
        return s / 4 if s < 4 else 1 / math.sqrt((s - 4 + 4) / 4)

    check("inverse_sqrt", inverse_sqrt, 12, num_warmup_steps=4)
    rates = run(get_scheduler("inverse_sqrt", make_optimizer(), 4), 17)
    assert rates[16] == pytest.approx(LR / 2)  # 1/sqrt(16/4)


def test_inverse_sqrt_timescale_defaults_to_ten_thousand_and_can_be_set() -> None:
    check("inverse_sqrt", lambda s: 1 / math.sqrt((s + 10_000) / 10_000), 5, num_warmup_steps=0)
    check(
        "inverse_sqrt",
        lambda s: s / 2 if s < 2 else 1 / math.sqrt((s - 2 + 5) / 5),
        9,
        num_warmup_steps=2,
        scheduler_specific_kwargs={"timescale": 5},
    )


def test_reduce_lr_on_plateau_is_torchs_and_takes_its_arguments() -> None:
    optimizer = make_optimizer()
    scheduler = get_scheduler(
        "reduce_lr_on_plateau", optimizer, scheduler_specific_kwargs={"patience": 1, "factor": 0.5}
    )
    assert isinstance(scheduler, ReduceLROnPlateau)
    rates = []
    for _ in range(5):
        optimizer.step()
        scheduler.step(1.0)  # the metric never improves
        rates.append(optimizer.param_groups[0]["lr"])
    assert rates == pytest.approx([LR, LR, LR / 2, LR / 2, LR / 4])


@pytest.mark.parametrize("floor", [{"min_lr": 0.01}, {"min_lr_rate": 0.1}])
def test_cosine_with_min_lr(floor: dict[str, float]) -> None:
    def cosine_floor(s: int) -> float:
        if s < 2:
            return s / 2
        cosine = 0.5 * (1 + math.cos(math.pi * (s - 2) / (10 - 2)))
        return cosine * (1 - 0.1) + 0.1

    check(
        "cosine_with_min_lr",
        cosine_floor,
        11,
        num_warmup_steps=2,
        num_training_steps=10,
        scheduler_specific_kwargs=floor,
    )


@pytest.mark.parametrize("floor", [{}, {"min_lr": 0.01, "min_lr_rate": 0.1}])
def test_cosine_with_min_lr_needs_exactly_one_floor(floor: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="min_lr_rate"):
        get_scheduler("cosine_with_min_lr", make_optimizer(), 0, 10, floor)


def _decay_shape(kind: str, progress: float) -> float:
    if kind == "linear":
        return 1 - progress
    if kind == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    return 1 - math.sqrt(progress)


@pytest.mark.parametrize("kind", ["linear", "cosine", "1-sqrt"])
def test_warmup_stable_decay(kind: str) -> None:
    warmup, stable, decay, floor = 4, 3, 5, 0.1
    warmup_curves = {
        "linear": lambda p: p,
        "cosine": lambda p: 0.5 * (1 - math.cos(math.pi * p)),
        "1-sqrt": lambda p: 1 - math.sqrt(1 - p),
    }

    def wsd(s: int) -> float:
        if s < warmup:
            return warmup_curves[kind](s / warmup) * (1 - floor) + floor
        if s < warmup + stable:
            return 1.0
        if s < warmup + stable + decay:
            return _decay_shape(kind, (s - warmup - stable) / decay) * (1 - floor) + floor
        return floor

    options = {"num_stable_steps": stable, "num_decay_steps": decay, "min_lr_ratio": floor}
    options |= {"warmup_type": kind, "decay_type": kind}
    check(
        "warmup_stable_decay", wsd, 15, num_warmup_steps=warmup, scheduler_specific_kwargs=options
    )


def test_warmup_stable_decay_infers_the_missing_phase_from_training_steps() -> None:
    def wsd(s: int) -> float:  # 2 warmup, 20 - 2 - 6 = 12 stable, 6 decay (cosine), floor 0
        if s < 2:
            return s / 2
        if s < 14:
            return 1.0
        return 0.5 * (1 + math.cos(math.pi * (s - 14) / 6)) if s < 20 else 0.0

    check("warmup_stable_decay", wsd, 22, num_warmup_steps=2, num_training_steps=20,
          scheduler_specific_kwargs={"num_decay_steps": 6})  # fmt: skip
    check("warmup_stable_decay", wsd, 22, num_warmup_steps=2, num_training_steps=20,
          scheduler_specific_kwargs={"num_stable_steps": 12})  # fmt: skip


def test_warmup_stable_decay_without_phase_lengths_names_the_argument() -> None:
    with pytest.raises(ValueError, match="num_decay_steps"):
        get_scheduler("warmup_stable_decay", make_optimizer(), 2, 20)
    with pytest.raises(ValueError, match="do not fit"):
        get_scheduler("warmup_stable_decay", make_optimizer(), 2, 5, {"num_decay_steps": 6})
    with pytest.raises(ValueError, match="decay_type"):
        get_scheduler(
            "warmup_stable_decay",
            make_optimizer(),
            2,
            20,
            {"num_decay_steps": 6, "decay_type": "x"},
        )


WARMUP_SCHEDULES = [
    n for n in SCHEDULER_NAMES if n not in ("constant", "reduce_lr_on_plateau", "greedy")
]
DECAYING_TO_T = ["linear", "cosine", "cosine_with_restarts", "polynomial", "cosine_with_min_lr"]


@pytest.mark.parametrize("name", WARMUP_SCHEDULES)
def test_missing_warmup_steps_is_named(name: str) -> None:
    with pytest.raises(ValueError, match="num_warmup_steps"):
        get_scheduler(name, make_optimizer(), num_training_steps=10)


@pytest.mark.parametrize("name", DECAYING_TO_T)
def test_missing_training_steps_is_named(name: str) -> None:
    with pytest.raises(ValueError, match="num_training_steps"):
        get_scheduler(name, make_optimizer(), num_warmup_steps=2)


def test_unknown_name_and_unknown_keyword_list_what_is_accepted() -> None:
    with pytest.raises(ValueError, match="cosine_with_min_lr"):
        get_scheduler("cosinus", make_optimizer(), 0, 10)
    with pytest.raises(ValueError, match="num_cycle") as caught:
        get_scheduler("cosine", make_optimizer(), 0, 10, {"num_cycle": 2})
    assert "num_cycles" in str(caught.value)
    with pytest.raises(ValueError, match="patience"):
        get_scheduler("reduce_lr_on_plateau", make_optimizer(), None, None, {"patiance": 2})


def test_step_count_given_twice_differently_is_rejected() -> None:
    with pytest.raises(ValueError, match="twice"):
        get_scheduler("linear", make_optimizer(), 2, 10, {"num_warmup_steps": 3})


def test_every_scheduler_type_is_known_and_enum_members_work() -> None:
    assert set(SCHEDULER_NAMES) == {member.value for member in SchedulerType}
    scheduler = get_scheduler(SchedulerType.LINEAR, make_optimizer(), 0, 4)
    assert run(scheduler, 4) == pytest.approx([LR, 0.75 * LR, 0.5 * LR, 0.25 * LR])


# --- create_scheduler: the arguments' view ---------------------------------------------


def test_create_scheduler_warmup_from_steps(tmp_path: Path) -> None:
    args = make_args(tmp_path, warmup_steps=3)
    rates = run(create_scheduler(args, make_optimizer(), num_training_steps=10), 11)
    assert rates == pytest.approx([LR * (s / 3 if s < 3 else (10 - s) / 7) for s in range(11)])


def test_create_scheduler_warmup_from_ratio_rounds_up(tmp_path: Path) -> None:
    args = make_args(tmp_path, warmup_ratio=0.25)  # ceil(0.25 * 10) = 3
    rates = run(create_scheduler(args, make_optimizer(), num_training_steps=10), 11)
    assert rates == pytest.approx([LR * (s / 3 if s < 3 else (10 - s) / 7) for s in range(11)])


def test_create_scheduler_without_get_warmup_steps_computes_the_ratio_itself() -> None:
    args = SimpleNamespace(lr_scheduler_type="linear", warmup_steps=0, warmup_ratio=0.25)
    rates = run(create_scheduler(args, make_optimizer(), num_training_steps=10), 11)
    assert rates == pytest.approx([LR * (s / 3 if s < 3 else (10 - s) / 7) for s in range(11)])


def test_create_scheduler_warmup_steps_win_over_ratio() -> None:
    args = SimpleNamespace(lr_scheduler_type="constant_with_warmup", warmup_steps=2,
                           warmup_ratio=0.5, lr_scheduler_kwargs=None)  # fmt: skip
    rates = run(create_scheduler(args, make_optimizer(), num_training_steps=10), 4)
    assert rates == pytest.approx([0.0, LR / 2, LR, LR])


def test_create_scheduler_fractional_warmup_steps_are_a_ratio() -> None:
    args = SimpleNamespace(lr_scheduler_type="constant_with_warmup", warmup_steps=0.2)
    rates = run(create_scheduler(args, make_optimizer(), num_training_steps=20), 5)
    assert rates == pytest.approx([0.0, LR / 4, LR / 2, 3 * LR / 4, LR])


def test_create_scheduler_reads_a_warmup_share_kept_in_training_arguments(tmp_path: Path) -> None:
    """TrainingArguments keeps transformers 5's warmup_steps=0.2 as given (warmup_ratio
    stays 0): the schedule still warms up over a fifth of the run."""
    args = make_args(tmp_path, lr_scheduler_type="constant_with_warmup", warmup_steps=0.2)
    assert (args.warmup_steps, args.warmup_ratio) == (0.2, 0.0)
    rates = run(create_scheduler(args, make_optimizer(), num_training_steps=20), 5)
    assert rates == pytest.approx([0.0, LR / 4, LR / 2, 3 * LR / 4, LR])


def test_create_scheduler_prefers_the_arguments_own_warmup_rule() -> None:
    args = SimpleNamespace(lr_scheduler_type="constant_with_warmup", warmup_steps=0,
                           get_warmup_steps=lambda total: total // 5)  # fmt: skip
    rates = run(create_scheduler(args, make_optimizer(), num_training_steps=10), 3)
    assert rates == pytest.approx([0.0, LR / 2, LR])


@pytest.mark.parametrize("options", [{"num_cycles": 1.0}, json.dumps({"num_cycles": 1.0})])
@pytest.mark.parametrize("real_arguments", [True, False])
def test_create_scheduler_passes_lr_scheduler_kwargs(
    options: Any, real_arguments: bool, tmp_path: Path
) -> None:
    settings = {"lr_scheduler_type": "cosine", "lr_scheduler_kwargs": options}
    args = make_args(tmp_path, **settings) if real_arguments else SimpleNamespace(**settings)
    rates = run(create_scheduler(args, make_optimizer(), num_training_steps=8), 9)
    assert rates == pytest.approx(
        [LR * 0.5 * (1 + math.cos(2 * math.pi * s / 8)) for s in range(9)]
    )


def test_create_scheduler_rejects_lr_scheduler_kwargs_that_are_not_a_dict() -> None:
    args = SimpleNamespace(lr_scheduler_type="cosine", warmup_steps=0, lr_scheduler_kwargs="{x")
    with pytest.raises(ValueError, match="JSON"):
        create_scheduler(args, make_optimizer(), num_training_steps=8)


# --- checkpoints: state_dict and pickling ----------------------------------------------

ROUND_TRIP_CASES = {
    "linear": {},
    "cosine": {},
    "cosine_with_restarts": {"num_cycles": 2},
    "polynomial": {"lr_end": 0.001, "power": 2.0},
    "constant": {},
    "constant_with_warmup": {},
    "inverse_sqrt": {},
    "reduce_lr_on_plateau": {"patience": 0, "factor": 0.5},
    "cosine_with_min_lr": {"min_lr_rate": 0.2},
    "cosine_warmup_with_min_lr": {"min_lr_rate": 0.2},
    "warmup_stable_decay": {"num_decay_steps": 4},
    "greedy": {"patience": 0, "factor": 0.5},
}


def build(name: str) -> Any:
    return get_scheduler(name, make_optimizer(), 2, 12, ROUND_TRIP_CASES[name])


def advance(scheduler: Any, steps: int, start: int = 0) -> list[float]:
    rates = []
    for step in range(start, start + steps):
        scheduler.optimizer.step()
        if isinstance(scheduler, (ReduceLROnPlateau, GreedyLR)):
            scheduler.step(1.0 if step % 3 else 0.5)
        else:
            scheduler.step()
        rates.append(scheduler.optimizer.param_groups[0]["lr"])
    return rates


def test_round_trip_cases_cover_every_schedule() -> None:
    assert set(ROUND_TRIP_CASES) == set(SCHEDULER_NAMES)


@pytest.mark.parametrize("name", list(ROUND_TRIP_CASES))
def test_state_dict_round_trip_through_a_weights_only_load(name: str) -> None:
    original = build(name)
    advance(original, 5)
    buffer = io.BytesIO()
    torch.save(original.state_dict(), buffer)
    buffer.seek(0)
    restored = build(name)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    # The optimizer's own learning rates travel in optimizer.pt; copy them as a resume does.
    restored.optimizer.load_state_dict(original.optimizer.state_dict())
    assert advance(restored, 6, start=5) == pytest.approx(advance(original, 6, start=5))


@pytest.mark.parametrize("name", list(ROUND_TRIP_CASES))
def test_scheduler_pickles_and_continues_identically(name: str) -> None:
    original = build(name)
    advance(original, 4)
    copy = pickle.loads(pickle.dumps(original))
    assert copy.optimizer is not original.optimizer
    assert advance(copy, 6, start=4) == pytest.approx(advance(original, 6, start=4))


def test_type_to_scheduler_function_maps_every_scheduler_type() -> None:
    from trainer_loop._schedulers import TYPE_TO_SCHEDULER_FUNCTION

    assert list(TYPE_TO_SCHEDULER_FUNCTION) == list(SchedulerType)
    assert TYPE_TO_SCHEDULER_FUNCTION[SchedulerType.LINEAR] is get_linear_schedule_with_warmup
    assert TYPE_TO_SCHEDULER_FUNCTION[SchedulerType("cosine")] is get_cosine_schedule_with_warmup


def test_get_scheduler_builds_what_the_mapping_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    from trainer_loop._schedulers import TYPE_TO_SCHEDULER_FUNCTION

    def halved(optimizer: Any, num_warmup_steps: int, num_training_steps: int) -> LambdaLR:
        return LambdaLR(optimizer, lambda step: 0.5)

    monkeypatch.setitem(TYPE_TO_SCHEDULER_FUNCTION, SchedulerType.LINEAR, halved)
    scheduler = get_scheduler("linear", make_optimizer(), 1, 10)
    assert run(scheduler, 2) == [LR / 2, LR / 2]
