"""Mixed-precision settings: refusals with clear messages, bf16 autocast, fp16 loss scaling."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainer_core import MissingExtraError
from trainer_dist import SingleProcessRuntime
from trainer_dist._precision import PlainSteps, ScaledSteps, check_precision


def test_fp16_on_cpu_says_to_use_bf16() -> None:
    with pytest.raises(ValueError, match=r"fp16=True .*CPU.*use bf16"):
        SingleProcessRuntime(device="cpu", mixed_precision="fp16")


@pytest.mark.parametrize("option", ["mixed_precision", "fp16_full_eval"])
def test_fp16_on_apple_mps_says_to_use_bf16_or_fp32(option: str) -> None:
    # torch autocast has no fp16 on MPS; the check needs only the device's type.
    settings = {"mixed_precision": "no", "fp16_full_eval": False}
    settings[option] = "fp16" if option == "mixed_precision" else True
    with pytest.raises(ValueError, match=r"not supported on Apple MPS.*bf16.*fp32"):
        check_precision(
            half_precision_backend="auto",
            device=torch.device("mps"),
            bf16_full_eval=False,
            **settings,  # type: ignore[arg-type]  # str and bool values by key
        )


def test_fp16_full_eval_on_cpu_says_to_use_bf16_full_eval() -> None:
    with pytest.raises(ValueError, match=r"fp16_full_eval=True .*bf16_full_eval=True"):
        SingleProcessRuntime(device="cpu", fp16_full_eval=True)


def test_apex_is_refused_with_the_native_alternative() -> None:
    with pytest.raises(ValueError, match=r"'apex' is not supported.*'auto' \(or 'cuda_amp'\)"):
        SingleProcessRuntime(device="cpu", mixed_precision="bf16", half_precision_backend="apex")


def test_unknown_precision_and_backend_list_the_choices() -> None:
    with pytest.raises(ValueError, match=r"mixed_precision='fp8'.*'no', 'fp16', 'bf16'"):
        SingleProcessRuntime(device="cpu", mixed_precision="fp8")  # type: ignore[arg-type]  # invalid on purpose
    with pytest.raises(ValueError, match=r"half_precision_backend='amp'.*'cpu_amp'"):
        SingleProcessRuntime(device="cpu", half_precision_backend="amp")


def test_tf32_true_on_cpu_is_an_error_none_and_false_are_not() -> None:
    with pytest.raises(ValueError, match=r"tf32=True needs an NVIDIA GPU .*Ampere.*runs on cpu"):
        SingleProcessRuntime(device="cpu", tf32=True)
    assert SingleProcessRuntime(device="cpu", tf32=None).device.type == "cpu"
    assert SingleProcessRuntime(device="cpu", tf32=False).device.type == "cpu"


def test_unavailable_cuda_device_is_refused() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match=r"device='cuda:0'.*CUDA is not available"):
        SingleProcessRuntime(device="cuda:0")


def test_use_ipex_without_the_extension_names_the_extra() -> None:
    try:
        import intel_extension_for_pytorch  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("intel_extension_for_pytorch is installed here")
    with pytest.raises(
        MissingExtraError, match=r"use_ipex=True.*pip install 'intel-extension-for-pytorch'"
    ):
        SingleProcessRuntime(device="cpu", use_ipex=True)


def test_bf16_autocast_runs_linear_layers_in_bf16_and_can_be_disabled() -> None:
    runtime = SingleProcessRuntime(device="cpu", mixed_precision="bf16", bf16_full_eval=True)
    layer, inputs = nn.Linear(3, 2), torch.ones(1, 3)
    assert runtime.mixed_precision == "bf16"
    assert runtime.full_eval_dtype == torch.bfloat16
    with runtime.autocast():
        assert layer(inputs).dtype == torch.bfloat16
        with runtime.autocast(enabled=False):  # turns off an enclosing autocast too
            assert layer(inputs).dtype == torch.float32
    with runtime.autocast(enabled=False):
        assert layer(inputs).dtype == torch.float32
    assert runtime.scaler_state_dict() == {}


def test_bf16_backward_and_step_are_unscaled() -> None:
    runtime = SingleProcessRuntime(device="cpu", mixed_precision="bf16")
    layer = nn.Linear(3, 1)
    optimizer = runtime.prepare_optimizer(torch.optim.SGD(layer.parameters(), lr=1.0))
    runtime.backward(layer(torch.ones(1, 3)).sum())
    assert torch.equal(layer.weight.grad, torch.ones(1, 3))
    assert runtime.optimizer_step(optimizer) is True


def _scaled_setup() -> tuple[ScaledSteps, nn.Linear, torch.optim.Optimizer]:
    torch.manual_seed(0)
    steps, layer = ScaledSteps("cpu"), nn.Linear(3, 1)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    steps.track(optimizer)
    return steps, layer, optimizer


def test_loss_scaling_reports_skipped_steps_on_overflow() -> None:
    steps, layer, optimizer = _scaled_setup()
    before = layer.weight.detach().clone()
    steps.backward(layer(torch.ones(2, 3)).sum() * float("inf"))
    assert steps.step(optimizer) is False
    assert torch.equal(layer.weight, before)
    assert steps.state_dict()["scale"] == 2.0**15  # halved after the overflow
    optimizer.zero_grad()
    steps.backward(layer(torch.ones(2, 3)).sum())
    assert steps.step(optimizer) is True
    assert not torch.equal(layer.weight, before)


def test_loss_scaling_unscales_before_clipping() -> None:
    steps, layer, optimizer = _scaled_setup()
    steps.backward(layer(torch.ones(1, 3)).sum())
    assert torch.equal(layer.weight.grad, torch.full((1, 3), 2.0**16))  # scaled
    steps.unscale_gradients()
    assert torch.equal(layer.weight.grad, torch.ones(1, 3))
    norm = nn.utils.clip_grad_norm_(layer.parameters(), 1.0)
    torch.testing.assert_close(norm, torch.tensor(2.0))  # sqrt(3 weights + 1 bias)
    assert steps.step(optimizer) is True


def test_loss_scaling_tracks_an_optimizer_first_seen_at_step() -> None:
    steps, layer = ScaledSteps("cpu"), nn.Linear(3, 1)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    steps.backward(layer(torch.ones(1, 3)).sum())
    assert steps.step(optimizer) is True
    steps.backward(layer(torch.ones(1, 3)).sum())
    steps.unscale_gradients()  # known now
    assert steps.step(optimizer) is True


def test_loss_scaling_state_round_trips() -> None:
    steps, layer, optimizer = _scaled_setup()
    steps.backward(layer(torch.ones(1, 3)).sum() * float("nan"))
    steps.step(optimizer)
    restored = ScaledSteps("cpu")
    restored.load_state_dict(steps.state_dict())
    assert restored.state_dict()["scale"] == steps.state_dict()["scale"] == 2.0**15


def test_clipping_under_fp16_needs_a_prepared_optimizer() -> None:
    with pytest.raises(RuntimeError, match=r"runtime.prepare_optimizer\(optimizer\)"):
        ScaledSteps("cpu").unscale_gradients()


def test_plain_steps_have_no_state() -> None:
    steps = PlainSteps()
    steps.unscale_gradients()
    assert steps.state_dict() == {}
