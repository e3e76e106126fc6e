"""Rank, world size, device and logging role under simulated launcher environments."""

from __future__ import annotations

import logging
import sys
import types
from datetime import timedelta

import pytest

from trainer_args import ParallelMode, TrainingArguments
from trainer_args._device import DevicePlan, plan_device
from trainer_args._launch_env import LaunchEnv, read_launch_env

LAUNCHER_VARS = (
    "WORLD_SIZE",
    "RANK",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "OMPI_COMM_WORLD_SIZE",
    "OMPI_COMM_WORLD_RANK",
    "OMPI_COMM_WORLD_LOCAL_RANK",
    "PMI_SIZE",
    "PMI_RANK",
    "MPI_LOCALRANKID",
    "SLURM_NTASKS",
    "SLURM_STEP_NUM_TASKS",
    "SLURM_PROCID",
    "SLURM_LOCALID",
    "PJRT_DEVICE",
)


@pytest.fixture(autouse=True)
def _no_launcher(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LAUNCHER_VARS:
        monkeypatch.delenv(name, raising=False)


def _launch(monkeypatch: pytest.MonkeyPatch, **variables: int) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, str(value))


def test_ddp_timeout_delta_is_the_timeout_as_a_timedelta() -> None:
    """Public in transformers 4.34 and 5: what init_process_group takes."""
    assert TrainingArguments("out", ddp_timeout=90).ddp_timeout_delta == timedelta(seconds=90)
    assert TrainingArguments("out").ddp_timeout_delta == timedelta(minutes=30)
    assert TrainingArguments("out", ddp_timeout=None).ddp_timeout_delta == timedelta(minutes=30)


def test_single_process_defaults() -> None:
    args = TrainingArguments("out")
    assert (args.world_size, args.process_index, args.local_process_index) == (1, 0, 0)
    assert args.local_rank == -1
    assert args.should_log and args.should_save


def test_torchrun_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    _launch(monkeypatch, WORLD_SIZE=4, RANK=3, LOCAL_RANK=1)
    args = TrainingArguments("out", use_cpu=True)
    assert (args.world_size, args.process_index, args.local_process_index) == (4, 3, 1)
    assert args.local_rank == 1  # the reference copies LOCAL_RANK into the argument
    assert args.parallel_mode is ParallelMode.DISTRIBUTED
    assert not args.should_log and not args.should_save


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        (
            {"OMPI_COMM_WORLD_SIZE": 8, "OMPI_COMM_WORLD_RANK": 5, "OMPI_COMM_WORLD_LOCAL_RANK": 1},
            LaunchEnv(8, 5, 1, "openmpi"),
        ),
        ({"PMI_SIZE": 2, "PMI_RANK": 1, "MPI_LOCALRANKID": 1}, LaunchEnv(2, 1, 1, "pmi")),
        (
            {"SLURM_STEP_NUM_TASKS": 4, "SLURM_PROCID": 2, "SLURM_LOCALID": 0},
            LaunchEnv(4, 2, 0, "slurm"),
        ),
        (
            {
                "WORLD_SIZE": 2,
                "RANK": 1,
                "LOCAL_RANK": 1,
                "SLURM_STEP_NUM_TASKS": 8,
                "SLURM_PROCID": 5,
            },
            LaunchEnv(2, 1, 1, "torch"),
        ),
        ({"LOCAL_RANK": 0}, LaunchEnv(1, 0, 0, "torch")),
        ({"SLURM_NTASKS": 4, "SLURM_PROCID": 0, "SLURM_LOCALID": 0}, LaunchEnv()),
        ({"OMPI_COMM_WORLD_SIZE": 1, "OMPI_COMM_WORLD_RANK": 0}, LaunchEnv()),
    ],
    ids=[
        "openmpi",
        "pmi",
        "slurm-srun",
        "torch-wins",
        "local-rank-only",
        "sbatch-script",
        "mpirun-n1",
    ],
)
def test_launcher_families(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, int], expected: LaunchEnv
) -> None:
    _launch(monkeypatch, **variables)
    assert read_launch_env() == expected


def test_bad_launcher_variable_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE='two'"):
        read_launch_env()


def test_local_rank_argument_is_honoured_without_launcher_variables() -> None:
    args = TrainingArguments("out", local_rank=2, use_cpu=True)
    assert args.local_process_index == 2
    assert args.parallel_mode is ParallelMode.DISTRIBUTED
    assert not args.should_log


@pytest.mark.parametrize(
    ("on_each_node", "rank", "local_rank", "expected"),
    [
        (True, 0, 0, True),
        (True, 5, 0, True),
        (True, 5, 1, False),
        (False, 0, 0, True),
        (False, 5, 0, False),
    ],
)
def test_should_log_and_should_save_per_node_or_global(
    monkeypatch: pytest.MonkeyPatch,
    on_each_node: bool,
    rank: int,
    local_rank: int,
    expected: bool,
) -> None:
    _launch(monkeypatch, WORLD_SIZE=8, RANK=rank, LOCAL_RANK=local_rank)
    args = TrainingArguments("out", log_on_each_node=on_each_node, save_on_each_node=on_each_node)
    assert args.should_log is expected
    assert args.should_save is expected


def test_save_defaults_to_the_global_main_process_only(monkeypatch: pytest.MonkeyPatch) -> None:
    _launch(monkeypatch, WORLD_SIZE=8, RANK=4, LOCAL_RANK=0)
    args = TrainingArguments("out")
    assert args.should_log and not args.should_save


# --- log levels -------------------------------------------------------------------------


