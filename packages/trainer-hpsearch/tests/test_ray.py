"""The Ray Tune backend on a real local Ray cluster, driven through a fake trainer
(trainer_testing.search, importable by Ray's workers)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from trainer_hpsearch import RayTuneBackend
from trainer_testing.search import (
    FakeSearchArgs,
    FakeSearchTrainer,
    dipping_loss,
    quadratic_loss,
)

ray = pytest.importorskip("ray")  # the package's ray extra (in its dev group)
tune = pytest.importorskip("ray.tune")


def _space(_trial: object) -> dict[str, object]:
    return {"learning_rate": tune.grid_search([1e-1, 1e-2])}


@pytest.fixture(scope="module")
def cluster():
    """One local cluster for the tests that search on one (each start costs seconds),
    started by the caller as a user's script would."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _trainer(tmp_path, **args) -> FakeSearchTrainer:
    return FakeSearchTrainer(
        RayTuneBackend(), FakeSearchArgs(str(tmp_path), **args), hp_space=_space
    )


def test_an_unpicklable_trainer_is_refused_naming_the_attribute(tmp_path) -> None:
    trainer = _trainer(tmp_path)
    trainer.lock = threading.Lock()
    with pytest.raises(TypeError, match=r"'lock' \(lock\)"):
        RayTuneBackend().run(trainer, 1, "minimize")
    assert not ray.is_initialized()  # so it runs before the tests sharing a cluster


@pytest.mark.slow
def test_two_trials_on_a_local_cluster_return_the_best_with_its_checkpoint(
    tmp_path, cluster
) -> None:
    trainer = _trainer(tmp_path)  # the backend that runs is the one the trainer reports to
    best = trainer.backend.run(trainer, 1, "minimize", keep_checkpoints_num=1, verbose=0)
    assert ray.is_initialized(), "a cluster the caller started is left running"
    assert best.hyperparameters == {"learning_rate": 1e-2}
    assert best.objective == pytest.approx(quadratic_loss({"learning_rate": 1e-2}, 3))
    analysis = best.run_summary
    assert len(analysis.trials) == 2
    for trial in analysis.trials:  # every evaluation was reported with the objective
        assert trial.last_result["training_iteration"] == 3
        expected = quadratic_loss(trial.config, 3)
        assert trial.last_result["objective"] == pytest.approx(expected)
        assert trial.last_result["eval_loss"] == pytest.approx(expected)
    # keep_checkpoints_num: each evaluation saved a checkpoint, the last one is kept
    best_trial = next(t for t in analysis.trials if t.trial_id == best.run_id)
    checkpoint = analysis.get_last_checkpoint(best_trial)
    with checkpoint.as_directory() as folder:
        state = json.loads(Path(folder, "checkpoint-3", "fake_state.json").read_text())
    assert state["step"] == 3
    assert str(tmp_path) in analysis.experiment_path  # results under output_dir/ray_results
    assert os.path.basename(analysis.experiment_path).startswith("_objective_")  # as upstream


@pytest.mark.slow
def test_ray_scope_ranks_trials_by_the_reports_it_names(tmp_path, cluster) -> None:
    """ray_scope="all" picks the trial with the best report at any evaluation, where
    "last" (the default) would pick the one that ended best."""
    trainer = FakeSearchTrainer(
        RayTuneBackend(),
        FakeSearchArgs(str(tmp_path), ray_scope="all"),
        hp_space=_space,
        loss=dipping_loss,
    )
    best = trainer.backend.run(trainer, 1, "minimize", verbose=0)
    assert best.hyperparameters == {"learning_rate": 1e-1}  # dipped to 0.5 at step 2
    assert best.objective == pytest.approx(2.0)  # the objective is its last report
    by_last = best.run_summary.get_best_trial(metric="objective", mode="min", scope="last")
    assert by_last.config == {"learning_rate": 1e-2}


def test_a_scheduler_needing_evaluations_requires_evaluation_during_training(tmp_path) -> None:
    from ray.tune.schedulers import PopulationBasedTraining

    trainer = _trainer(tmp_path, eval_strategy="no")
    with pytest.raises(RuntimeError, match="eval_strategy"):
        RayTuneBackend().run(
            trainer,
            1,
            "minimize",
            scheduler=PopulationBasedTraining(hyperparam_mutations={"learning_rate": [0.1]}),
        )


def test_population_based_training_saves_a_checkpoint_at_each_evaluation(tmp_path) -> None:
    from ray.tune.schedulers import PopulationBasedTraining

    backend = RayTuneBackend()
    backend._tune_options(
        _trainer(tmp_path),
        {"scheduler": PopulationBasedTraining(hyperparam_mutations={"learning_rate": [0.1]})},
    )
    assert backend.checkpoint_each_evaluation


@pytest.mark.parametrize(("n_gpu", "expected"), [(0, {"cpu": 1}), (2, {"cpu": 1, "gpu": 1})])
def test_each_trial_reserves_a_gpu_when_the_arguments_train_on_one(
    tmp_path, n_gpu: int, expected: dict[str, int]
) -> None:
    # Ray hides unreserved GPUs from a trial; the caller's own choice is kept.
    backend = RayTuneBackend()
    options = backend._tune_options(_trainer(tmp_path, n_gpu=n_gpu), {})
    assert options["resources_per_trial"] == expected
    mine = {"cpu": 2, "gpu": 0}
    options = backend._tune_options(_trainer(tmp_path, n_gpu=n_gpu), {"resources_per_trial": mine})
    assert options["resources_per_trial"] == mine


def test_several_directions_are_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="single objective"):
        RayTuneBackend().run(_trainer(tmp_path), 1, ["minimize", "maximize"])
