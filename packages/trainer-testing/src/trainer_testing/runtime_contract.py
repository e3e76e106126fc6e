"""The contract suite of ``trainer_core.Runtime`` on one process (needs the ``torch`` extra).

Every runtime runs it, the built-in ones and any passed as ``Trainer(runtime=...)``. It
checks what the training loop relies on beyond the method signatures: the prepared
dataloader still answers ``len()``, ``dataset`` and ``batch_size`` (the loop plans its
epochs and resumes from them), ``unwrap_model`` gives back the very module that was
prepared, the factories of ``prepare_training`` are called at most once, a step changes
the weights, and with one process the collectives return their input.

Use it from pytest, one test per check::

    @pytest.mark.parametrize("check", RUNTIME_CHECKS, ids=lambda check: check.__name__)
    def test_runtime_contract(check):
        check(MyRuntime())

or all at once with :func:`check_runtime_contract`. Each check takes a runtime that has
not prepared anything yet. What several processes do needs a launch and is not here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import DataLoader, RandomSampler

from trainer_core import Runtime
from trainer_testing.models import RegressionDataset, RegressionModel


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _is_context_manager(value: Any) -> bool:
    return hasattr(value, "__enter__") and hasattr(value, "__exit__")


def check_is_a_runtime_with_process_roles(runtime: Runtime) -> None:
    """The protocol's members exist and the roles of one process are consistent."""
    _expect(isinstance(runtime, Runtime), f"{type(runtime).__name__} lacks Runtime's members")
    _expect(runtime.num_processes == 1, "this suite runs on one process")
    _expect(runtime.process_index == 0 and runtime.local_process_index == 0, "ranks of one")
    _expect(runtime.is_main_process is True, "the only process is the main process")
    _expect(runtime.is_local_main_process is True, "the only process is its node's main")
    _expect(isinstance(runtime.device, torch.device), "device must be a torch.device")
    _expect(runtime.mixed_precision in ("no", "fp16", "bf16"), "mixed_precision")
    _expect(runtime.checkpoint_format in ("full", "sharded"), "checkpoint_format")
    _expect(isinstance(runtime.shards_parameters, bool), "shards_parameters must be a bool")


def check_prepare_training_then_a_step_changes_the_weights(runtime: Runtime) -> None:
    """``prepare_training`` calls each factory at most once and returns (model, optimizer,
    scheduler); ``unwrap_model`` of the result is the module passed in; autocast,
    backward, clipping and an optimizer step then train it."""
    module = RegressionModel()
    calls: list[str] = []

    def create_optimizer() -> Any:
        calls.append("optimizer")
        return torch.optim.SGD(module.parameters(), lr=0.1)

    def create_scheduler(optimizer: Any) -> Any:
        calls.append("scheduler")
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)

    prepared = runtime.prepare_training(
        module,
        create_optimizer=create_optimizer,
        create_scheduler=create_scheduler,
        num_training_steps=2,
    )
    _expect(isinstance(prepared, tuple) and len(prepared) == 3, "prepare_training's result")
    model, optimizer, scheduler = prepared
    _expect(calls.count("optimizer") <= 1, "create_optimizer was called more than once")
    _expect(calls.count("scheduler") <= 1, "create_scheduler was called more than once")
    _expect(runtime.unwrap_model(model) is module, "unwrap_model must give the module back")
    _expect(runtime.unwrap_model(module) is module, "unwrap_model of a bare module is itself")
    before = {name: value.detach().clone() for name, value in module.state_dict().items()}
    device = runtime.device
    batch = {"input_x": torch.ones(4, 1, device=device), "labels": torch.zeros(4, device=device)}
    with runtime.autocast():
        loss = model(**batch)["loss"]
    runtime.backward(loss)
    norm = runtime.clip_grad_norm(list(module.parameters()), 1.0)
    _expect(torch.is_tensor(norm), "clip_grad_norm must return the norm as a tensor")
    stepped = runtime.optimizer_step(optimizer)
    _expect(stepped is True, "optimizer_step returns True for a step it took")
    scheduler.step()
    changed = any(
        not torch.equal(before[name], value) for name, value in module.state_dict().items()
    )
    _expect(changed, "a step did not change the weights of the module passed in")


