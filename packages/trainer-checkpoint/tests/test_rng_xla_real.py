"""The XLA generator's state round trip on real torch_xla (skipped without it).

Run it in the XLA environment tools/xla_check.sh builds: ``PJRT_DEVICE=CPU
.venvs/xla/bin/python -m pytest packages/trainer-checkpoint/tests/test_rng_xla_real.py``.
"""

from __future__ import annotations

import pytest

xm = pytest.importorskip(
    "torch_xla.core.xla_model",
    reason="torch_xla is not installed; run this file with .venvs/xla/bin/python",
)

import torch  # noqa: E402

from trainer_checkpoint import capture_rng_state, restore_rng_state  # noqa: E402

pytestmark = pytest.mark.slow


def test_restoring_the_captured_state_repeats_the_xla_draws() -> None:
    import torch_xla  # banned at module level: heavy, and only in the XLA environment

    device = torch_xla.device()
    torch.manual_seed(0)
    state = capture_rng_state()
    assert "xla" in state
    first = torch.rand(4, device=device).cpu()
    restore_rng_state(state)
    again = torch.rand(4, device=device).cpu()
    assert torch.equal(first, again)
    assert not torch.equal(first, torch.rand(4, device=device).cpu())
