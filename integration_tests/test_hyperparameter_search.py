"""Trainer.hyperparameter_search end to end: the real Trainer, a tiny regression model
built by model_init, and the real optuna / Ray Tune / SigOpt clients (SigOpt against
trainer-testing's local server, which speaks SigOpt's REST API: the service cannot run
here)."""

from __future__ import annotations

import os

import pytest

from trainer import Trainer, TrainerCallback, TrainingArguments
from trainer_core import HPSearchBackend, UnknownPluginError
from trainer_testing import LocalSigOptServer
from trainer_testing.models import RegressionDataset, RegressionModel

optuna = pytest.importorskip("optuna")  # installed with trainer[optuna]


def _args(output_dir: str, **overrides) -> TrainingArguments:
    defaults = dict(
        output_dir=output_dir,
        per_device_train_batch_size=8,
        learning_rate=0.1,
        lr_scheduler_type="constant",
        max_steps=4,
        eval_strategy="steps",
        eval_steps=2,
        save_strategy="steps",
        save_steps=4,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
    )
    defaults.update(overrides)
    return TrainingArguments(**defaults)


class _Recorder(TrainerCallback):
    """One record per trial: the arguments and learning rate it trained with."""

    def __init__(self, trainer_ref: list[Trainer]) -> None:
        self.trainer_ref = trainer_ref
        self.trials: list[dict] = []

    def on_train_begin(self, args, state, control, **kwargs):
        self.trials.append(
            {
                "backend": self.trainer_ref[0].hp_search_backend,
                "args_lr": args.learning_rate,
                "weight_decay": args.weight_decay,
                "batch_size": args.per_device_train_batch_size,
                "trial_name": state.trial_name,
                "trial_params": state.trial_params,
                "optimizer_lrs": set(),
                "steps": 0,
            }
        )

    def on_step_end(self, args, state, control, optimizer=None, **kwargs):
        self.trials[-1]["optimizer_lrs"].add(optimizer.param_groups[0]["lr"])
        self.trials[-1]["steps"] = state.global_step

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self.trials[-1]["eval_loss"] = metrics["eval_loss"]


def _trainer(output_dir: str, **overrides) -> tuple[Trainer, _Recorder]:
    ref: list[Trainer] = []
    recorder = _Recorder(ref)
    trainer = Trainer(
        # A lambda: RegressionModel's own parameter would receive the trial, and Ray's
        # workers unpickle a lambda by value (this module is not importable there).
        model_init=lambda: RegressionModel(),  # noqa: PLW0108
        args=_args(output_dir, **overrides),
        train_dataset=RegressionDataset(32),
        eval_dataset=RegressionDataset(16, seed=1),
        callbacks=[recorder],
    )
    ref.append(trainer)
    return trainer, recorder


def _space(trial: optuna.Trial) -> dict[str, float]:
    values = {"learning_rate": trial.suggest_float("learning_rate", 1e-3, 0.3, log=True)}
    if trial.number % 2 == 0:  # only even trials change weight_decay: it must not leak
        values["weight_decay"] = 0.5
    return values


@pytest.mark.slow  # about 5 s: the first search of the module pays for optuna's import
def test_optuna_search_applies_each_trials_values_and_returns_the_best(tmp_output) -> None:
    trainer, recorder = _trainer(tmp_output)
    sampler = optuna.samplers.RandomSampler(seed=0)
    best = trainer.hyperparameter_search(
        _space, n_trials=3, direction="minimize", sampler=sampler
    )  # no backend named: optuna is the first installed

    assert len(recorder.trials) == 3
    for number, trial in enumerate(recorder.trials):
        lr = trial["trial_params"]["learning_rate"]
        assert trial["backend"] == HPSearchBackend.OPTUNA
        assert trial["args_lr"] == lr and trial["optimizer_lrs"] == {lr}  # trained with it
        assert trial["weight_decay"] == (0.5 if number % 2 == 0 else 0.0)  # no leak
        assert trial["trial_name"] is None
        run = os.path.join(tmp_output, f"run-{number}")
        assert os.listdir(run) == ["checkpoint-4"]
    losses = [trial["eval_loss"] for trial in recorder.trials]
    assert best.objective == min(losses)
    assert best.run_id == str(losses.index(min(losses)))
    assert best.hyperparameters == recorder.trials[int(best.run_id)]["trial_params"]
    assert not any(name.startswith("checkpoint-") for name in os.listdir(tmp_output))
    # after the search: the arguments are the user's again and no backend is set
    assert (trainer.args.learning_rate, trainer.args.weight_decay) == (0.1, 0.0)
    assert trainer.hp_search_backend is None