def check_prepared_dataloader_keeps_what_the_loop_reads(runtime: Runtime) -> None:
    """The prepared loader has ``len()``, ``dataset``, ``batch_size`` and ``sampler``
    (when the loader had one), and yields that many batches on the runtime's device."""
    dataset = RegressionDataset(size=20)
    loader = DataLoader(dataset, batch_size=8, sampler=RandomSampler(dataset))
    prepared = runtime.prepare_dataloader(loader)
    try:
        length = len(prepared)
    except TypeError as error:
        raise AssertionError(
            "the prepared dataloader has no len(): the loop plans its epochs by it"
        ) from error
    _expect(length == 3, f"len() of the prepared dataloader is {length}, expected 3")
    _expect(getattr(prepared, "dataset", None) is dataset, "the prepared loader's dataset")
    _expect(getattr(prepared, "batch_size", None) == 8, "the prepared loader's batch_size")
    _expect(getattr(prepared, "sampler", None) is not None, "the prepared loader's sampler")
    batches = list(prepared)
    _expect(len(batches) == 3, "iterating the prepared dataloader gave another count")
    _expect(
        all(batch["input_x"].device == runtime.device for batch in batches),
        "batches must arrive on runtime.device",
    )


def check_collectives_return_their_input_on_one_process(runtime: Runtime) -> None:
    """gather, reduce, padding and broadcast are identities on one process; the block
    helpers are context managers; a barrier returns."""
    tensor = torch.arange(6.0, device=runtime.device).reshape(3, 2)
    _expect(torch.equal(runtime.gather(tensor), tensor), "gather() on one process")
    for op in ("mean", "sum", "max", "min"):
        _expect(torch.equal(runtime.reduce(tensor, op), tensor), f"reduce(op={op!r})")
    _expect(torch.equal(runtime.pad_across_processes(tensor), tensor), "pad_across_processes()")
    payload = {"learning_rate": 0.01}
    _expect(runtime.broadcast_object(payload) == payload, "broadcast_object() on one process")
    runtime.wait_for_everyone()
    module = runtime.prepare_model(RegressionModel(), training=False)
    for block in (runtime.main_process_first(), runtime.no_sync(module), runtime.autocast()):
        _expect(_is_context_manager(block), "main_process_first/no_sync/autocast are blocks")
        with block:
            pass


def check_state_dicts_round_trip(runtime: Runtime) -> None:
    """Full model and optimizer state leave and re-enter through the runtime."""
    module = RegressionModel()
    model = runtime.prepare_model(module, training=True)
    optimizer = runtime.prepare_optimizer(torch.optim.AdamW(module.parameters(), lr=0.1))
    state = runtime.state_dict(model)
    _expect(set(state) == set(module.state_dict()), "state_dict() must hold every weight")
    changed = {name: torch.full_like(value, 0.5) for name, value in state.items()}
    runtime.load_state_dict(model, changed)
    _expect(
        all(torch.all(value == 0.5) for value in module.state_dict().values()),
        "load_state_dict() did not load into the module",
    )
    saved = runtime.optimizer_state_dict(model, optimizer)
    _expect(isinstance(saved, dict) and "param_groups" in saved, "optimizer_state_dict()")
    runtime.load_optimizer_state_dict(model, optimizer, saved)
    scaler = runtime.scaler_state_dict()
    _expect(scaler is None or isinstance(scaler, dict), "scaler_state_dict() is None or a dict")


def check_set_seed_repeats_draws(runtime: Runtime) -> None:
    """``set_seed`` makes torch's generator repeat its draws."""
    runtime.set_seed(11)
    first = torch.rand(4)
    runtime.set_seed(11)
    _expect(torch.equal(first, torch.rand(4)), "set_seed() did not seed torch")


RUNTIME_CHECKS: tuple[Callable[[Runtime], None], ...] = (
    check_is_a_runtime_with_process_roles,
    check_prepare_training_then_a_step_changes_the_weights,
    check_prepared_dataloader_keeps_what_the_loop_reads,
    check_collectives_return_their_input_on_one_process,
    check_state_dicts_round_trip,
    check_set_seed_repeats_draws,
)
"""Each check takes a runtime that has prepared nothing yet."""


def check_runtime_contract(make_runtime: Callable[[], Runtime]) -> None:
    """Run every check on a fresh runtime from ``make_runtime``.

    Raises:
        AssertionError: naming the first broken part of the contract.
    """
    for check in RUNTIME_CHECKS:
        check(make_runtime())
