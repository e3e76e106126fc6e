"""RNG states: the CUDA layout decisions and the files read when the process count changed.

This machine has no GPU, so the CUDA branches run against a stand-in for ``torch.cuda``
that records the calls; the names and arguments it accepts are those of torch's API
(``is_available``, ``is_initialized``, ``device_count``, ``random.get_rng_state``,
``random.get_rng_state_all``, ``random.set_rng_state(state, device=...)``). The real
generators are exercised on GPU machines (see the README).
"""

from __future__ import annotations

import logging
import os
import sys
import types

import pytest
import torch

from trainer_checkpoint import FolderCheckpointStore, capture_rng_state, restore_rng_state
from trainer_checkpoint._rng import _cuda_state, _restore_cuda
from trainer_core import CheckpointContent, TrainerState


class _Generators:
    """``torch.cuda.random`` for ``devices`` GPUs: one state tensor each."""

    def __init__(self, devices: int) -> None:
        self.states = [torch.full((16,), index, dtype=torch.uint8) for index in range(devices)]
        self.current = 0

    def get_rng_state(self, device: int | str = "cuda") -> torch.Tensor:
        return self.states[self.current if device == "cuda" else int(device)].clone()

    def get_rng_state_all(self) -> list[torch.Tensor]:
        return [state.clone() for state in self.states]

    def set_rng_state(self, new_state: torch.Tensor, device: int | str = "cuda") -> None:
        self.states[self.current if device == "cuda" else int(device)] = new_state.clone()


class _Cuda:
    def __init__(self, devices: int, *, initialized: bool = True) -> None:
        self.random = _Generators(devices)
        self.devices, self.initialized = devices, initialized

    def is_available(self) -> bool:
        return self.devices > 0

    def is_initialized(self) -> bool:
        return self.initialized

    def device_count(self) -> int:
        return self.devices


def test_no_cuda_state_without_cuda_or_before_it_is_used() -> None:
    assert _cuda_state(_Cuda(0), num_processes=1) is None
    # Not initialised: no generator has drawn yet, and asking would start a context.
    assert _cuda_state(_Cuda(2, initialized=False), num_processes=1) is None
    if not torch.cuda.is_available():
        assert "cuda" not in capture_rng_state()


def test_one_process_on_one_device_stores_that_device_state_as_the_reference_does() -> None:
    cuda = _Cuda(1)
    state = _cuda_state(cuda, num_processes=1)
    assert isinstance(state, torch.Tensor) and torch.equal(state, cuda.random.states[0])


@pytest.mark.parametrize(("devices", "processes"), [(1, 2), (2, 1), (4, 4)])
def test_several_processes_or_devices_store_every_device_state(
    devices: int, processes: int
) -> None:
    cuda = _Cuda(devices)
    states = _cuda_state(cuda, num_processes=processes)
    assert isinstance(states, list) and len(states) == devices
    assert all(torch.equal(a, b) for a, b in zip(states, cuda.random.states, strict=True))


def test_restoring_puts_back_every_device_state() -> None:
    saved = _Cuda(3).random.get_rng_state_all()
    target = _Cuda(3)
    target.random.states = [torch.zeros(16, dtype=torch.uint8) for _ in range(3)]
    _restore_cuda(saved, target)
    assert all(torch.equal(a, b) for a, b in zip(target.random.states, saved, strict=True))


def test_a_single_state_goes_to_the_current_device() -> None:
    target = _Cuda(2)
    target.random.current = 1
    _restore_cuda(torch.full((16,), 7, dtype=torch.uint8), target)
    assert int(target.random.states[1][0]) == 7 and int(target.random.states[0][0]) == 0


def test_fewer_visible_devices_restore_the_first_ones_and_warn(caplog) -> None:
    saved = _Cuda(4).random.get_rng_state_all()
    target = _Cuda(2)
    with caplog.at_level(logging.WARNING):
        _restore_cuda(saved, target)
    assert [int(s[0]) for s in target.random.states] == [0, 1]
    assert "4 CUDA devices but 2 are visible" in caplog.text


