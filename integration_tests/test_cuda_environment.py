"""``CUDA_VISIBLE_DEVICES`` / ``CUDA_DEVICE_ORDER`` set by a script after its imports.

The CUDA runtime reads both variables once, the first time anything asks it about
devices; from then on, changing them has no effect. Scripts written for the reference
often set them after ``import torch`` / ``from transformers import ...`` and before
building anything, which works because neither import asks CUDA anything. The same must
hold for ``from trainer import ...`` and for building ``TrainingArguments``: the devices
are chosen later, when ``args.device`` (or the Trainer) first needs them.

The check runs in a fresh interpreter (this test process may have asked CUDA already),
with torch's device-count entry point wrapped to record who calls it. On this CPU-only
machine the answer is 0 either way; what matters is that nobody asked before
``args.device``. The GPU side (which device a process really gets) is
``tools/gpu_check.sh``'s.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import json, sys, traceback
    import torch

    callers = []
    real_count = torch._C._cuda_getDeviceCount

    def recorded_count():
        callers.append("".join(traceback.format_stack(limit=8)[:-1]))
        return real_count()

    torch._C._cuda_getDeviceCount = recorded_count
    import trainer
    from trainer import Seq2SeqTrainer, Seq2SeqTrainingArguments, Trainer, TrainingArguments

    asked = {"import": list(callers)}
    TrainingArguments(output_dir=sys.argv[1], report_to="none")
    Seq2SeqTrainingArguments(output_dir=sys.argv[1], report_to="none", fsdp="full_shard")
    asked["arguments"] = callers[len(asked["import"]):]
    device = TrainingArguments(output_dir=sys.argv[1], report_to="none").device
    asked["device"] = len(callers) - len(asked["import"]) - len(asked["arguments"])
    print(json.dumps({**asked, "chosen": str(device)}))
    """
)


@pytest.mark.slow
def test_cuda_is_not_asked_before_the_device_is_needed(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    asked = json.loads(result.stdout.strip().splitlines()[-1])
    assert asked["import"] == [], "importing trainer asked CUDA:\n" + "\n".join(asked["import"])
    assert asked["arguments"] == [], "building arguments asked CUDA:\n" + "\n".join(
        asked["arguments"]
    )
    # The spy really sees the question: choosing the device asks it (and finds no GPU).
    assert asked["device"] >= 1
    assert asked["chosen"] == "cpu"
