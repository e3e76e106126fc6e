"""The training script the multi-process tests launch (``torchrun``, ``accelerate launch``...).

Not a test module: it defines no tests, and its work runs only under ``__main__``. Each
process runs one *scenario* and writes what it observed to ``<out>/rank<N>.json``; the
tests in ``test_distributed_*.py`` launch it and compare the files. Every scenario first
checks that the processes really form one group (all-gathering their ranks): a run in
which each process trains alone is the failure these tests guard against.

    torchrun --nproc_per_node 2 test_distributed_worker.py ddp <out>
    python test_distributed_worker.py single,load_shards <out> --shards <folder>

Several comma-separated scenarios run one after the other in the same processes (one
launch instead of several, each of which costs seconds of start-up); each works in
``<out>/<scenario>`` and the report holds its results under its name.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

DATASET_SIZE = 16
FEATURES = 4


class Block(nn.Module):
    """One layer: the unit FSDP wraps (named in ``_no_split_modules``)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.linear = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.linear(x))


class TinyRegressor(nn.Module):
    """Regression with an MSE loss; records the sample ids each forward sees."""

    _no_split_modules: ClassVar[list[str]] = ["Block"]

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.embed = nn.Linear(FEATURES, width)
        self.blocks = nn.ModuleList([Block(width) for _ in range(2)])
        self.head = nn.Linear(width, 1)
        self.seen: list[int] = []
        self.whole_moves = 0  # .to() calls on the whole model (FSDP places unit by unit)

    def to(self, *args: Any, **kwargs: Any) -> TinyRegressor:  # type: ignore[override]  # counts, then torch's
        self.whole_moves += 1
        return super().to(*args, **kwargs)

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor | None = None, idx: Any = None
    ) -> dict[str, torch.Tensor]:
        if idx is not None and self.training:
            self.seen.extend(int(i) for i in idx)
        hidden = self.embed(x)
        for block in self.blocks:
            hidden = block(hidden)
        out = self.head(hidden).sum(dim=-1)  # not a view: FSDP warns about views
        result = {"logits": out}
        if labels is not None:
            result["loss"] = nn.functional.mse_loss(out, labels)
        return result

    def floating_point_ops(self, inputs: dict[str, Any]) -> int:
        """A count proportional to the batch (what the Trainer sums into total_flos)."""
        return 1000 * int(inputs["x"].shape[0])


def make_dataset(size: int = DATASET_SIZE) -> list[dict[str, torch.Tensor]]:
    """Deterministic samples; ``idx`` identifies each one."""
    generator = torch.Generator().manual_seed(1234)
    features = torch.randn(size, FEATURES, generator=generator)
    targets = features.sum(dim=1) * 0.5
    return [{"x": features[i], "labels": targets[i], "idx": torch.tensor(i)} for i in range(size)]


def make_model() -> TinyRegressor:
    torch.manual_seed(0)
    return TinyRegressor()


def training_args(output_dir: str, **overrides: Any) -> Any:
    from trainer import TrainingArguments

    defaults: dict[str, Any] = {
        "output_dir": output_dir,
        "per_device_train_batch_size": 2,
        "per_device_eval_batch_size": 3,
        "num_train_epochs": 2,
        "learning_rate": 0.05,
        "logging_steps": 2,
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "use_cpu": True,
        "seed": 0,
        "remove_unused_columns": False,
        "ddp_timeout": 120,  # a hung collective ends the processes instead of leaving them
    }
    defaults.update(overrides)
    return TrainingArguments(**defaults)


def weights_of(state: dict[str, torch.Tensor]) -> dict[str, list[float]]:
    return {key: value.detach().float().flatten().tolist() for key, value in state.items()}


# --------------------------------------------------- launching (used by the tests)
WORKER = Path(__file__)
BIN = Path(sys.executable).parent
TIMEOUT_S = 150


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch(launcher: str, out: Path, *worker_args: str, processes: int = 2) -> list[dict[str, Any]]:
    """Run the worker under ``launcher``; return each rank's report (rank order)."""
    port = str(free_port())
    commands = {
        "torchrun": [str(BIN / "torchrun"), "--nproc_per_node", str(processes)],
        "accelerate": [
            str(BIN / "accelerate"),
            "launch",
            "--multi_gpu",
            "--num_processes",
            str(processes),
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
        ],
        "torch.distributed.launch": [
            sys.executable,
            "-m",
            "torch.distributed.launch",
            "--nproc_per_node",
            str(processes),
        ],
        "python": [sys.executable],
    }
    ports = {
        "torchrun": ["--master_port", port],
        "accelerate": ["--main_process_port", port],
        "torch.distributed.launch": ["--master_port", port],
        "python": [],
    }
    scenario, *options = worker_args
    command = [*commands[launcher], *ports[launcher], str(WORKER), scenario, str(out), *options]
    return run_launched(command, out, processes if launcher != "python" else 1)


