"""``AcceleratorFacade`` (``trainer.accelerator``) over a real one-process runtime: the
members Trainer subclasses call answer as accelerate's ``Accelerator`` does, from the
runtime; ``args.distributed_state`` is accelerate's shared ``PartialState``.

The 2-process behaviour (gather, reduce, unwrapping DDP) is covered end to end by
``integration_tests/test_accelerator_facade.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from accelerate import PartialState
from accelerate.utils import DistributedType
from torch import nn

from trainer_args import TrainingArguments
from trainer_dist import AcceleratorFacade, SingleProcessRuntime


@pytest.fixture(scope="module")
def facade() -> AcceleratorFacade:
    return AcceleratorFacade(SingleProcessRuntime(device="cpu"))


def test_process_facts_come_from_the_runtime(facade: AcceleratorFacade) -> None:
    runtime = facade.runtime
    assert facade.device == runtime.device == torch.device("cpu")
    assert (facade.process_index, facade.local_process_index, facade.num_processes) == (0, 0, 1)
    assert facade.is_main_process and facade.is_local_main_process and facade.is_last_process
    assert facade.use_distributed is False
    assert facade.distributed_type == DistributedType.NO
    assert facade.mixed_precision == "no"
    assert facade.is_fsdp2 is False
    assert facade.deepspeed_plugin is None and facade.state.deepspeed_plugin is None
    assert facade.state.fsdp_plugin is None
    assert facade.state.num_processes == 1 and facade.state.device == runtime.device


def test_accumulation_is_left_to_the_trainer(facade: AcceleratorFacade) -> None:
    """transformers 5's Accelerator accumulates over 1 step (its Trainer divides the
    loss itself), so ``backward`` must give the plain gradients."""
    assert facade.gradient_accumulation_steps == 1
    assert facade.sync_gradients is True
    weight = nn.Parameter(torch.tensor([2.0]))
    with facade.autocast():
        loss = (weight * 3.0).sum()
    facade.backward(loss, scale_wrt_gas=False)
    assert weight.grad is not None and weight.grad.tolist() == [3.0]


def test_unwrap_model_removes_the_runtimes_wrappers(facade: AcceleratorFacade) -> None:
    model = nn.Linear(2, 1)
    assert facade.unwrap_model(nn.DataParallel(model)) is model
    assert facade.unwrap_model(model, keep_fp32_wrapper=False) is model
    prepared = facade.prepare(model)
    assert facade.unwrap_model(prepared) is model
    assert facade.get_state_dict(prepared).keys() == model.state_dict().keys()


def test_accumulate_and_no_sync_leave_the_gradients_of_one_process(
    facade: AcceleratorFacade,
) -> None:
    """``accumulate`` (over 1 step here) and ``no_sync`` (the runtime's, which has
    nothing to skip on one process) wrap a TRL-style step without changing it."""
    model = facade.prepare(nn.Linear(2, 1, bias=False))
    nn.init.ones_(model.weight)
    with facade.accumulate(model), facade.no_sync(model):
        facade.backward(model(torch.tensor([[1.0, 2.0]])).sum())
    assert facade.sync_gradients is True
    with facade.accumulate():
        facade.backward(model(torch.tensor([[1.0, 2.0]])).sum())
    assert model.weight.grad is not None and model.weight.grad.tolist() == [[2.0, 4.0]]


def test_no_trackers_as_under_transformers_trainer(facade: AcceleratorFacade) -> None:
    """transformers' Trainer builds its Accelerator without trackers (reporting goes
    through callbacks): accelerate then answers with no trackers and a blank one."""
    from accelerate.tracking import GeneralTracker

    assert facade.trackers == [] and facade.state.trackers == []
    tracker = facade.get_tracker("wandb", unwrap=True)
    assert isinstance(tracker, GeneralTracker)
    tracker.log({"loss": 1.0})  # blank: does nothing, as accelerate's
    facade.log({"loss": 1.0}, step=3)
    assert facade.clear(tracker) == [None]


def test_deepspeed_plugin_offers_accelerates_config_wrapper() -> None:
    from trainer_dist._accelerator_facade import DeepSpeedPluginView

    config = {"zero_optimization": {"stage": 3}, "train_micro_batch_size_per_gpu": 2}
    plugin = DeepSpeedPluginView(zero_stage=3, deepspeed_config=config)
    assert plugin.hf_ds_config.config == config
    assert plugin.hf_ds_config.is_zero3() is True
    assert plugin.hf_ds_config.get_value("train_micro_batch_size_per_gpu") == 2


def test_collectives_keep_accelerates_defaults(facade: AcceleratorFacade) -> None:
    values = torch.tensor([1.0, 2.0])
    assert torch.equal(facade.gather_for_metrics(values), values)
    assert torch.equal(facade.gather({"x": values})["x"], values)
    assert facade.gather_for_metrics(["a", "b"]) == ["a", "b"]
    assert facade.gather_for_metrics("a", use_gather_object=True) == ["a"]
    assert torch.equal(facade.reduce(values), values)  # "sum" by default
    assert torch.equal(facade.reduce(values, "mean", scale=2.0), values * 2)
    assert torch.equal(facade.pad_across_processes(values), values)
    facade.wait_for_everyone()
    with facade.main_process_first(), facade.local_main_process_first():
        pass


def test_unsupported_options_say_what_to_do(facade: AcceleratorFacade) -> None:
    with pytest.raises(ValueError, match="pad at the end"):
        facade.pad_across_processes(torch.zeros(2), pad_first=True)
    with pytest.raises(ValueError, match="bf16/fp16"):
        facade.autocast(autocast_handler=object())
    with pytest.raises(AttributeError, match=r"no 'init_trackers'.*trainer\.runtime"):
        _ = facade.init_trackers
    with pytest.raises(AttributeError, match="init_trackers"):
        _ = facade.state.init_trackers


def test_process_helpers_come_from_partial_state(facade: AcceleratorFacade) -> None:
    with facade.split_between_processes([1, 2, 3]) as mine:
        assert list(mine) == [1, 2, 3]


def test_print_and_save_on_the_main_process(
    facade: AcceleratorFacade, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    facade.print("hello")
    assert capsys.readouterr().out == "hello\n"
    state = {"w": torch.ones(2)}
    facade.save(state, tmp_path / "a.pt")
    facade.save(state, str(tmp_path / "a.safetensors"), safe_serialization=True)
    assert torch.equal(torch.load(tmp_path / "a.pt")["w"], state["w"])
    assert (tmp_path / "a.safetensors").stat().st_size > 0
    assert facade.free_memory(state, state) == [None, None]


def test_distributed_state_is_accelerates_partial_state(tmp_path: Path) -> None:
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True)
    state = args.distributed_state
    runtime = SingleProcessRuntime(device="cpu")
    assert isinstance(state, PartialState)
    assert state.__dict__ is PartialState().__dict__  # the shared singleton
    assert state.distributed_type == DistributedType.NO
    assert (state.process_index, state.num_processes) == (0, 1)
    assert state.local_process_index == runtime.local_process_index
    assert state.is_main_process and state.device == runtime.device


def test_end_training_leaves_the_process_group(tmp_path: Path, facade: AcceleratorFacade) -> None:
    """``Trainer.end()`` (transformers 5) ends a script through ``end_training``: the
    process group is gone afterwards; without one it does nothing."""
    facade.end_training()  # no group: nothing to leave
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        facade.end_training()
        assert not torch.distributed.is_initialized()
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