def test_cuda_states_are_skipped_without_cuda() -> None:
    _restore_cuda([torch.zeros(16, dtype=torch.uint8)], _Cuda(0))  # no error


def test_a_resume_on_fewer_processes_reads_the_rng_file_of_the_same_rank(tmp_path) -> None:
    # Written by 2 processes (rng_state_0/1.pth), read by one: rank 0's file, which holds
    # the sampler state that decides the data order.
    two = FolderCheckpointStore(num_processes=2)
    content = CheckpointContent(model=torch.nn.Linear(1, 1), trainer_state=TrainerState())
    # A checkpoint for resuming holds the optimizer too (else it counts as incomplete).
    content.optimizer = torch.optim.SGD(content.model.parameters(), lr=1.0)
    content.scheduler = torch.optim.lr_scheduler.LambdaLR(content.optimizer, lambda step: 1.0)
    content.rng_extra = {"sampler": torch.tensor([5])}
    path = two.save(str(tmp_path), 1, content)
    os.replace(os.path.join(path, "rng_state_0.pth"), os.path.join(path, "rng_state_1.pth"))
    torch.save({"sampler": torch.tensor([7])}, os.path.join(path, "rng_state_0.pth"))
    loaded = FolderCheckpointStore(num_processes=1).load(path, CheckpointContent())
    assert int(loaded.rng_state["sampler"]) == 7


def test_a_process_reading_another_process_rng_file_warns(tmp_path, caplog) -> None:
    two = FolderCheckpointStore(num_processes=2)
    content = CheckpointContent(model=torch.nn.Linear(1, 1), trainer_state=TrainerState())
    content.optimizer = torch.optim.SGD(content.model.parameters(), lr=1.0)
    content.scheduler = torch.optim.lr_scheduler.LambdaLR(content.optimizer, lambda step: 1.0)
    path = two.save(str(tmp_path), 1, content)  # the main process's files only
    assert not os.path.exists(os.path.join(path, "rng_state_1.pth"))
    with caplog.at_level(logging.WARNING):
        loaded = two.load(path, CheckpointContent(), process_index=1)
    assert loaded.rng_state is not None
    assert "holds no rng_state_1.pth for this process" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        two.load(path, CheckpointContent(), process_index=0)  # its own: no warning
    assert "rng_state" not in caplog.text


class _XlaModel:
    """torch_xla.core.xla_model's RNG functions: the XLA generator's state is one seed."""

    def __init__(self) -> None:
        self.seed = 101

    def get_rng_state(self, device: str | None = None) -> int:
        return self.seed

    def set_rng_state(self, seed: int, device: str | None = None) -> None:
        self.seed = seed


def test_no_xla_state_unless_the_run_imported_torch_xla() -> None:
    if "torch_xla" not in sys.modules:
        assert "xla" not in capture_rng_state()


def test_an_xla_run_stores_and_restores_the_xla_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in for the two modules (the real round trip is in test_rng_xla_real.py, run
    # with torch_xla installed).
    xla_model = _XlaModel()
    core = types.ModuleType("torch_xla.core")
    core.xla_model = xla_model  # type: ignore[attr-defined]  # a stand-in attribute
    monkeypatch.setitem(sys.modules, "torch_xla", types.ModuleType("torch_xla"))
    monkeypatch.setitem(sys.modules, "torch_xla.core", core)
    monkeypatch.setitem(sys.modules, "torch_xla.core.xla_model", xla_model)  # type: ignore[arg-type]
    state = capture_rng_state()
    assert state["xla"] == 101
    xla_model.seed = 7
    restore_rng_state(state)
    assert xla_model.seed == 101


def test_an_xla_state_is_skipped_by_a_run_without_xla(caplog: pytest.LogCaptureFixture) -> None:
    if "torch_xla" in sys.modules:
        pytest.skip("this interpreter runs XLA")
    with caplog.at_level(logging.INFO):
        restore_rng_state({"xla": 5})
    assert "xla RNG state" in caplog.text