def run_launched(
    command: list[str], out: Path, processes: int, *, timeout: float = TIMEOUT_S
) -> list[dict[str, Any]]:
    """Run ``command`` (a launcher starting a worker script that writes
    ``out/rank<r>.json``); return each rank's report, in rank order.

    The run gets a session of its own, so that a timeout kills the launcher's workers
    too, and one thread per process; launcher variables inherited from an enclosing
    launch are removed so that they cannot leak into this one.
    """
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in (
        "WORLD_SIZE",
        "RANK",
        "LOCAL_RANK",
        "ACCELERATE_USE_DEEPSPEED",
        "ACCELERATE_USE_FSDP",
    ):
        env.pop(name, None)
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        _, stderr = process.communicate()
        message = f"{command[0]} run timed out after {timeout}s:\n{stderr[-6000:]}"
        raise AssertionError(message) from None
    if process.returncode != 0:
        output = (stdout + stderr)[-8000:]
        raise AssertionError(f"{command[0]} run failed ({process.returncode}):\n{output}")
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(processes)]


def max_difference(left: dict[str, list[float]], right: dict[str, list[float]]) -> float:
    assert sorted(left) == sorted(right)
    return max(abs(a - b) for key in left for a, b in zip(left[key], right[key], strict=True))


def assert_one_group_with_sharded_data(reports: list[dict[str, Any]], epochs: int = 2) -> None:
    for report in reports:
        assert report["world_size"] == 2
        assert report["ranks"] == [0, 1]
    first, second = (set(report["seen"]) for report in reports)
    assert first != second  # each process trained on its own share
    combined = sorted(reports[0]["seen"] + reports[1]["seen"])
    assert combined == sorted(list(range(16)) * epochs)  # every sample once per epoch


def write_accelerate_deepspeed_config(
    folder: Path, deepspeed_file: Path, *, zero3_init_flag: bool
) -> Path:
    """An ``accelerate launch --config_file`` for 2 local processes with DeepSpeed from
    ``deepspeed_file`` (the reference's example c., "DeepSpeed config pointing to a file")."""
    path = folder / "accelerate_deepspeed.yaml"
    path.write_text(
        "compute_environment: LOCAL_MACHINE\n"
        "deepspeed_config:\n"
        f"  deepspeed_config_file: {deepspeed_file}\n"
        f"  zero3_init_flag: {str(zero3_init_flag).lower()}\n"
        "distributed_type: DEEPSPEED\n"
        "downcast_bf16: 'no'\n"
        "machine_rank: 0\n"
        "num_machines: 1\n"
        "num_processes: 2\n"
        "rdzv_backend: static\n"
        "same_network: true\n"
        "use_cpu: false\n"
    )
    return path


def write_group_report(out: str, result: dict[str, Any]) -> None:
    """Add :func:`group_facts` to ``result`` and write it to ``out/rank<r>.json`` (the
    process group's rank)."""
    import torch.distributed as dist

    result.update(group_facts())
    with open(os.path.join(out, f"rank{dist.get_rank()}.json"), "w", encoding="utf-8") as handle:
        json.dump(result, handle)


# ------------------------------------------------------------------------ checks
def group_facts() -> dict[str, Any]:
    """World size and every rank, learnt through a collective (so a real group exists)."""
    import torch.distributed as dist

    if not dist.is_initialized():
        return {"world_size": 1, "ranks": [0]}
    ranks = [torch.zeros(1, dtype=torch.long) for _ in range(dist.get_world_size())]
    dist.all_gather(ranks, torch.tensor([dist.get_rank()]))
    return {"world_size": dist.get_world_size(), "ranks": [int(r) for r in ranks]}


