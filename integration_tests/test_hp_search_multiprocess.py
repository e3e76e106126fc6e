"""``Trainer.hyperparameter_search`` under 2 processes (torchrun, gloo): the main process
runs the optuna study (or the SigOpt experiment) and sends each trial's values to the
other, both train the trial together as one DDP group, and both return the same best
run, which is the best run of the same search in one process with the same global batch.

This file is also the script the tests launch, one process per rank:

    torchrun --nproc_per_node 2 test_hp_search_multiprocess.py <scenario> <out>
    python test_hp_search_multiprocess.py single <out>

Each process writes what it saw to ``<out>/rank<r>.json``. Three launches: ``single``
(1 process), ``optuna,sigopt`` (2 processes: the optuna searches, then the SigOpt one
against a local server, in the same group; each launch costs seconds of start-up) and
``fail`` (2 processes), which needs a launch of its own: its group must be created with
a short collective timeout, and the failed trial leaves that group unusable.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

# ------------------------------------------------------------------ the launched script
PER_PROCESS_BATCH = 2  # 2 processes x 2 = the 1-process batch of 4


def _space(trial: Any) -> dict[str, Any]:
    return {
        "learning_rate": trial.suggest_float("learning_rate", 1e-3, 0.2, log=True),
        "warmup_steps": trial.suggest_int("warmup_steps", 0, 2),
    }


def _trainer(out: str, processes: int, **overrides: Any) -> tuple[Any, list[dict[str, Any]]]:
    """A Trainer over test_distributed_worker's tiny regressor; the list receives one
    record per trial this process trained."""
    from test_distributed_worker import make_dataset, make_model, training_args

    from trainer import Trainer, TrainerCallback

    trials: list[dict[str, Any]] = []
    options: dict[str, Any] = {
        "per_device_train_batch_size": PER_PROCESS_BATCH * (2 // processes),
        "per_device_eval_batch_size": PER_PROCESS_BATCH * (2 // processes),
        "num_train_epochs": 1,
        "eval_strategy": "steps",
        "eval_steps": 2,
        "save_strategy": "steps",
        "save_steps": 4,
        "lr_scheduler_type": "constant_with_warmup",
        **overrides,
    }

    class Recorder(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            from test_distributed_worker import group_facts

            trials.append({"group": group_facts(), "world_size": args.world_size, "evals": []})

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            trials[-1]["evals"].append([state.global_step, metrics["eval_loss"]])

        def on_train_end(self, args, state, control, model=None, **kwargs):
            from test_distributed_worker import weights_of

            trials[-1].update(
                name=state.trial_name,
                params=state.trial_params,
                lr=args.learning_rate,
                step=state.global_step,
                weights=weights_of(model.state_dict()),
            )

    trainer = Trainer(
        model_init=make_model,
        args=training_args(out, **options),
        train_dataset=make_dataset(16),
        eval_dataset=make_dataset(8),
        callbacks=[Recorder()],
    )
    return trainer, trials


def _best(best: Any) -> dict[str, Any]:
    return {"run_id": best.run_id, "objective": best.objective, "params": best.hyperparameters}


def _basic_search(out: str, processes: int) -> dict[str, Any]:
    import optuna

    trainer, trials = _trainer(out, processes)
    sampler = optuna.samplers.RandomSampler(seed=0)
    best = trainer.hyperparameter_search(_space, n_trials=3, backend="optuna", sampler=sampler)
    return {"best": _best(best), "trials": trials, "lr_after": trainer.args.learning_rate}


def _pruned_search(out: str) -> dict[str, Any]:
    import optuna

    class PruneOddTrials(optuna.pruners.BasePruner):
        def prune(self, study: Any, trial: Any) -> bool:
            return trial.number % 2 == 1

    trainer, trials = _trainer(out, 2, eval_steps=1)
    best = trainer.hyperparameter_search(
        _space,
        n_trials=3,
        backend="optuna",
        hp_name=lambda trial: f"trial-{trial.number}",
        sampler=optuna.samplers.RandomSampler(seed=1),
        pruner=PruneOddTrials(),
    )
    return {"best": _best(best), "trials": trials}


def _pareto_search(out: str) -> dict[str, Any]:
    import optuna

    trainer, trials = _trainer(out, 2, save_strategy="no")
    front = trainer.hyperparameter_search(
        _space,
        compute_objective=lambda metrics: [metrics["eval_loss"], metrics["eval_loss"] ** 0.5],
        n_trials=2,
        direction=["minimize", "maximize"],
        backend="optuna",
        sampler=optuna.samplers.RandomSampler(seed=2),
    )
    return {"front": [_best(best) for best in front], "trials": trials}


def _failing_search(out: str) -> dict[str, Any]:
    """Rank 1's model_init raises in the second trial; the process stays alive, so rank 0
    can only learn it from the collective's timeout (ddp_timeout)."""
    import torch.distributed as dist
    from test_distributed_worker import make_model

    def model_init() -> Any:
        if dist.get_rank() == 1 and len(trials) == 1:
            raise ValueError("model_init failed on rank 1")
        return make_model()

    trainer, trials = _trainer(out, 2, save_strategy="no", ddp_timeout=5)
    trainer.model_init = model_init
    start = time.monotonic()
    try:
        trainer.hyperparameter_search(_space, n_trials=3, backend="optuna")
    except Exception as error:  # the error is the report
        return {"error": f"{type(error).__name__}: {error}", "seconds": time.monotonic() - start}
    return {"error": None, "seconds": time.monotonic() - start}


