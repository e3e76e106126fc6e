"""The search fakes: the contract check catches a broken backend; the fake trainer
reports every evaluation to its backend."""

from __future__ import annotations

import threading

import pytest

from trainer_testing.search import (
    FakeSearchArgs,
    FakeSearchTrainer,
    check_search_backend_contract,
    quadratic_loss,
)


class _Backend:
    name = "dicts"

    def is_available(self) -> bool:
        return True

    def ensure_available(self) -> None: ...

    def default_hp_space(self, trial):
        return {}

    def run(self, trainer, n_trials, direction, **kwargs): ...

    def hyperparameters(self, trainer, trial):
        return dict(trial)

    def trial_params(self, trial):
        return dict(trial)

    def trial_id(self, trial):
        return "7"

    def report(self, trainer, trial, step, metrics):
        self.reports.append((step, trainer.objective))

    def __init__(self) -> None:
        self.reports: list[tuple[int, float]] = []


def test_contract_accepts_a_backend_and_rejects_an_unpicklable_one() -> None:
    backend = _Backend()
    check_search_backend_contract(backend)
    backend.lock = threading.Lock()
    with pytest.raises(TypeError):
        check_search_backend_contract(backend)


def test_fake_trainer_reports_each_evaluation(tmp_path) -> None:
    backend = _Backend()
    trainer = FakeSearchTrainer(backend, FakeSearchArgs(str(tmp_path)), evaluations=2)
    trainer.train(trial={"learning_rate": 0.1})
    expected = [(step, quadratic_loss({"learning_rate": 0.1}, step)) for step in (1, 2)]
    assert backend.reports == expected
    assert trainer.trials == [
        {"id": "7", "params": {"learning_rate": 0.1}, "steps": [1, 2], "resumed_from": None}
    ]
    assert trainer.callback_handler.calls == [2]
    assert trainer.evaluate() == {"eval_loss": expected[-1][1]}