def gathered_eval_ids(trainer: Any, size: int) -> list[int]:
    """Ids of an odd-sized evaluation set gathered the way the evaluation loop does."""
    runtime = trainer.runtime
    ids: list[torch.Tensor] = []
    names: list[str] = []
    every_name: list[str] = []
    for batch in trainer.get_eval_dataloader(make_dataset(size)):
        padded = runtime.pad_across_processes(batch["x"], dim=1)
        rows = runtime.gather(padded)
        gathered = runtime.gather(batch["idx"])
        if rows.shape[0] != gathered.shape[0]:
            raise RuntimeError(f"rows {rows.shape} and ids {gathered.shape} disagree")
        ids.append(gathered)
        own = [f"s{int(i)}" for i in batch["idx"]]  # objects, one per sample
        names.extend(runtime.gather_objects(own))
        every_name.extend(runtime.gather_objects(own, drop_padding=False))
    found = [int(i) for i in torch.cat(ids)]
    padded_end = runtime.num_processes > 1 and size % runtime.num_processes
    if names != [f"s{i}" for i in found] or (padded_end and len(every_name) == len(names)):
        raise RuntimeError(f"objects {names} / {every_name} do not follow the ids {found}")
    return found


def predictions_of(trainer: Any) -> dict[str, Any]:
    """``Trainer.predict`` and ``evaluate`` over 7 samples (an uneven end on 2 processes)."""
    output = trainer.predict(make_dataset(7))
    metrics = trainer.evaluate(make_dataset(7))
    batched_labels: list[float] = []

    def batch_metrics(prediction: Any, compute_result: bool = False) -> Any:
        batched_labels.extend(float(v) for v in prediction.label_ids)
        return {"rows": len(batched_labels)} if compute_result else None

    compute_metrics, trainer.compute_metrics = trainer.compute_metrics, batch_metrics
    trainer.args.batch_eval_metrics = True
    try:
        batched = trainer.evaluate(make_dataset(7))
    finally:
        trainer.compute_metrics = compute_metrics
        trainer.args.batch_eval_metrics = False
    return {
        "predictions": [float(v) for v in output.predictions],
        "label_ids": [float(v) for v in output.label_ids],
        "eval_loss": metrics["eval_loss"],
        "batch_metric_labels": batched_labels,
        "batch_metrics_eval_loss": batched["eval_loss"],
    }


def no_sync_reductions(runtime: Any) -> int:
    """Gradient all-reduces DDP runs over 2 accumulation windows of 2 micro-steps."""
    model = runtime.prepare_model(nn.Linear(4, 1), training=True)
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    calls: list[int] = []
    # A lambda: DDP rejects hooks whose parameters carry (string) annotations.
    model.register_comm_hook(
        None, lambda state, bucket: (calls.append(1), allreduce_hook(state, bucket))[1]
    )
    for micro_step in range(4):
        context = runtime.no_sync(model) if micro_step % 2 == 0 else _null()
        with context:
            runtime.backward(model(torch.ones(2, 4)).sum())
    return len(calls)


def _null() -> Any:
    import contextlib

    return contextlib.nullcontext()


def main_first_order(trainer: Any, out: str, *, through_args: bool = False) -> list[str]:
    """Each process appends its rank inside ``main_process_first``; main must come first.

    ``through_args`` uses ``TrainingArguments.main_process_first`` (what user scripts
    call around ``datasets.map``) instead of the runtime's.
    """
    marker = os.path.join(out, f"main_first_{through_args}.txt")
    context = (
        trainer.args.main_process_first(desc="test")
        if through_args
        else trainer.runtime.main_process_first(local=False)
    )
    with context:
        if trainer.runtime.is_main_process:
            time.sleep(1.0)  # a replica that did not wait would write first
        with open(marker, "a", encoding="utf-8") as handle:
            handle.write(f"{trainer.runtime.process_index}\n")
    trainer.runtime.wait_for_everyone()
    with open(marker, encoding="utf-8") as handle:
        return handle.read().split()


# --------------------------------------------------------------------- scenarios
def run_ddp(out: str, accumulation: int) -> dict[str, Any]:
    from trainer import Trainer

    args = training_args(
        out,
        gradient_accumulation_steps=accumulation,
        per_device_train_batch_size=2 if accumulation == 1 else 1,
        log_level="info",
        log_level_replica="error",
        save_strategy="steps",
        save_steps=4,
    )
    model = make_model()
    trainer = Trainer(model=model, args=args, train_dataset=make_dataset())
    result: dict[str, Any] = {
        "runtime": type(trainer.runtime).__name__,
        "log_level": logging.getLogger("trainer").getEffectiveLevel(),
        "should_log": args.should_log,
        "should_save": args.should_save,
    }
    trainer.train()
    result["seen"] = sorted(model.seen)
    result["steps"] = trainer.state.global_step
    result["weights"] = weights_of(trainer.runtime.state_dict(trainer.model_wrapped))
    result["losses"] = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    result["total_flos"] = trainer.state.total_flos
    result["eval_ids"] = gathered_eval_ids(trainer, 7)
    result.update(predictions_of(trainer))
    result["reductions"] = no_sync_reductions(trainer.runtime)
    result["main_first"] = main_first_order(trainer, out)
    result["main_first_args"] = main_first_order(trainer, out, through_args=True)
    result["args_world"] = [args.world_size, args.process_index, args.local_process_index]
    result["reduced"] = float(trainer.runtime.reduce(torch.tensor(float(args.process_index))))
    return result