class _PruneOddTrials(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.number % 2 == 1


def test_a_pruned_trial_stops_at_its_first_evaluation(tmp_output) -> None:
    trainer, recorder = _trainer(tmp_output, eval_steps=1)
    ended: list[int] = []

    class EndRecorder(TrainerCallback):
        def on_train_end(self, args, state, control, **kwargs):
            ended.append(state.global_step)

    trainer.add_callback(EndRecorder())
    best = trainer.hyperparameter_search(
        lambda trial: {"learning_rate": trial.suggest_float("learning_rate", 0.01, 0.1)},
        n_trials=2,
        backend="optuna",
        hp_name=lambda trial: f"trial-{trial.number}",
        pruner=_PruneOddTrials(),
    )
    assert [trial["steps"] for trial in recorder.trials] == [4, 1]
    assert ended == [4, 1]  # the pruned trial ended cleanly, at step 1
    assert [trial["trial_name"] for trial in recorder.trials] == ["trial-0", "trial-1"]
    assert os.path.isdir(os.path.join(tmp_output, "trial-0", "checkpoint-4"))
    assert best.run_id == "0"
    assert trainer.args.learning_rate == 0.1


def test_several_directions_return_the_pareto_front(tmp_output) -> None:
    trainer, recorder = _trainer(tmp_output, max_steps=2, save_strategy="no")
    front = trainer.hyperparameter_search(
        lambda trial: {"learning_rate": trial.suggest_float("learning_rate", 0.01, 0.1)},
        compute_objective=lambda metrics: [metrics["eval_loss"], -metrics["eval_loss"]],
        n_trials=2,
        direction=["minimize", "minimize"],
        backend=HPSearchBackend.OPTUNA,
    )
    assert len(front) == 2  # each trial is on the front of a loss and its negation
    assert sorted(run.objective[0] for run in front) == sorted(
        t["eval_loss"] for t in recorder.trials
    )


@pytest.mark.slow
def test_ray_tune_runs_two_trials_end_to_end(tmp_output) -> None:
    import ray
    from ray import tune

    trainer, _ = _trainer(tmp_output)
    trainer.pop_callback(_Recorder)  # defined in a test module Ray's workers cannot import
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        best = trainer.hyperparameter_search(
            lambda _: {"learning_rate": tune.grid_search([1e-3, 0.2])},
            n_trials=1,
            backend="ray",
            verbose=0,
        )
    finally:
        ray.shutdown()
    trials = best.run_summary.trials
    assert len(trials) == 2
    objectives = {t.trial_id: t.last_result["objective"] for t in trials}
    assert best.run_id == min(objectives, key=objectives.get)
    assert best.hyperparameters == {"learning_rate": 0.2}  # a tiny rate barely moves
    for trial in trials:  # the trial trained with its rate, checkpointing under run-<id>
        assert trial.last_result["eval_loss"] == objectives[trial.trial_id]
        assert os.path.isdir(os.path.join(tmp_output, f"run-{trial.trial_id}", "checkpoint-4"))
    assert trainer.model is not None and trainer.args.learning_rate == 0.1


def test_sigopt_search_casts_categorical_values_to_the_argument_type(tmp_output, monkeypatch):
    space = [
        {"name": "learning_rate", "type": "double", "bounds": {"min": 0.01, "max": 0.1}},
        {
            "name": "per_device_train_batch_size",
            "type": "categorical",
            "categorical_values": ["4", "16"],
        },
    ]
    trainer, recorder = _trainer(tmp_output, max_steps=2, save_strategy="no")
    with LocalSigOptServer(projects=("huggingface",)) as server:
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        server.point_client()
        best = trainer.hyperparameter_search(lambda _: space, n_trials=2, backend="sigopt")
    for trial, run in zip(recorder.trials, server.runs.values(), strict=True):
        assert trial["batch_size"] == int(run["assignments"]["per_device_train_batch_size"])
        assert trial["args_lr"] == run["assignments"]["learning_rate"]
        assert run["values"]["objective"]["value"] == trial["eval_loss"]
    assert best.objective == min(trial["eval_loss"] for trial in recorder.trials)


def test_search_without_model_init_says_to_pass_one(tmp_output) -> None:
    trainer = Trainer(model=RegressionModel(), args=_args(tmp_output))
    with pytest.raises(RuntimeError, match="model_init"):
        trainer.hyperparameter_search(n_trials=1)


def test_unknown_backend_lists_the_installed_ones(tmp_output) -> None:
    trainer, _ = _trainer(tmp_output)
    with pytest.raises(UnknownPluginError, match="'optuna' \\(from trainer-hpsearch\\)"):
        trainer.hyperparameter_search(n_trials=1, backend="hyperopt")
    assert trainer.hp_search_backend is None


def test_wandb_backend_is_refused_with_the_reason(tmp_output) -> None:
    trainer, _ = _trainer(tmp_output)
    with pytest.raises(ValueError, match="sweep server"):
        trainer.hyperparameter_search(n_trials=1, backend="wandb")
