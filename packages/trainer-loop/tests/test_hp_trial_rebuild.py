"""What the Trainer builds from its arguments at init follows each search trial's values:
the runtime (precision, compile, DeepSpeed's "auto" values) and the label smoother, and
both come back to the user's arguments when the search ends."""

from __future__ import annotations

import torch

from trainer_args import TrainingArguments
from trainer_dist import build_runtime
from trainer_loop._hp_search import HyperparameterSearchMethods


class _TrialsBackend:
    """Runs the given trials (plain dicts) and records what each one would train with."""

    name = "trials"

    def __init__(self, trials: list[dict]) -> None:
        self.trials, self.seen = trials, []

    def is_available(self) -> bool:
        return True

    def ensure_available(self) -> None: ...

    def default_hp_space(self, trial):
        return {}

    def run(self, trainer, n_trials, direction, **kwargs):
        for trial in self.trials:
            trainer._hp_search_setup(trial)
            self.seen.append(_what_trains(trainer))
        return "done"

    def hyperparameters(self, trainer, trial):
        return {key: value for key, value in trial.items() if key != "id"}

    def trial_params(self, trial):
        return dict(trial)

    def trial_id(self, trial):
        return str(trial["id"])

    def report(self, trainer, trial, step, metrics): ...


def _what_trains(trainer) -> tuple:
    with trainer.runtime.autocast():
        autocast = torch.is_autocast_enabled("cpu")
    smoother = trainer.label_smoother
    return autocast, None if smoother is None else smoother.epsilon, trainer._train_batch_size


class _Host(HyperparameterSearchMethods):
    def __init__(self, output_dir: str) -> None:
        self.args = TrainingArguments(output_dir=output_dir, use_cpu=True)
        self.model_init = object
        self.hp_name = None
        self.runtime = build_runtime(self.args)
        self._runtime_from_args = True  # as the Trainer built it
        self.label_smoother = None
        self._train_batch_size = self.args.train_batch_size


def test_each_trial_gets_a_runtime_and_label_smoother_built_from_its_values(tmp_path) -> None:
    host = _Host(str(tmp_path))
    backend = _TrialsBackend(
        [
            {"id": 0, "bf16": True, "label_smoothing_factor": 0.2},
            {"id": 1, "per_device_train_batch_size": 2},
        ]
    )
    assert host.hyperparameter_search(backend=backend) == "done"
    assert backend.seen == [(True, 0.2, 8), (False, None, 2)]  # nothing left from trial 0
    assert _what_trains(host) == (False, None, 8)  # the user's again


def test_a_runtime_given_to_the_trainer_is_kept(tmp_path) -> None:
    host = _Host(str(tmp_path))
    own = host.runtime
    host._runtime_from_args = False  # Trainer(runtime=...)
    backend = _TrialsBackend([{"id": 0, "bf16": True, "label_smoothing_factor": 0.1}])
    host.hyperparameter_search(backend=backend)
    assert backend.seen == [(False, 0.1, 8)]  # the user's runtime, which runs in fp32
    assert host.runtime is own