def run_fsdp(out: str, variants: list[dict[str, Any]]) -> dict[str, Any]:
    """Train once per FSDP variant; the first one also saves and reloads sharded state."""
    result: dict[str, Any] = {"variants": []}
    for number, variant in enumerate(variants):
        trained = _train_fsdp(os.path.join(out, f"variant{number}"), variant)
        if number == 0:
            trained.update(_sharded_round_trip(out, trained.pop("trainer")))
        trained.pop("trainer", None)
        result["variants"].append(trained)
    return result


def _train_fsdp(out: str, variant: dict[str, Any]) -> dict[str, Any]:
    from trainer import Trainer

    args = training_args(out, max_grad_norm=1.0, **variant)
    model = make_model()
    trainer = Trainer(model=model, args=args, train_dataset=make_dataset())
    trainer.train()
    runtime = trainer.runtime
    return {
        "trainer": trainer,
        "runtime": type(runtime).__name__,
        "flags": [trainer.is_fsdp_enabled, trainer.is_deepspeed_enabled],
        "parameter_types": sorted({type(p).__name__ for p in model.parameters()}),
        "fsdp_units": sum(type(m).__name__.startswith("FSDP") for m in model.modules()),
        "offloaded_units": _offloaded_units(model),
        "gathered_dtypes": _gathered_dtypes(model),
        "whole_moves": model.whole_moves,
        "seen": sorted(model.seen),
        "weights": weights_of(runtime.state_dict(model)),
        "checkpoint_format": runtime.checkpoint_format,
        "grad_norm": [e["grad_norm"] for e in trainer.state.log_history if "grad_norm" in e],
    }


def _fsdp_param_groups(model: Any) -> Iterator[Any]:
    """The parameter groups of the FSDP units in ``model`` (torch's own bookkeeping)."""
    from torch.distributed.fsdp import FSDPModule

    for module in model.modules():
        if isinstance(module, FSDPModule):
            group = module._get_fsdp_state()._fsdp_param_group
            if group is not None:
                yield group


def _offloaded_units(model: Any) -> int:
    """How many FSDP units keep their shards under torch's ``CPUOffloadPolicy``."""
    from torch.distributed.fsdp import CPUOffloadPolicy

    groups = _fsdp_param_groups(model)
    return sum(isinstance(group.offload_policy, CPUOffloadPolicy) for group in groups)


def _gathered_dtypes(model: Any) -> list[str]:
    """The dtypes FSDP gathers the parameters in (its mixed-precision policy)."""
    return sorted(
        {
            str(param.param_dtype or param.orig_dtype)
            for group in _fsdp_param_groups(model)
            for param in group.fsdp_params
        }
    )


def _sharded_round_trip(out: str, trainer: Any) -> dict[str, Any]:
    runtime, model = trainer.runtime, trainer.model
    shards = os.path.join(out, "sharded")
    runtime.save_sharded_state(shards, model, trainer.optimizer)
    fresh = runtime.prepare_model(TinyRegressor(), training=True)
    optimizer = torch.optim.AdamW(fresh.parameters(), lr=0.01)
    runtime.load_sharded_state(shards, fresh, optimizer)
    full_optimizer = runtime.optimizer_state_dict(model, trainer.optimizer)
    restored = runtime.optimizer_state_dict(fresh, optimizer)
    same_optimizer = all(
        torch.equal(full_optimizer["state"][name]["exp_avg"], restored["state"][name]["exp_avg"])
        for name in full_optimizer.get("state", {})
    )
    return {
        "reloaded": weights_of(runtime.state_dict(fresh)),
        "optimizer_keys": sorted(full_optimizer.get("state", {})),
        "optimizer_restored": same_optimizer,
    }