def _sigopt_search(out: str) -> dict[str, Any]:
    space = [{"name": "learning_rate", "type": "double", "bounds": {"min": 0.01, "max": 0.1}}]
    trainer, trials = _trainer(out, 2, save_strategy="no")
    best = trainer.hyperparameter_search(lambda _: space, n_trials=2, backend="sigopt")
    return {"best": _best(best), "trials": trials}


def _write(out: str, rank: int, report: dict[str, Any]) -> None:
    with open(os.path.join(out, f"rank{rank}.json"), "w", encoding="utf-8") as handle:
        json.dump(report, handle)


def _optuna_searches(out: str) -> dict[str, Any]:
    return {
        "basic": _basic_search(os.path.join(out, "basic"), 2),
        "pruned": _pruned_search(os.path.join(out, "pruned")),
        "pareto": _pareto_search(os.path.join(out, "pareto")),
    }


def main(scenarios: str, out: str) -> None:
    """Run ``scenarios`` (comma-separated: ``optuna,sigopt`` runs both searches one after
    the other in the same group) in this process; write their report and leave."""
    from _worker_exit import leave_group_and_exit

    rank = int(os.environ.get("RANK", "0"))
    if scenarios == "fail":  # the group is broken, so leave without its barrier
        _write(out, rank, _failing_search(out))
        while rank == 1 and not os.path.exists(os.path.join(out, "rank0.json")):
            time.sleep(0.2)  # stay in the group until rank 0 has given up on it
        sys.stdout.flush()
        os._exit(0)
    report: dict[str, Any] = {}
    for scenario in scenarios.split(","):
        if scenario == "single":
            report["basic"] = _basic_search(os.path.join(out, "basic"), 1)
        elif scenario == "optuna":
            report.update(_optuna_searches(out))
        elif scenario == "sigopt":
            report["sigopt"] = _sigopt_search(os.path.join(out, "sigopt"))
        else:
            raise SystemExit(f"unknown scenario {scenario!r}")
    _write(out, rank, report)
    leave_group_and_exit()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])


# ---------------------------------------------------------------------------- the tests
pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]
optuna = pytest.importorskip("optuna")


def _helpers() -> ModuleType:
    """test_distributed_worker.py: the launch helpers (loaded by path, as the other
    multi-process tests load it; this module is a launched script too)."""
    from ._scripts import load_script

    return load_script("test_distributed_worker.py")


