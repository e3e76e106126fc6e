"""The SigOpt backend against trainer-testing's local SigOpt server.

SigOpt's service cannot run here: LocalSigOptServer speaks SigOpt's REST API as the
installed ``sigopt`` 8 client calls it (token, projects, AI Experiments, training runs,
best runs), and the client is pointed at it through SIGOPT_API_URL / SIGOPT_API_TOKEN.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from trainer_hpsearch import SigOptBackend, default_hp_space_sigopt
from trainer_testing import LocalSigOptServer
from trainer_testing.search import FakeSearchArgs, FakeSearchTrainer, quadratic_loss

_SPACE = [
    {
        "name": "learning_rate",
        "type": "double",
        "bounds": {"min": 1e-4, "max": 1.0},
        "transformation": "log",
    },
    {
        "name": "per_device_train_batch_size",
        "type": "categorical",
        "categorical_values": ["8", "16"],
    },
]


@pytest.fixture
def server(monkeypatch) -> Iterator[LocalSigOptServer]:
    with LocalSigOptServer(projects=("huggingface",)) as local:
        for key, value in local.env().items():
            monkeypatch.setenv(key, value)
        local.point_client()
        yield local


def _trainer(tmp_path, space=_SPACE) -> FakeSearchTrainer:
    return FakeSearchTrainer(
        SigOptBackend(), FakeSearchArgs(str(tmp_path)), hp_space=lambda _: space
    )


def test_runs_the_budget_and_returns_the_best_run(server, tmp_path) -> None:
    trainer = _trainer(tmp_path)
    best = SigOptBackend().run(trainer, 3, "minimize")

    (experiment,) = server.experiments.values()
    assert experiment["type"] == "offline" and experiment["budget"] == 3
    assert experiment["parallel_bandwidth"] == 1
    assert experiment["metrics"] == [
        {"name": "objective", "objective": "minimize", "strategy": "optimize"}
    ]
    assert experiment["project"] == "huggingface"
    assert [t["id"] for t in trainer.trials] == list(server.runs)
    logged = {}
    for run_id, run in server.runs.items():
        assert run["state"] == "completed"
        logged[run_id] = run["values"]["objective"]["value"]
    for record in trainer.trials:  # the fake trained with the values SigOpt assigned
        assert logged[record["id"]] == pytest.approx(quadratic_loss(record["params"], 3))
        assert record["params"]["per_device_train_batch_size"] in (8, 16)  # numbers again
    assert best.run_id == min(logged, key=logged.get)
    assert best.objective == pytest.approx(logged[best.run_id])
    assert best.hyperparameters == trainer.trials[int(best.run_id) - 1]["params"]


def test_maximize_and_custom_project_and_name(server, tmp_path) -> None:
    server.projects["mine"] = {"object": "project", "id": "mine", "client": "1"}
    trainer = _trainer(tmp_path)
    best = SigOptBackend().run(trainer, 2, "maximize", project="mine", name="my-search")
    (experiment,) = server.experiments.values()
    assert (experiment["project"], experiment["name"]) == ("mine", "my-search")
    logged = [run["values"]["objective"]["value"] for run in server.runs.values()]
    assert best.objective == pytest.approx(max(logged))


def test_default_space_is_accepted_by_the_api(server, tmp_path) -> None:
    trainer = _trainer(tmp_path, space=default_hp_space_sigopt(None))
    SigOptBackend().run(trainer, 1, "minimize")
    params = trainer.trials[0]["params"]
    assert 1e-6 <= params["learning_rate"] <= 1e-4
    assert params["per_device_train_batch_size"] in (4, 8, 16, 32, 64)


def test_several_directions_are_refused(server, tmp_path) -> None:
    with pytest.raises(ValueError, match="single objective"):
        SigOptBackend().run(_trainer(tmp_path), 1, ["minimize", "maximize"])