def test_process_log_level_main_and_replica(monkeypatch: pytest.MonkeyPatch) -> None:
    args = TrainingArguments("out", log_level="info", log_level_replica="error")
    assert args.get_process_log_level() == logging.INFO
    _launch(monkeypatch, WORLD_SIZE=2, RANK=1, LOCAL_RANK=1)
    assert args.get_process_log_level() == logging.ERROR


def test_passive_log_level_is_the_trainer_loggers_level(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "transformers.utils.logging", raising=False)
    logger = logging.getLogger("trainer")
    previous = logger.level
    try:
        logger.setLevel(logging.NOTSET)
        assert TrainingArguments("out").get_process_log_level() == logging.getLogger().level
        logger.setLevel(logging.DEBUG)
        assert TrainingArguments("out").get_process_log_level() == logging.DEBUG
    finally:
        logger.setLevel(previous)


def test_passive_default_is_warning_when_nothing_was_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "transformers.utils.logging", raising=False)
    logger, root = logging.getLogger("trainer"), logging.getLogger()
    previous = logger.level, root.level
    try:
        logger.setLevel(logging.NOTSET)
        root.setLevel(logging.WARNING)
        assert TrainingArguments("out").get_process_log_level() == logging.WARNING
    finally:
        logger.setLevel(previous[0])
        root.setLevel(previous[1])


def test_passive_is_transformers_verbosity_once_transformers_is_loaded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the reference answers, which example scripts then give every logger."""
    fake = types.ModuleType("transformers.utils.logging")
    fake.get_verbosity = lambda: logging.INFO  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "transformers.utils.logging", fake)
    assert TrainingArguments("out").get_process_log_level() == logging.INFO
    assert TrainingArguments("out", log_level="error").get_process_log_level() == logging.ERROR


def test_replica_level_applies_on_other_nodes_without_log_on_each_node(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _launch(monkeypatch, WORLD_SIZE=4, RANK=2, LOCAL_RANK=0)
    args = TrainingArguments(
        "out", log_level="warning", log_level_replica="error", log_on_each_node=False
    )
    assert args.get_process_log_level() == logging.ERROR


# --- devices: the plan is pure, so every branch runs without a GPU ----------------------


class _FakeCuda:
    def __init__(self, count: int) -> None:
        self.count = count

    def is_available(self) -> bool:
        return self.count > 0

    def device_count(self) -> int:
        return self.count


class _FakeMps:
    def __init__(self, available: bool) -> None:
        self.available = available

    def is_available(self) -> bool:
        return self.available


class _FakeTorch:
    """Stands in for the torch module: only what plan_device asks (GPUs cannot run here)."""

    def __init__(self, cuda: int = 0, mps: bool = False) -> None:
        self.cuda = _FakeCuda(cuda)
        self.backends = type("backends", (), {"mps": _FakeMps(mps)})()


@pytest.mark.parametrize(
    ("torch", "use_cpu", "distributed", "local_rank", "expected"),
    [
        (_FakeTorch(cuda=4), True, False, -1, DevicePlan("cpu", None, 0)),
        (_FakeTorch(cuda=4), False, False, -1, DevicePlan("cuda", 0, 4)),
        (_FakeTorch(cuda=4), False, True, 3, DevicePlan("cuda", 3, 1)),
        (_FakeTorch(mps=True), False, False, -1, DevicePlan("mps", None, 1)),
        (_FakeTorch(), False, False, -1, DevicePlan("cpu", None, 0)),
        (_FakeTorch(), False, True, 1, DevicePlan("cpu", None, 0)),
    ],
    ids=["use-cpu", "cuda-dataparallel", "cuda-launched", "mps", "cpu", "cpu-launched"],
)
def test_device_plan(
    torch: _FakeTorch, use_cpu: bool, distributed: bool, local_rank: int, expected: DevicePlan
) -> None:
    assert plan_device(torch, use_cpu=use_cpu, distributed=distributed, local_rank=local_rank) == (
        expected
    )


@pytest.mark.slow  # imports torch: seconds on a busy machine
def test_device_with_real_torch() -> None:
    torch = pytest.importorskip("torch")
    args = TrainingArguments("out", use_cpu=True)
    assert args.device == torch.device("cpu")
    assert args.n_gpu == 0
    assert args.train_batch_size == 8 and args.eval_batch_size == 8
    auto = TrainingArguments("out", per_device_train_batch_size=4)
    expected_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    assert auto.n_gpu == expected_gpus
    assert auto.train_batch_size == 4 * max(1, expected_gpus)
    if not torch.cuda.is_available() and not torch.backends.mps.is_available():
        assert auto.device == torch.device("cpu")
        assert auto.parallel_mode is ParallelMode.NOT_PARALLEL


def test_without_torch_n_gpu_is_zero_and_device_says_torch_is_needed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    args = TrainingArguments("out", per_device_train_batch_size=4)
    assert args.n_gpu == 0
    assert args.train_batch_size == 4
    assert args.parallel_mode is ParallelMode.NOT_PARALLEL
    with pytest.raises(ImportError, match="needs PyTorch"):
        _ = args.device
    with args.main_process_first():
        pass


def test_tpu_runtime_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PJRT_DEVICE", "TPU")
    assert TrainingArguments("out").parallel_mode is ParallelMode.TPU


def test_place_model_on_device() -> None:
    assert TrainingArguments("out").place_model_on_device
    assert not TrainingArguments("out", fsdp="full_shard").place_model_on_device
    assert not TrainingArguments("out", deepspeed={"train_batch_size": 8}).place_model_on_device


@pytest.mark.parametrize("variable", ["ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED"])
def test_accelerate_launch_with_sharding_leaves_the_model_where_it_is(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)
    args = TrainingArguments("out")
    monkeypatch.setenv(variable, "true")
    assert not args.place_model_on_device
    monkeypatch.setenv(variable, "false")
    assert args.place_model_on_device