def _launch(
    out: Path, scenario: str, processes: int = 2, timeout: float = 90
) -> list[dict[str, Any]]:
    worker = _helpers()
    if processes == 1:
        command = [sys.executable]
    else:
        port = str(worker.free_port())
        command = [str(worker.BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", port]
    command += [__file__, scenario, str(out)]
    return worker.run_launched(command, out, processes, timeout=timeout)


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _launch(tmp_path_factory.mktemp("single"), "single", processes=1)[0]["basic"]


@pytest.fixture(scope="module")
def searches(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The 2-process launch: the optuna searches, then (when the ``sigopt`` client is
    installed) the SigOpt one, driven by a local server; what the server recorded too."""
    from trainer_testing import LocalSigOptServer

    out = tmp_path_factory.mktemp("optuna")
    sigopt = importlib.util.find_spec("sigopt") is not None
    server = LocalSigOptServer(projects=("huggingface",))
    with server, pytest.MonkeyPatch.context() as environment:
        for key, value in server.env().items():
            environment.setenv(key, value)  # the launched processes inherit it
        # Two searches' worth of work: more time than a single search gets.
        reports = _launch(out, "optuna,sigopt" if sigopt else "optuna", timeout=150)
    return {"out": out, "reports": reports, "sigopt_runs": list(server.runs.values())}


@pytest.fixture(scope="module")
def launched(searches: dict[str, Any]) -> tuple[Path, list[dict[str, Any]]]:
    return searches["out"], searches["reports"]


def _max_difference(left: dict[str, list[float]], right: dict[str, list[float]]) -> float:
    return _helpers().max_difference(left, right)


def test_every_process_trains_each_trial_in_one_group_and_returns_the_same_best(launched):
    out, (first, second) = launched
    assert first["basic"]["best"] == second["basic"]["best"]
    assert len(first["basic"]["trials"]) == len(second["basic"]["trials"]) == 3
    for mine, theirs in zip(first["basic"]["trials"], second["basic"]["trials"], strict=True):
        assert mine["group"] == {"world_size": 2, "ranks": [0, 1]} and mine["world_size"] == 2
        assert mine["params"] == theirs["params"] and mine["lr"] == mine["params"]["learning_rate"]
        assert mine["name"] is None and mine["evals"] == theirs["evals"]
        assert _max_difference(mine["weights"], theirs["weights"]) == 0.0
    for number in range(3):  # one checkpoint folder a trial, written by the main process
        assert os.listdir(out / "basic" / f"run-{number}") == ["checkpoint-4"]
    assert first["basic"]["lr_after"] == second["basic"]["lr_after"] == 0.05


def test_the_search_matches_the_one_process_search_with_the_same_global_batch(launched, single):
    two = launched[1][0]["basic"]
    assert [trial["params"] for trial in two["trials"]] == [t["params"] for t in single["trials"]]
    for trial, alone in zip(two["trials"], single["trials"], strict=True):
        assert trial["step"] == alone["step"] == 4  # the gradients were averaged: same steps
        assert _max_difference(trial["weights"], alone["weights"]) < 1e-5
    assert two["best"]["run_id"] == single["best"]["run_id"]
    assert two["best"]["params"] == single["best"]["params"]
    assert two["best"]["objective"] == pytest.approx(single["best"]["objective"], rel=1e-5)


def test_a_pruned_trial_stops_on_every_process_at_the_same_step(launched):
    out, (first, second) = launched
    assert first["pruned"]["best"] == second["pruned"]["best"]
    for report in (first, second):
        trials = report["pruned"]["trials"]
        assert [trial["step"] for trial in trials] == [4, 1, 4]  # trial 1 pruned at step 1
        assert [trial["name"] for trial in trials] == ["trial-0", "trial-1", "trial-2"]
    assert first["pruned"]["best"]["run_id"] in ("0", "2")
    assert sorted(os.listdir(out / "pruned")) == ["trial-0", "trial-2"]


def test_a_multi_objective_search_returns_the_same_front_everywhere(launched):
    first, second = launched[1]
    assert first["pareto"]["front"] == second["pareto"]["front"]
    assert first["pareto"]["front"] and all(
        len(b["objective"]) == 2 for b in first["pareto"]["front"]
    )
    assert [trial["step"] for trial in first["pareto"]["trials"]] == [4, 4]


def test_a_trial_failing_on_one_process_ends_the_search_on_every_process(tmp_path):
    first, second = _launch(tmp_path, "fail")
    assert second["error"] == "ValueError: model_init failed on rank 1"
    assert first["error"] is not None  # rank 0 left the collective at the ddp timeout
    assert first["seconds"] < 40


def test_a_sigopt_search_runs_on_every_process(searches):
    pytest.importorskip("sigopt")
    first, second = (report["sigopt"] for report in searches["reports"])
    assert first["best"] == second["best"]
    runs = searches["sigopt_runs"]
    assert len(runs) == 2  # one experiment, driven by the main process only
    for mine, theirs, run in zip(first["trials"], second["trials"], runs, strict=True):
        assert mine["lr"] == theirs["lr"] == run["assignments"]["learning_rate"]
        assert mine["group"]["world_size"] == 2
        assert run["values"]["objective"]["value"] == pytest.approx(mine["evals"][-1][1])
