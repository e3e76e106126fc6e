"""Every method of the runtime port, on the CPU, through the single-process runtime."""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainer_core import Runtime
from trainer_dist import DeviceDataLoader, SingleProcessRuntime, unwrap_model


@pytest.fixture(scope="module")
def runtime() -> SingleProcessRuntime:
    return SingleProcessRuntime(device="cpu")


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))


def test_satisfies_the_runtime_protocol(runtime: SingleProcessRuntime) -> None:
    assert isinstance(runtime, Runtime)


def test_process_roles_without_a_launcher(runtime: SingleProcessRuntime) -> None:
    assert runtime.device == torch.device("cpu")
    assert runtime.num_processes == 1
    assert runtime.process_index == 0
    assert runtime.local_process_index == 0
    assert runtime.is_main_process is True
    assert runtime.is_local_main_process is True
    assert runtime.mixed_precision == "no"
    assert runtime.n_gpu == 0
    assert runtime.full_eval_dtype is None


def test_prepare_model_places_on_the_device_without_wrapping(runtime: SingleProcessRuntime) -> None:
    model = _mlp()
    prepared = runtime.prepare_model(model, training=True)
    assert prepared is model
    assert all(p.device == runtime.device for p in prepared.parameters())
    assert runtime.prepare_model(model, training=False) is model


def test_prepare_optimizer_and_scheduler_return_them(runtime: SingleProcessRuntime) -> None:
    optimizer = torch.optim.SGD(_mlp().parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    assert runtime.prepare_optimizer(optimizer) is optimizer
    assert runtime.prepare_scheduler(scheduler) is scheduler


def test_prepare_dataloader_yields_the_same_batches(runtime: SingleProcessRuntime) -> None:
    dataset = TensorDataset(torch.arange(10.0).reshape(5, 2), torch.arange(5))
    loader = DataLoader(dataset, batch_size=2)
    prepared = runtime.prepare_dataloader(loader)
    assert isinstance(prepared, DeviceDataLoader)
    assert prepared.base_dataloader is loader
    assert len(prepared) == 3
    assert prepared.dataset is dataset
    assert prepared.batch_size == 2
    for got, expected in zip(prepared, loader, strict=True):
        assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
    assert runtime.prepare_dataloader(prepared) is prepared


def test_unwrap_model_strips_dataparallel_and_compile(runtime: SingleProcessRuntime) -> None:
    model = _mlp()
    wrapped = torch.compile(nn.DataParallel(model), backend="eager")
    assert runtime.unwrap_model(wrapped) is model
    assert unwrap_model(nn.DataParallel(torch.compile(model, backend="eager"))) is model
    assert runtime.unwrap_model(model) is model


def test_state_dict_has_no_wrapper_prefixes(runtime: SingleProcessRuntime) -> None:
    model = _mlp()
    state = runtime.state_dict(torch.compile(nn.DataParallel(model), backend="eager"))
    assert list(state) == list(model.state_dict())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_contexts_are_one_shared_no_op_in_fp32(runtime: SingleProcessRuntime) -> None:
    model = _mlp()
    first = runtime.autocast()
    assert runtime.autocast() is first
    assert runtime.autocast(enabled=False) is first
    assert runtime.no_sync(model) is first
    assert runtime.no_sync(_mlp()) is first
    assert runtime.main_process_first() is first
    assert runtime.main_process_first(local=False) is first
    assert isinstance(first, contextlib.nullcontext)
    with runtime.autocast(), runtime.autocast():  # re-entrant, nests
        assert model(torch.ones(1, 4)).dtype == torch.float32


def test_backward_clip_and_step_match_plain_torch(runtime: SingleProcessRuntime) -> None:
    torch.manual_seed(0)
    model, reference = _mlp(), _mlp()
    reference.load_state_dict(model.state_dict())
    inputs = torch.randn(6, 4)
    opt = runtime.prepare_optimizer(torch.optim.SGD(model.parameters(), lr=0.5))
    ref_opt = torch.optim.SGD(reference.parameters(), lr=0.5)

    runtime.backward(model(inputs).pow(2).sum() * 10)
    norm = runtime.clip_grad_norm(model.parameters(), 0.1)
    assert runtime.optimizer_step(opt) is True

    reference(inputs).pow(2).sum().mul(10).backward()
    ref_norm = nn.utils.clip_grad_norm_(reference.parameters(), 0.1)
    ref_opt.step()
    assert isinstance(norm, torch.Tensor) and norm.device == runtime.device
    assert torch.equal(norm, ref_norm)
    for param, ref_param in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(param, ref_param)


def test_collectives_return_their_input(runtime: SingleProcessRuntime) -> None:
    tensor = torch.arange(6).reshape(2, 3)
    nested = {"logits": tensor, "labels": (tensor, tensor)}
    assert runtime.gather(tensor) is tensor
    assert runtime.gather(nested) is nested
    assert runtime.pad_across_processes(tensor) is tensor
    assert runtime.pad_across_processes(tensor, dim=1, pad_index=0) is tensor
    for op in ("mean", "sum", "max", "min"):
        assert runtime.reduce(tensor, op) is tensor
    assert runtime.reduce(tensor) is tensor
    assert runtime.wait_for_everyone() is None
    ran = []
    with runtime.main_process_first():
        ran.append(True)
    assert ran == [True]


def test_reduce_rejects_unknown_ops(runtime: SingleProcessRuntime) -> None:
    with pytest.raises(ValueError, match=r"op='avg'.*'max', 'mean', 'min', 'sum'"):
        runtime.reduce(torch.ones(1), "avg")  # type: ignore[arg-type]  # the invalid value


def test_runtime_set_seed_seeds_torch(runtime: SingleProcessRuntime) -> None:
    runtime.set_seed(7)
    first = torch.rand(3)
    runtime.set_seed(7, deterministic=False)
    assert torch.equal(torch.rand(3), first)


def test_scaler_state_is_empty_without_fp16(runtime: SingleProcessRuntime) -> None:
    assert runtime.scaler_state_dict() == {}
    runtime.load_scaler_state_dict({})


def test_repr_names_device_and_precision(runtime: SingleProcessRuntime) -> None:
    assert repr(runtime) == "SingleProcessRuntime(device=cpu, mixed_precision='no', n_gpu=0)"
