"""The optuna backend with real studies, driven through a fake trainer whose objective
is a known function of the trial's learning rate."""

from __future__ import annotations

import pytest

from trainer_hpsearch import OptunaBackend
from trainer_testing.search import FakeSearchArgs, FakeSearchTrainer, quadratic_loss

optuna = pytest.importorskip("optuna")  # the package's optuna extra (in its dev group)


def _space(trial: optuna.Trial) -> dict[str, float]:
    return {"learning_rate": trial.suggest_float("learning_rate", 1e-4, 1.0, log=True)}


def _trainer(tmp_path, **kwargs) -> FakeSearchTrainer:
    return FakeSearchTrainer(
        OptunaBackend(), FakeSearchArgs(str(tmp_path)), hp_space=_space, **kwargs
    )


def _sampler() -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=0)


def test_best_run_is_the_trial_with_the_lowest_objective(tmp_path) -> None:
    trainer = _trainer(tmp_path)
    best = OptunaBackend().run(trainer, 4, "minimize", sampler=_sampler())
    objectives = {t["id"]: quadratic_loss(t["params"], 3) for t in trainer.trials}
    assert [t["id"] for t in trainer.trials] == ["0", "1", "2", "3"]
    assert best.run_id == min(objectives, key=objectives.get)
    assert best.objective == pytest.approx(objectives[best.run_id])
    assert best.hyperparameters == trainer.trials[int(best.run_id)]["params"]


def test_maximize_picks_the_highest_objective(tmp_path) -> None:
    trainer = _trainer(tmp_path)
    best = OptunaBackend().run(trainer, 3, "maximize", sampler=_sampler())
    objectives = [quadratic_loss(t["params"], 3) for t in trainer.trials]
    assert best.objective == pytest.approx(max(objectives))


def test_one_direction_in_a_list_is_a_single_objective_study(tmp_path) -> None:
    trainer = _trainer(tmp_path)
    best = OptunaBackend().run(trainer, 2, ["minimize"], sampler=_sampler())
    objectives = [quadratic_loss(t["params"], 3) for t in trainer.trials]
    assert best.objective == pytest.approx(min(objectives))  # one BestRun, as the reference


def test_study_arguments_reach_create_study(tmp_path) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    options = {"storage": storage, "study_name": "s", "sampler": _sampler()}
    OptunaBackend().run(_trainer(tmp_path), 2, "minimize", **options)
    OptunaBackend().run(_trainer(tmp_path), 1, "minimize", load_if_exists=True, **options)
    assert len(optuna.load_study(study_name="s", storage=storage).trials) == 3


def test_optimize_arguments_reach_optimize(tmp_path) -> None:
    def fails_on_large_rates(params, step):
        if params["learning_rate"] > 0.01:
            raise ValueError("diverged")
        return quadratic_loss(params, step)

    trainer = _trainer(tmp_path, loss=fails_on_large_rates)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    OptunaBackend().run(
        trainer,
        6,
        "minimize",
        sampler=_sampler(),
        catch=(ValueError,),
        storage=storage,
        study_name="c",
    )
    states = {t.state for t in optuna.load_study(study_name="c", storage=storage).trials}
    assert states == {optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE}


def test_several_directions_return_the_pareto_front(tmp_path) -> None:
    def objectives(metrics: dict[str, float]) -> list[float]:
        return [metrics["eval_loss"], -(metrics["eval_loss"] ** 2)]

    trainer = _trainer(tmp_path)
    trainer.compute_objective = objectives
    front = OptunaBackend().run(trainer, 3, ["minimize", "minimize"], sampler=_sampler())
    assert isinstance(front, list) and front
    for best in front:
        params = trainer.trials[int(best.run_id)]["params"]
        assert best.objective == pytest.approx(objectives({"eval_loss": quadratic_loss(params, 3)}))


def test_pruned_trial_ends_training_early_and_cleanly(tmp_path) -> None:
    trainer = _trainer(tmp_path)
    pruner = optuna.pruners.ThresholdPruner(upper=1.5)  # prunes any objective above 1.5
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    OptunaBackend().run(
        trainer,
        5,
        "minimize",
        sampler=_sampler(),
        pruner=pruner,
        storage=storage,
        study_name="p",
    )
    study = optuna.load_study(study_name="p", storage=storage)
    pruned = [t.number for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, "the sampler's seed should produce at least one bad learning rate"
    for record in trainer.trials:
        expected = [1] if int(record["id"]) in pruned else [1, 2, 3]
        assert record["steps"] == expected
    # on_train_end ran for every trial: at step 1 for pruned ones, at the end otherwise
    assert trainer.callback_handler.calls == [
        1 if int(r["id"]) in pruned else 3 for r in trainer.trials
    ]
