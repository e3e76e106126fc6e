"""The training script of the distributed checkpoint tests, and the helpers that launch it.

Not a test module (pytest does not collect it): its work runs only under ``__main__``.
Each process runs one *scenario* and writes what it observed to ``<out>/rank<N>.json``:

* ``fsdp`` (torchrun, 2 processes): FSDP2 trainings with full and with sharded
  checkpoints: uninterrupted, resumed from a mid-epoch checkpoint, with
  ``load_best_model_at_end``, and ``save_model``. Process 1 records every file operation
  Python makes under the output folder (an audit hook), to show it writes nothing but
  its own RNG file and shards.
* ``one`` (plain python): the checkpoints of ``fsdp`` resumed on one process.
* ``fsdp_alone`` (torchrun, 1 process): FSDP with sharded checkpoints on one process, the
  same global batch; ``fsdp_from_one`` (torchrun, 2 processes) resumes its checkpoint.
* ``nodes`` (two ``torchrun --nnodes 2 --node_rank R --nproc_per_node 1``): two "nodes"
  on this machine, each with its own output folder (no shared storage), with and
  without ``save_on_each_node``.

Several comma-separated scenarios (``fsdp,fsdp_from_one``) run one after the other in
the same processes, which spares a launch (seconds of start-up each); each works in
``<out>/<scenario>`` and the report holds its results under its name.

The model, data and arguments are those of ``test_distributed_worker.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import test_distributed_worker as base  # the shared model, data and launch helpers
import torch

FSDP_FULL = {"fsdp": "full_shard auto_wrap", "fsdp_config": {"state_dict_type": "FULL_STATE_DICT"}}
FSDP_SHARDED = {  # with offload, as large models are usually trained (its optimizer state too)
    "fsdp": "full_shard auto_wrap offload",
    "fsdp_config": {"state_dict_type": "SHARDED_STATE_DICT"},
}
TIMEOUT_S = 150
WORKER = Path(__file__)


# --------------------------------------------------- launching (used by the tests)
def _start(command: list[str], log: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    # A session of its own, so that a timeout kills the launcher's workers too. The
    # child keeps the log open; this process closes its own handle at once.
    with log.open("w") as handle:
        return subprocess.Popen(
            command,
            stdout=handle,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )


def _wait(processes: list[subprocess.Popen[str]], logs: list[Path]) -> None:
    """Wait for every launcher; on a failure or a timeout end the others too, then raise
    with the log of the first that failed."""
    deadline = time.monotonic() + TIMEOUT_S
    failed: tuple[str, Path] | None = None
    for process, log in zip(processes, logs, strict=True):
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            failed = failed or (f"timed out after {TIMEOUT_S}s", log)
            break
        if process.returncode != 0:
            failed = failed or (f"failed ({process.returncode})", log)
            break
    for process in processes:  # the peers of a failed launcher would wait forever
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    if failed is not None:
        reason, log = failed
        raise AssertionError(f"{reason}:\n{log.read_text()[-6000:]}")


def _reports(out: Path, count: int) -> list[dict[str, Any]]:
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(count)]


def launch(
    out: Path, scenario: str, *options: str, processes: int = 2, torchrun: bool | None = None
) -> list[dict[str, Any]]:
    """Run ``scenario`` under torchrun (by default when ``processes`` > 1) or python;
    return the reports."""
    out.mkdir(parents=True, exist_ok=True)
    bin_dir = Path(sys.executable).parent
    if torchrun is None:
        torchrun = processes > 1
    if torchrun:
        port = str(base.free_port())
        prefix = [str(bin_dir / "torchrun"), "--nproc_per_node", str(processes)]
        prefix += ["--master_port", port]
    else:
        prefix = [sys.executable]
    log = out / f"{scenario}.log"
    process = _start([*prefix, str(WORKER), scenario, str(out), *options], log)
    _wait([process], [log])
    return _reports(out, processes)


def launch_two_nodes(out: Path, scenario: str) -> list[dict[str, Any]]:
    """Two torchrun "nodes" of one process each, meeting on localhost; reports by rank."""
    out.mkdir(parents=True, exist_ok=True)
    torchrun = str(Path(sys.executable).parent / "torchrun")
    port = str(base.free_port())
    processes, logs = [], []
    for node in (0, 1):
        command = [torchrun, "--nnodes", "2", "--node_rank", str(node), "--nproc_per_node", "1"]
        command += ["--master_addr", "127.0.0.1", "--master_port", port]
        logs.append(out / f"node{node}.log")
        processes.append(_start([*command, str(WORKER), scenario, str(out)], logs[-1]))
    _wait(processes, logs)
    return _reports(out, 2)


# --------------------------------------------------------- observing file writes
class WriteRecorder:
    """Records the file operations Python makes under a folder (``sys.addaudithook``).

    Native writers (``torch.save`` to a path, safetensors) are invisible to it, but every
    step a checkpoint writer takes besides them (staging folder, JSON files, rename,
    deleting) goes through Python, and so do the DCP shard files.
    """

    _EVENTS = ("os.mkdir", "os.rename", "os.remove", "os.rmdir", "shutil.rmtree")

    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root)
        self.events: list[list[str]] = []
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if event == "open":
            path, mode, flags = args
            writes = (mode is not None and any(c in str(mode) for c in "wax+")) or (
                mode is None and isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR)
            )
            if writes:
                self._add("open", path)
        elif event in self._EVENTS:
            self._add(event, args[0])

    def _add(self, event: str, path: Any) -> None:
        if isinstance(path, (str, bytes, os.PathLike)):
            full = os.path.realpath(os.fsdecode(path))
            if full.startswith(self.root):
                self.events.append([event, os.path.relpath(full, self.root)])


# --------------------------------------------------------------------- scenarios
class BestScore:
    """``compute_metrics`` whose score peaks at the second evaluation (step 4)."""

    SCORES = (1.0, 3.0, 2.0, 0.0)

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, prediction: Any) -> dict[str, float]:
        self.calls += 1
        return {"score": self.SCORES[(self.calls - 1) % len(self.SCORES)]}


def weights_at_save() -> Any:
    """A callback recording the full weights at each checkpoint (gathering them is a
    collective: the callback of every process takes part)."""
    from trainer import TrainerCallback

    class WeightsAtSave(TrainerCallback):
        def __init__(self) -> None:
            self.saved: dict[int, dict[str, list[float]]] = {}
            self.trainer: Any = None

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            model = self.trainer.model
            self.saved[state.global_step] = base.weights_of(self.trainer.runtime.state_dict(model))

    return WeightsAtSave()


def _trainer(out: str, variant: dict[str, Any], **overrides: Any) -> Any:
    from trainer import Trainer

    options = {"save_strategy": "steps", "save_steps": 3, **variant, **overrides}
    args = base.training_args(out, **options)
    return Trainer(model=base.make_model(), args=args, train_dataset=base.make_dataset())


def _run(
    out: str, variant: dict[str, Any], resume: str | None = None, **overrides: Any
) -> dict[str, Any]:
    trainer = _trainer(out, variant, **overrides)
    trainer.train(resume_from_checkpoint=resume)
    runtime = trainer.runtime
    return {
        "weights": base.weights_of(runtime.state_dict(trainer.model)),
        "steps": trainer.state.global_step,
        "format": runtime.checkpoint_format,
        "runtime": type(runtime).__name__,
    }


def _run_best(out: str, variant: dict[str, Any]) -> dict[str, Any]:
    from trainer import Trainer

    recorder = weights_at_save()
    args = base.training_args(
        out,
        save_strategy="steps",
        save_steps=2,
        eval_strategy="steps",
        eval_steps=2,
        load_best_model_at_end=True,
        metric_for_best_model="score",
        greater_is_better=True,
        **variant,
    )
    trainer = Trainer(
        model=base.make_model(),
        args=args,
        train_dataset=base.make_dataset(),
        eval_dataset=base.make_dataset(6),
        compute_metrics=BestScore(),
        callbacks=[recorder],
    )
    recorder.trainer = trainer
    trainer.train()
    return {
        "weights": base.weights_of(trainer.runtime.state_dict(trainer.model)),
        "saved": recorder.saved,
        "best": trainer.state.best_model_checkpoint,
    }


def run_fsdp(out: str) -> dict[str, Any]:
    """Full and sharded FSDP checkpoints: save, resume mid-epoch, best model, save_model."""
    recorder = WriteRecorder(out) if int(os.environ["RANK"]) == 1 else None
    result: dict[str, Any] = {}
    for name, variant in (("full", FSDP_FULL), ("sharded", FSDP_SHARDED)):
        folder = os.path.join(out, name)
        result[name] = _run(folder, variant)
        checkpoint = os.path.join(folder, "checkpoint-3")
        result[f"{name}_resumed"] = _run(folder + "_resumed", variant, resume=checkpoint)
        result[f"{name}_best"] = _run_best(os.path.join(out, f"{name}_best"), variant)
    trainer = _trainer(os.path.join(out, "save_model"), FSDP_SHARDED, save_strategy="no")
    trainer.train()
    trainer.save_model()
    result["save_model"] = base.weights_of(trainer.runtime.state_dict(trainer.model))
    result["writes"] = list(recorder.events) if recorder is not None else None
    return result


def run_one(out: str, checkpoints: str) -> dict[str, Any]:
    """Resume, on one process with the same global batch, the 2-process checkpoints."""
    result: dict[str, Any] = {}
    for name in ("full", "sharded"):
        checkpoint = os.path.join(checkpoints, name, "checkpoint-3")
        folder = os.path.join(out, name)
        result[name] = _run(folder, {}, resume=checkpoint, per_device_train_batch_size=4)
    return result


def run_fsdp_alone(out: str) -> dict[str, Any]:
    """Sharded FSDP checkpoints written by one process (batch 4: the 2-process global batch)."""
    run = _run(os.path.join(out, "sharded"), FSDP_SHARDED, per_device_train_batch_size=4)
    return {"sharded": run}


def run_fsdp_from_one(out: str, checkpoints: str) -> dict[str, Any]:
    """Two processes resume the mid-epoch checkpoint that one process wrote."""
    checkpoint = os.path.join(checkpoints, "sharded", "checkpoint-3")
    return {"sharded": _run(os.path.join(out, "sharded"), FSDP_SHARDED, resume=checkpoint)}


def run_nodes(out: str) -> dict[str, Any]:
    """Two nodes without shared storage: each writes into ``<out>/<run>/node<N>``; and
    two nodes sharing ``<out>/ddp_each_node_shared``."""
    node = int(os.environ["GROUP_RANK"])
    result: dict[str, Any] = {"node": node, "local_rank": int(os.environ["LOCAL_RANK"])}
    runs: list[tuple[str, dict[str, Any], bool]] = [
        ("ddp_main_only", {}, False),
        ("ddp_each_node", {}, True),
        ("fsdp_each_node", FSDP_FULL, True),
    ]
    for name, variant, each in runs:
        folder = os.path.join(out, name, f"node{node}")
        result[name] = _run(folder, variant, save_on_each_node=each, save_steps=4)
    # Each node resumes from its own copy of checkpoint-4.
    folder = os.path.join(out, "ddp_each_node", f"node{node}")
    result["ddp_each_node_resumed"] = _run(
        folder + "_resumed",
        {},
        resume=os.path.join(folder, "checkpoint-4"),
        save_on_each_node=True,
        save_steps=4,
    )
    result["sharded_error"] = _sharded_without_shared_storage(out, node)
    # Both nodes' writers fill one folder: storage the nodes share, save_on_each_node set
    # "just in case" (the reference tolerates it).
    shared = os.path.join(out, "ddp_each_node_shared")
    overrides = {"save_on_each_node": True, "save_steps": 2, "save_total_limit": 2}
    result["ddp_each_node_shared"] = _run(shared, {}, **overrides)
    return result


def _sharded_without_shared_storage(out: str, node: int) -> str | None:
    """A sharded checkpoint into folders the two nodes do not share must fail on both."""
    folder = os.path.join(out, "fsdp_sharded_each_node", f"node{node}")
    try:
        _run(folder, FSDP_SHARDED, save_on_each_node=True, save_steps=4)
    except RuntimeError as error:
        return str(error)
    return None


SCENARIOS = ("fsdp", "one", "fsdp_alone", "fsdp_from_one", "nodes")


def run_scenario(scenario: str, out: str, checkpoints: str) -> dict[str, Any]:
    """Run one scenario with its output under ``out``; return what it observed."""
    if scenario == "fsdp":
        return run_fsdp(out)
    if scenario == "one":
        return run_one(out, checkpoints)
    if scenario == "fsdp_alone":
        return run_fsdp_alone(out)
    if scenario == "fsdp_from_one":
        return run_fsdp_from_one(out, checkpoints)
    return run_nodes(out)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", help=f"one of {SCENARIOS}, or several separated by commas")
    parser.add_argument("out")
    parser.add_argument("--checkpoints", default="")
    options = parser.parse_args(argv)
    scenarios = options.scenario.split(",")
    unknown = [scenario for scenario in scenarios if scenario not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios {unknown}; choose among {SCENARIOS}")
    torch.set_num_threads(1)
    result = base.run_scenarios(
        scenarios,
        options.out,
        lambda scenario, out: run_scenario(scenario, out, options.checkpoints),
    )
    result.update(base.group_facts())
    rank = int(os.environ.get("RANK", "0"))
    with open(os.path.join(options.out, f"rank{rank}.json"), "w", encoding="utf-8") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    from _worker_exit import leave_group_and_exit

    main(sys.argv[1:])
    leave_group_and_exit()
