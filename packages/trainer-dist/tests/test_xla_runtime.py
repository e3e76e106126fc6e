"""XlaFSDPRuntime's own logic, with a stand-in for its thin torch_xla layer.

torch_xla is not installed in the workspace environment (it pins its own torch), so
:class:`LocalXla` takes the place of ``trainer_dist._xla.TorchXla`` (the only code that
calls torch_xla): the device is the CPU, collectives run between the threads of one test
(each thread one "process"), and wrapping only records what the runtime asks for. What
these tests check is the runtime's side of each call: which policy and options reach the
wrapper, how batches are sharded and steps marked, what collectives compute from
``all_gather`` / ``all_reduce``. ``test_xla_real.py`` runs the same runtime on real
torch_xla (XLA on the CPU, one process) in ``.venvs/xla``.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainer_args import TrainingArguments
from trainer_core import MissingExtraError, Runtime
from trainer_dist import XlaFSDPRuntime, XlaFSDPSettings, build_runtime
from trainer_dist._xla import StepMarkingLoader
from trainer_dist._xla_settings import WrapPolicy

ACCEPTED = ["reshard_after_forward", "flatten_parameters", "compute_dtype", "buffer_dtype"]
without_torch_xla = pytest.mark.skipif(
    importlib.util.find_spec("torch_xla") is not None,
    reason="checks the error raised when torch_xla is missing; it is installed here",
)


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class Net(nn.Module):
    _no_split_modules: ClassVar[list[str]] = ["Block"]

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(Block(), Block())


class Wrapped(nn.Module):
    """What LocalXla.wrap returns: the model, and the arguments the runtime passed."""

    def __init__(self, inner: nn.Module, **arguments: Any) -> None:
        super().__init__()
        self.inner = inner
        self.arguments = arguments


class LocalXla:
    """Stands in for TorchXla: CPU device, collectives between threads, recorded calls."""

    def __init__(
        self, size: int = 1, rank: int = 0, shared: Any = None, devices_per_process: int = 1
    ) -> None:
        self.size, self.rank, self.devices = size, rank, devices_per_process
        self.shared = shared or SimpleNamespace(
            barrier=threading.Barrier(size, timeout=20), slots=[None] * size
        )
        self.steps = 0
        self.joined = False
        self.seeds: list[int] = []
        self.tags: list[str] = []

    def device(self) -> torch.device:
        return torch.device("cpu")

    def world_size(self) -> int:
        return self.size

    def ordinal(self) -> int:
        return self.rank

    def local_ordinal(self) -> int:
        return self.rank

    def devices_per_process(self) -> int:
        return self.devices

    def join_process_group(self) -> None:
        self.joined = True

    def mark_step(self) -> None:
        self.steps += 1

    def _exchange(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        self.shared.slots[self.rank] = tensor
        self.shared.barrier.wait()
        parts = list(self.shared.slots)
        self.shared.barrier.wait()
        return parts

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        return torch.cat(self._exchange(tensor))

    def all_reduce(self, op: str, tensor: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        stacked = torch.stack(self._exchange(tensor))
        reduced = {"sum": stacked.sum(0), "max": stacked.amax(0), "min": stacked.amin(0)}[op]
        return reduced * scale if scale != 1.0 else reduced

    def rendezvous(self, tag: str) -> None:
        self.tags.append(tag)
        self.shared.barrier.wait()

    def save(self, data: Any, path: str) -> None:
        torch.save(data, path)

    def set_seed(self, seed: int) -> None:
        self.seeds.append(seed)

    def is_wrapper(self, model: Any) -> bool:
        return isinstance(model, Wrapped)

    def user_module(self, wrapper: Any) -> nn.Module:
        return wrapper.inner

    def wrapper_parameters(self) -> list[str]:
        return ACCEPTED

    def wrap(self, model: nn.Module, **arguments: Any) -> nn.Module:
        return Wrapped(model, **arguments)


def make_runtime(settings: XlaFSDPSettings | None = None, **options: Any) -> XlaFSDPRuntime:
    return XlaFSDPRuntime(settings or XlaFSDPSettings(), xla=LocalXla(), **options)


def run_processes(size: int, work: Callable[[XlaFSDPRuntime], Any]) -> list[Any]:
    """``work(runtime)`` on ``size`` threads, each with the runtime of one rank."""
    shared = SimpleNamespace(barrier=threading.Barrier(size, timeout=20), slots=[None] * size)
    results: list[Any] = [None] * size
    errors: list[BaseException] = []

    def run(rank: int) -> None:
        try:
            xla = LocalXla(size, rank, shared)
            results[rank] = work(XlaFSDPRuntime(XlaFSDPSettings(), xla=xla))
        except BaseException as error:  # reported below, on the test's thread
            errors.append(error)
            shared.barrier.abort()

    threads = [threading.Thread(target=run, args=(rank,)) for rank in range(size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


# ------------------------------------------------------------------- construction
def test_the_runtime_satisfies_the_port_and_reads_ranks_from_xla() -> None:
    runtime = XlaFSDPRuntime(
        XlaFSDPSettings(), xla=LocalXla(size=4, rank=3), mixed_precision="bf16"
    )
    assert isinstance(runtime, Runtime)
    assert (runtime.num_processes, runtime.process_index, runtime.local_process_index) == (4, 3, 3)
    assert not runtime.is_main_process and runtime.n_gpu == 0
    assert runtime.shards_parameters and runtime.checkpoint_format == "sharded"
    assert runtime.mixed_precision == "bf16"
    assert runtime._xla.joined  # TrainingArguments' ranks then come from the "xla" group
    assert not make_runtime()._xla.joined  # one process needs no group
    full = XlaFSDPSettings(checkpoint_format="full")
    assert XlaFSDPRuntime(full, xla=LocalXla()).checkpoint_format == "full"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mixed_precision": "fp16"}, r"fp16 is not supported with XLA FSDP.*bf16=True"),
        ({"fp16_full_eval": True}, r"fp16 is not supported"),
        ({"bf16_full_eval": True}, r"bf16_full_eval=True would cast.*compute_dtype"),
        ({"torch_compile_backend": "openxla"}, r"torch_compile is not supported"),
    ],
)
def test_unsupported_options_fail_before_torch_xla_is_needed(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):  # not MissingExtraError: checked first
        XlaFSDPRuntime(XlaFSDPSettings(), **options)


@without_torch_xla
def test_without_torch_xla_the_error_says_what_to_install() -> None:
    with pytest.raises(MissingExtraError, match=r"torch_xla.*pip install 'torch-xla'"):
        XlaFSDPRuntime(XlaFSDPSettings())


@pytest.mark.parametrize(
    ("fsdp", "config", "error", "message"),
    [
        pytest.param(
            "full_shard",
            {"xla": True},
            MissingExtraError,
            r"pip install 'torch-xla'",
            marks=without_torch_xla,
        ),
        ("", {"xla": True}, ValueError, r"fsdp is empty"),
        ("full_shard offload", {"xla": True}, ValueError, r"no CPU offload"),
        ("full_shard", {"xla": True, "xla_fsdp_v2": True}, NotImplementedError, r"FSDPv1"),
    ],
)
def test_build_runtime_checks_xla_settings_before_anything_starts(
    tmp_path: Any, fsdp: str, config: dict[str, Any], error: type, message: str
) -> None:
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, fsdp=fsdp, fsdp_config=config)
    with pytest.raises(error, match=message):
        build_runtime(args)
    assert not torch.distributed.is_initialized()


def test_a_launcher_starting_more_processes_than_xla_joins_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # PJRT's CPU client under torchrun: every process is replica 0 of 1.
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match=r"launcher started 2 processes.*1 replica"):
        XlaFSDPRuntime(XlaFSDPSettings(), xla=LocalXla())
    assert XlaFSDPRuntime(XlaFSDPSettings(), xla=LocalXla(size=2)).num_processes == 2


def test_replicas_running_as_threads_are_refused() -> None:
    # xmp.spawn with CPU_NUM_DEVICES=2 (or a TPU v3): one process, a thread per replica.
    xla = LocalXla(size=2, devices_per_process=2)
    with pytest.raises(RuntimeError, match=r"drives 2 of the 2 XLA replicas as threads"):
        XlaFSDPRuntime(XlaFSDPSettings(), xla=xla)
    assert not xla.joined
    alone = LocalXla(devices_per_process=2)  # CPU_NUM_DEVICES=2 without spawning
    assert XlaFSDPRuntime(XlaFSDPSettings(), xla=alone).num_processes == 1


def test_bf16_computes_in_bfloat16_through_the_wrapper_not_autocast() -> None:
    runtime = make_runtime(mixed_precision="bf16")
    wrapped = runtime.prepare_model(Net(), training=True)
    assert wrapped.arguments["options"] == {"compute_dtype": torch.bfloat16}
    assert runtime.mixed_precision == "bf16"
    with runtime.autocast():
        assert not torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    assert make_runtime().prepare_model(Net(), training=True).arguments["options"] == {}


def test_bf16_with_another_compute_dtype_is_refused_before_torch_xla_is_needed() -> None:
    settings = XlaFSDPSettings(wrapper_options={"compute_dtype": torch.float32})
    with pytest.raises(ValueError, match=r"bf16=True.*compute_dtype.*float32"):
        XlaFSDPRuntime(settings, mixed_precision="bf16")  # no xla layer: raised first


def test_build_runtime_refuses_fp16_with_xla_before_importing_it() -> None:
    args = SimpleNamespace(fp16=True, fsdp="full_shard", fsdp_config={"xla": True})
    with pytest.raises(ValueError, match=r"fp16 is not supported with XLA FSDP"):
        build_runtime(args)


# ------------------------------------------------------------------------- model
def test_the_model_is_wrapped_with_the_policy_and_options_asked_for() -> None:
    settings = XlaFSDPSettings(wrapper_options={"compute_dtype": torch.bfloat16}, grad_ckpt=True)
    runtime = make_runtime(settings)
    model = Net()
    wrapped = runtime.prepare_model(model, training=True)
    assert isinstance(wrapped, Wrapped) and wrapped.inner is model
    assert wrapped.arguments == {
        "policy": WrapPolicy(layer_classes=(Block,)),
        "checkpoint_layers": True,
        "options": {"compute_dtype": torch.bfloat16},
    }
    assert runtime.prepare_model(model, training=True) is wrapped
    assert runtime.prepare_model(model, training=False) is wrapped  # evaluation after training
    assert runtime.prepare_model(wrapped, training=True) is wrapped
    assert runtime.unwrap_model(wrapped) is model


def test_a_model_only_evaluated_is_moved_not_wrapped() -> None:
    model = Net()
    assert make_runtime().prepare_model(model, training=False) is model


@pytest.mark.parametrize(
    ("settings", "model", "message"),
    [
        (XlaFSDPSettings(layer_classes=("Missing",)), Net(), r"\['Missing'\].*Net has no module"),
        (XlaFSDPSettings(grad_ckpt=True), nn.Linear(2, 2), r"no layer of Linear is auto-wrapped"),
        (XlaFSDPSettings(), Net().half(), r"float32 parameters only"),
        (XlaFSDPSettings(wrapper_options={"flatten": 1}), Net(), r"\['flatten'\].*accepts"),
    ],
)
def test_wrapping_problems_are_reported_before_wrapping(
    settings: XlaFSDPSettings, model: nn.Module, message: str
) -> None:
    runtime = make_runtime(settings)
    with pytest.raises(ValueError, match=message):
        runtime.prepare_model(model, training=True)
    assert runtime.prepare_model(model, training=False) is model  # nothing was wrapped


def test_sharded_state_needs_a_wrapped_model(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match=r"Net has not been wrapped by XLA FSDP"):
        make_runtime().save_sharded_state(str(tmp_path), Net())


def test_unwrapped_models_use_plain_torch_paths() -> None:
    runtime = make_runtime()
    model = nn.Linear(2, 1)
    model(torch.ones(3, 2)).sum().mul(100).backward()
    norm = runtime.clip_grad_norm(model.parameters(), 1.0)
    assert (
        norm > 1 and torch.nn.utils.get_total_norm([p.grad for p in model.parameters()]) <= 1.0001
    )
    with runtime.no_sync(model):
        pass
    assert runtime.state_dict(model).keys() == model.state_dict().keys()


# ----------------------------------------------------------------- steps and data
def test_the_optimizer_step_runs_the_graph() -> None:
    runtime = make_runtime()
    param = nn.Parameter(torch.ones(2))
    param.grad = torch.ones(2)
    optimizer = torch.optim.SGD([param], lr=0.5)
    assert runtime.optimizer_step(optimizer) is True
    assert torch.equal(param.detach(), torch.full((2,), 0.5))
    assert runtime._xla.steps == 1


def test_a_prepared_loader_marks_a_step_before_each_batch() -> None:
    runtime = make_runtime()
    loader = DataLoader(TensorDataset(torch.arange(10.0)), batch_size=2)
    prepared = runtime.prepare_dataloader(loader)
    assert isinstance(prepared, StepMarkingLoader)
    assert len(prepared) == 5 and prepared.dataset is loader.dataset and prepared.batch_size == 2
    seen = []
    for (batch,) in prepared:
        seen.append(runtime._xla.steps)
        assert batch.device == runtime.device
    assert seen == [1, 2, 3, 4, 5]
    assert runtime.prepare_dataloader(prepared) is prepared


def test_seeding_also_seeds_the_xla_generator() -> None:
    runtime = make_runtime()
    runtime.set_seed(7)
    first = torch.rand(2)
    runtime.set_seed(7)
    assert torch.equal(torch.rand(2), first) and runtime._xla.seeds == [7, 7]


# -------------------------------------------------------------------- collectives
def test_reductions_across_processes() -> None:
    def work(runtime: XlaFSDPRuntime) -> Any:
        value = (
            torch.tensor([1.0, 10.0]) if runtime.process_index == 0 else torch.tensor([3.0, 0.0])
        )
        counts = torch.tensor([runtime.process_index + 1])
        reduced = {op: runtime.reduce(value, op) for op in ("mean", "sum", "max", "min")}
        return reduced, runtime.reduce(counts), value

    for reduced, count_mean, _ in run_processes(2, work):
        assert reduced["mean"].tolist() == [2.0, 5.0] and reduced["sum"].tolist() == [4.0, 10.0]
        assert reduced["max"].tolist() == [3.0, 10.0] and reduced["min"].tolist() == [1.0, 0.0]
        assert count_mean.dtype == torch.float32 and count_mean.tolist() == [1.5]
    assert run_processes(2, work)[0][2].tolist() == [1.0, 10.0]  # the input is untouched
    with pytest.raises(ValueError, match=r"reduce op='avg' is not supported"):
        make_runtime().reduce(torch.ones(1), "avg")  # type: ignore[arg-type]  # a wrong op on purpose


def test_gather_joins_tensors_of_different_lengths_in_rank_order() -> None:
    def work(runtime: XlaFSDPRuntime) -> Any:
        rank = runtime.process_index
        rows = torch.arange(6.0).reshape(3, 2) if rank == 0 else torch.full((1, 2), 9.0)
        nested = {
            "rows": rows,
            "scalar": torch.tensor(float(rank)),
            "flags": torch.tensor([rank == 1]),
        }
        return runtime.gather(nested)

    for gathered in run_processes(2, work):
        assert gathered["rows"].tolist() == [[0, 1], [2, 3], [4, 5], [9, 9]]
        assert gathered["scalar"].tolist() == [0.0, 1.0]
        assert gathered["flags"].tolist() == [False, True]


def test_pad_across_processes_pads_to_the_largest() -> None:
    def work(runtime: XlaFSDPRuntime) -> Any:
        width = 3 if runtime.process_index == 0 else 5
        return runtime.pad_across_processes(torch.ones(2, width), dim=1, pad_index=-100)

    first, second = run_processes(2, work)
    assert first.shape == second.shape == (2, 5)
    assert first[0].tolist() == [1, 1, 1, -100, -100]


def test_sharded_evaluation_returns_each_sample_once() -> None:
    def work(runtime: XlaFSDPRuntime) -> Any:
        loader = DataLoader(TensorDataset(torch.arange(7.0)), batch_size=2)
        prepared = runtime.prepare_dataloader(loader)
        return [runtime.gather(batch) for (batch,) in prepared], len(prepared)

    for batches, length in run_processes(2, work):
        assert length == 2
        assert torch.cat(batches).tolist() == [0, 1, 2, 3, 4, 5, 6]


def test_the_main_process_goes_first() -> None:
    order: list[int] = []
    lock = threading.Lock()

    def work(runtime: XlaFSDPRuntime) -> None:
        with runtime.main_process_first(local=False), lock:
            order.append(runtime.process_index)
        runtime.wait_for_everyone()

    run_processes(3, work)
    assert order[0] == 0 and sorted(order) == [0, 1, 2]


def test_one_process_collectives_return_their_input() -> None:
    runtime = make_runtime()
    tensor = torch.ones(2)
    assert runtime.gather(tensor) is tensor and runtime.pad_across_processes(tensor) is tensor
    assert torch.equal(runtime.reduce(tensor), tensor)
    runtime.wait_for_everyone()
    assert runtime._xla.tags == ["trainer_dist.wait_for_everyone"]
    assert "XlaFSDPRuntime(device=cpu, process=0/1" in repr(runtime)


def test_several_xla_processes_refuse_to_gather_objects() -> None:
    """Lists of objects would otherwise stay this process's own without a word."""
    runtime = XlaFSDPRuntime(XlaFSDPSettings(), xla=LocalXla(size=2))
    with pytest.raises(NotImplementedError, match=r"objects across 2 processes"):
        runtime.gather_objects(["a"])
    assert XlaFSDPRuntime(XlaFSDPSettings(), xla=LocalXla()).gather_objects(["a"]) == ["a"]
