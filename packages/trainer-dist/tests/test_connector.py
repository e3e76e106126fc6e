"""build_runtime: TrainingArguments in, a runtime out, or an error that says what to change."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from trainer_args import TrainingArguments
from trainer_core import MissingExtraError, Runtime
from trainer_dist import SingleProcessRuntime, build_runtime, unwrap_model

_LAUNCHER_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


@pytest.fixture(autouse=True)
def _no_launcher(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def make_args(tmp_path: Path) -> Any:
    def make(**overrides: Any) -> TrainingArguments:
        return TrainingArguments(output_dir=str(tmp_path), **{"use_cpu": True, **overrides})

    return make


def test_default_arguments_build_a_single_process_runtime(make_args: Any) -> None:
    runtime = build_runtime(make_args())
    assert isinstance(runtime, Runtime)
    assert isinstance(runtime, SingleProcessRuntime)
    assert runtime.device == torch.device("cpu")
    assert runtime.num_processes == 1
    assert runtime.mixed_precision == "no"


def test_bf16_and_bf16_full_eval_are_passed_on(make_args: Any) -> None:
    runtime = build_runtime(
        make_args(bf16=True, bf16_full_eval=True, half_precision_backend="cpu_amp")
    )
    assert runtime.mixed_precision == "bf16"
    assert isinstance(runtime, SingleProcessRuntime)
    assert runtime.full_eval_dtype == torch.bfloat16


def test_torch_compile_options_compile_the_prepared_model(make_args: Any) -> None:
    runtime = build_runtime(make_args(torch_compile_backend="eager"))
    model = nn.Linear(2, 2)
    prepared = runtime.prepare_model(model, training=True)
    assert prepared is not model and unwrap_model(prepared) is model
    assert runtime.prepare_model(prepared, training=False) is prepared  # not compiled twice
    assert type(prepared).__name__ == "OptimizedModule"  # running it would cost seconds here


@pytest.mark.parametrize("variable", _LAUNCHER_VARIABLES)
def test_the_single_process_runtime_refuses_launched_processes(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "4")
    with pytest.raises(NotImplementedError, match=r"one of 4 launched processes"):
        SingleProcessRuntime(device="cpu")


def test_nccl_on_the_cpu_is_refused_before_any_group_starts(
    make_args: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = make_args(ddp_backend="nccl")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match=r"ddp_backend='nccl' needs CUDA GPUs.*gloo"):
        build_runtime(args)
    assert not torch.distributed.is_initialized()


def test_a_launcher_with_one_process_is_fine(
    make_args: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = make_args()
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert build_runtime(args).num_processes == 1


def test_a_garbled_world_size_is_reported(make_args: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    args = make_args()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match=r"WORLD_SIZE='two' is not an integer"):
        build_runtime(args)


def test_fsdp_without_a_launcher_says_how_to_launch(make_args: Any) -> None:
    with pytest.raises(ValueError, match=r"fsdp='full_shard auto_wrap'.*torchrun --nproc_per_node"):
        build_runtime(make_args(fsdp="full_shard auto_wrap"))


def test_fsdp_and_deepspeed_together_conflict(make_args: Any) -> None:
    args = SimpleNamespace(use_cpu=True, fsdp="full_shard", deepspeed={"train_batch_size": 8})
    with pytest.raises(ValueError, match=r"fsdp='full_shard' and deepspeed=.*Keep one"):
        build_runtime(args)


def test_xla_fsdp_without_torch_xla_is_a_missing_extra(
    make_args: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    args = SimpleNamespace(use_cpu=True, fsdp="full_shard", fsdp_config={"xla": True})
    with pytest.raises(MissingExtraError, match=r"torch_xla"):
        build_runtime(args)


def test_bad_fsdp_config_values_fail_before_any_group_starts(
    make_args: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    args = SimpleNamespace(use_cpu=True, fsdp="full_shard", fsdp_config={"forward_prefetch": "?"})
    with pytest.raises(ValueError, match=r"fsdp_config\['forward_prefetch'\]='\?'"):
        build_runtime(args)
    assert not torch.distributed.is_initialized()


def test_fp16_on_cpu_is_refused(make_args: Any) -> None:
    with pytest.raises(ValueError, match=r"fp16=True .*CPU.*bf16"):
        build_runtime(make_args(fp16=True))


def test_apex_is_refused(make_args: Any) -> None:
    with pytest.raises(ValueError, match=r"'apex' is not supported"):
        build_runtime(make_args(bf16=True, half_precision_backend="apex"))


def test_tf32_on_cpu_is_refused_only_when_explicit(make_args: Any) -> None:
    with pytest.raises(ValueError, match=r"tf32=True needs an NVIDIA GPU"):
        build_runtime(make_args(tf32=True))
    assert build_runtime(make_args(tf32=None)).device.type == "cpu"


def test_use_ipex_without_the_extension_is_a_missing_extra(make_args: Any) -> None:
    try:
        import intel_extension_for_pytorch  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("intel_extension_for_pytorch is installed here")
    with pytest.raises(MissingExtraError, match=r"intel_extension_for_pytorch"):
        build_runtime(make_args(use_ipex=True))


def test_fp16_together_with_bf16_is_refused_for_namespaces_too() -> None:
    # TrainingArguments refuses this itself; the connector also serves other argument objects.
    with pytest.raises(ValueError, match=r"fp16=True and bf16=True"):
        build_runtime(SimpleNamespace(use_cpu=True, fp16=True, bf16=True))


def test_a_minimal_namespace_is_enough() -> None:
    runtime = build_runtime(SimpleNamespace(no_cuda=True))
    assert runtime.device == torch.device("cpu")
    assert runtime.mixed_precision == "no"


def test_ddp_arguments_become_wrapper_options(make_args: Any) -> None:
    from trainer_dist import DDPOptions
    from trainer_dist._connector import _ddp_options

    args = make_args(
        ddp_find_unused_parameters=False,
        ddp_bucket_cap_mb=10,
        ddp_broadcast_buffers=False,
        ddp_static_graph=True,
    )
    assert _ddp_options(args) == DDPOptions(
        find_unused_parameters=False, bucket_cap_mb=10, broadcast_buffers=False, static_graph=True
    )


def test_accelerate_launch_fsdp_and_deepspeed_together_conflict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    args = SimpleNamespace(use_cpu=True, deepspeed={"train_batch_size": 8})
    with pytest.raises(ValueError, match=r"accelerate launch with FSDP.*deepspeed=.*Keep one"):
        build_runtime(args)


def test_accelerate_launch_fsdp_errors_come_before_any_group_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_STATE_DICT_TYPE", "LOCAL_STATE_DICT")
    with pytest.raises(ValueError, match=r"FSDP_STATE_DICT_TYPE='LOCAL_STATE_DICT'"):
        build_runtime(SimpleNamespace(use_cpu=True))
    assert not torch.distributed.is_initialized()


def test_fsdp_arguments_win_over_the_launcher(monkeypatch: pytest.MonkeyPatch) -> None:
    # The launcher's garbled value is never read: the arguments name the FSDP settings.
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_SHARDING_STRATEGY", "9")
    args = SimpleNamespace(use_cpu=True, fsdp="full_shard", fsdp_config={})
    with pytest.raises(ValueError, match=r"fsdp='full_shard'.*not started by a launcher"):
        build_runtime(args)


def test_the_launchers_mixed_precision_applies_when_the_arguments_ask_for_none(
    make_args: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    assert build_runtime(make_args()).mixed_precision == "bf16"
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")
    assert build_runtime(make_args()).mixed_precision == "no"


def test_the_launchers_fp16_is_dropped_on_the_cpu_as_accelerate_does(
    make_args: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp16")
    assert build_runtime(make_args()).mixed_precision == "no"
    with pytest.raises(ValueError, match=r"fp16=True .*needs a CUDA GPU"):
        build_runtime(make_args(fp16=True))  # asked for in the arguments: still refused