def run_single(out: str) -> dict[str, Any]:
    """The one-process reference with the same global batch (4)."""
    from trainer import Trainer

    args = training_args(out, per_device_train_batch_size=4)
    model = make_model()
    trainer = Trainer(model=model, args=args, train_dataset=make_dataset())
    trainer.train()
    return {
        "weights": weights_of(trainer.runtime.state_dict(model)),
        "losses": [e["loss"] for e in trainer.state.log_history if "loss" in e],
        "total_flos": trainer.state.total_flos,
        "seen": sorted(model.seen),
        **predictions_of(trainer),
    }


def run_resume(out: str, checkpoint: str) -> dict[str, Any]:
    """Resume on one process (batch 4) from a checkpoint that 2 processes wrote."""
    from trainer import Trainer

    args = training_args(out, per_device_train_batch_size=4)
    model = make_model()
    trainer = Trainer(model=model, args=args, train_dataset=make_dataset())
    trainer.train(resume_from_checkpoint=checkpoint)
    return {
        "weights": weights_of(trainer.runtime.state_dict(model)),
        "steps": trainer.state.global_step,
        "seen": sorted(model.seen),
    }


def run_load_shards(out: str, shards: str) -> dict[str, Any]:
    """Load a sharded checkpoint written by several processes into one process."""
    from trainer_dist import SingleProcessRuntime

    runtime = SingleProcessRuntime(device="cpu")
    model = TinyRegressor()
    runtime.load_sharded_state(shards, model)
    return {"weights": weights_of(runtime.state_dict(model))}


def run_scenarios(
    scenarios: list[str], out: str, run: Callable[[str, str], dict[str, Any]]
) -> dict[str, Any]:
    """``run(scenario, folder)`` for each scenario, one after the other in this process.

    One scenario writes into ``out`` and its result is the report; several (one launch
    instead of several, each of which costs seconds of start-up) each write into
    ``<out>/<scenario>``, and the report holds their results under their names.
    """
    if len(scenarios) == 1:
        return run(scenarios[0], out)
    result: dict[str, Any] = {}
    for scenario in scenarios:
        folder = os.path.join(out, scenario)
        os.makedirs(folder, exist_ok=True)
        result[scenario] = run(scenario, folder)
    return result


def scenario_reports(reports: list[dict[str, Any]], scenario: str) -> list[dict[str, Any]]:
    """Each rank's results of one scenario of a launch that ran several, with the group
    facts (``world_size``, ``ranks``) the launch reported once for all of them."""
    group = ("world_size", "ranks")
    return [{**report[scenario], **{key: report[key] for key in group}} for report in reports]


def run_scenario(scenario: str, out: str, options: argparse.Namespace) -> dict[str, Any]:
    """Run one scenario with its output under ``out``; return what it observed."""
    if scenario == "ddp":
        return run_ddp(out, options.accumulation)
    if scenario == "fsdp":
        return run_fsdp(out, json.loads(options.variants))
    if scenario == "single":
        return run_single(out)
    if scenario == "resume":
        return run_resume(out, options.shards)
    if scenario == "load_shards":
        return run_load_shards(out, options.shards)
    raise SystemExit(f"unknown scenario {scenario!r}")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", help="a scenario, or several separated by commas")
    parser.add_argument("out")
    parser.add_argument("--accumulation", type=int, default=1)
    parser.add_argument("--variants", default="[]", help="JSON list of fsdp settings")
    parser.add_argument("--shards", default="")
    options, launcher_arguments = parser.parse_known_args(argv)
    torch.set_num_threads(1)
    result = run_scenarios(
        options.scenario.split(","),
        options.out,
        lambda scenario, out: run_scenario(scenario, out, options),
    )
    result.update(group_facts())
    result["local_rank_argument"] = _local_rank_argument(options.out, launcher_arguments)
    rank = result["ranks"][0] if result["world_size"] == 1 else _rank()
    path = os.path.join(options.out, f"rank{rank}.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(result, handle)


def _local_rank_argument(out: str, launcher_arguments: list[str]) -> int:
    """``--local-rank`` as a script parsing TrainingArguments reads it (the deprecated
    ``torch.distributed.launch`` passes it on the command line)."""
    from trainer import HfArgumentParser, TrainingArguments

    parser = HfArgumentParser(TrainingArguments)
    (args,) = parser.parse_args_into_dataclasses(["--output_dir", out, *launcher_arguments])
    return args.local_rank


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank()


if __name__ == "__main__":
    from _worker_exit import leave_group_and_exit

    main(sys.argv[1:])
    leave_group_and_exit()
