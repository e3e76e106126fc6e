"""The loop's side of a search without a search library: applying a trial's values to
the arguments, putting them back, and choosing the backend."""

from __future__ import annotations

import logging

import pytest

from trainer_args import TrainingArguments
from trainer_core import SearchBackend
from trainer_loop._hp_search import HyperparameterSearchMethods, apply_trial_values
from trainer_loop._search_backends import resolve_backend


class _DictBackend:
    """A backend whose trials are plain dicts (as Ray Tune's are)."""

    name = "dicts"

    def is_available(self) -> bool:
        return True

    def ensure_available(self) -> None: ...

    def default_hp_space(self, trial):
        return {}

    def run(self, trainer, n_trials, direction, **kwargs):
        for trial in self.trials:
            trainer._hp_search_setup(trial)
            self.seen.append((trainer.args.learning_rate, trainer.args.weight_decay))
        return "done"

    def hyperparameters(self, trainer, trial):
        return dict(trial)

    def trial_params(self, trial):
        return dict(trial)

    def trial_id(self, trial):
        return str(trial["id"])

    def report(self, trainer, trial, step, metrics):
        self.reports.append((step, trainer.objective))

    def __init__(self, trials) -> None:
        self.trials, self.seen, self.reports = trials, [], []


class _Host(HyperparameterSearchMethods):
    def __init__(self, output_dir: str) -> None:
        self.args = TrainingArguments(output_dir=output_dir, learning_rate=0.1)
        self.model_init = object
        self.hp_name = None


def test_values_take_the_fields_type_and_unknown_keys_warn(tmp_path, caplog) -> None:
    args = TrainingArguments(output_dir=str(tmp_path))
    with caplog.at_level(logging.WARNING):
        previous = apply_trial_values(
            args, {"per_device_train_batch_size": "16", "fp16": "False", "not_a_field": 1}
        )
    assert args.per_device_train_batch_size == 16 and args.fp16 is False
    assert previous == {"per_device_train_batch_size": 8, "fp16": False}
    assert "not_a_field" in caplog.text


def test_trial_values_never_leak_into_the_next_trial(tmp_path) -> None:
    host = _Host(str(tmp_path))
    backend = _DictBackend(
        [{"id": 0, "learning_rate": 0.5, "weight_decay": 0.3}, {"id": 1, "learning_rate": 0.2}]
    )
    assert host.hyperparameter_search(backend=backend) == "done"
    assert backend.seen == [(0.5, 0.3), (0.2, 0.0)]
    assert (host.args.learning_rate, host.args.weight_decay) == (0.1, 0.0)  # restored
    assert host.hp_search_backend is None


def test_a_trial_refused_half_way_leaves_no_value_behind(tmp_path) -> None:
    host = _Host(str(tmp_path))
    bad = {"id": 0, "learning_rate": 0.5, "warmup_steps": "lots"}  # the second is refused
    backend = _DictBackend([bad])
    with pytest.raises(ValueError):
        host.hyperparameter_search(backend=backend)
    assert host.args.learning_rate == 0.1  # the field set before the refusal is put back


def test_report_computes_the_objective_then_hands_it_over(tmp_path) -> None:
    host = _Host(str(tmp_path))
    backend = _DictBackend([])
    host._search_backend, host.compute_objective = backend, lambda m: m["eval_loss"] * 2
    host._report_to_hp_search({"id": 3}, 7, {"eval_loss": 1.5})
    assert host.objective == 3.0 and backend.reports == [(7, 3.0)]
    assert host._get_output_dir({"id": 3}) == str(tmp_path / "run-3")
    assert host._get_output_dir(None) == str(tmp_path)
    host.hp_name = lambda trial: f"t{trial['id']}"
    assert host._trial_record({"id": 3}) == ("t3", {"id": 3})


def test_a_backend_object_is_used_as_given_and_wandb_is_refused() -> None:
    backend = _DictBackend([])
    assert isinstance(backend, SearchBackend)
    assert resolve_backend(backend) is backend
    with pytest.raises(ValueError, match="sweep server"):
        resolve_backend("wandb")
    with pytest.raises(TypeError, match="SearchBackend"):
        resolve_backend(42)  # type: ignore[arg-type]  # the wrong type on purpose


def test_search_without_model_init_is_refused(tmp_path) -> None:
    host = _Host(str(tmp_path))
    host.model_init = None
    with pytest.raises(RuntimeError, match="model_init"):
        host.hyperparameter_search(backend=_DictBackend([]))


def test_a_trial_starts_without_the_last_trials_objective(tmp_path) -> None:
    """A backend that does not clear ``objective`` itself (the port's note) still sees
    None for a trial that has not evaluated yet, not the previous trial's score."""
    host = _Host(str(tmp_path))
    backend = _DictBackend([])
    host._search_backend, host.compute_objective = backend, lambda m: m["eval_loss"]
    host._hp_search_setup({"id": 0})
    host._report_to_hp_search({"id": 0}, 1, {"eval_loss": 0.25})
    assert host.objective == 0.25
    host._hp_search_setup({"id": 1})
    assert host.objective is None
