"""LoRA adapters trained on 2 CPU processes under FSDP2 and DeepSpeed ZeRO-3 (one launch).

Users fine-tune PEFT adapters with either. What must hold under both, as on one process
(test_peft_lora.py): only the adapter trains; checkpoints hold the adapter, whole
(gathered, not one process's shard nor ZeRO-3's empty placeholders), and not the frozen
base model (not even as ZeRO-3's partitions of it); ``load_best_model_at_end`` and
resuming load it back (a resumed run logs the losses and ends with the adapter of an
uninterrupted one); ``save_model`` writes what ``PeftModel.from_pretrained`` reads on
one process; and the 2 processes train as one process does with the same global batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ._scripts import load_script

pytest.importorskip("peft")
pytest.importorskip("deepspeed")
base = load_script("test_distributed_worker.py")
worker = load_script("peft_distributed_worker.py")

pytestmark = [
    pytest.mark.multiprocess,
    pytest.mark.slow,
    # peft 0.21 reads transformers 5.24's deprecated ``is_gradient_checkpointing`` when it
    # wraps a model (the one-process run below): a warning between those two libraries.
    pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"),
]

SCRIPT = Path(__file__).parent / "peft_distributed_worker.py"
STRATEGIES = ["fsdp", "zero3"]
ADAPTER_FILES = {"adapter_model.safetensors", "adapter_config.json"}
FULL_WEIGHTS = {"model.safetensors", "pytorch_model.bin", "model.safetensors.index.json"}


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("peft")
    port = str(base.free_port())
    command = [str(base.BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", port]
    return base.run_launched([*command, str(SCRIPT), str(out)], out, 2, timeout=240)


@pytest.fixture(scope="module")
def one_process_adapter(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[float]]:
    """The adapter one process trains with the same global batch (4) and steps."""
    import peft

    from trainer import Trainer

    out = str(tmp_path_factory.mktemp("one"))
    args = worker.training_args(out, per_device_train_batch_size=4, save_strategy="no")
    model = worker.make_lora()
    Trainer(model=model, args=args, train_dataset=worker.Tokens()).train()
    return base.weights_of(peft.get_peft_model_state_dict(model))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_only_the_adapter_trains_and_the_group_trains_as_one_process(
    reports: list[dict[str, Any]], one_process_adapter: dict[str, list[float]], strategy: str
) -> None:
    for report in reports:
        assert report["world_size"] == 2 and report["ranks"] == [0, 1]
    main = reports[0][strategy]
    assert main["runtime"] == {"fsdp": "FSDPRuntime", "zero3": "DeepSpeedRuntime"}[strategy]
    assert main["trainable"] and all("lora_" in name for name in main["trainable"])
    assert main["base_unchanged"] is True
    final = main["adapter_files"][str(worker.STEPS)]
    assert base.max_difference(final, one_process_adapter) < 1e-5


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_checkpoints_hold_the_whole_adapter_and_no_base_weights(
    reports: list[dict[str, Any]], strategy: str
) -> None:
    main = reports[0][strategy]
    checkpoint = main["checkpoint"]
    names = set(checkpoint["names"])
    assert names >= ADAPTER_FILES and not names & FULL_WEIGHTS
    lora = worker.make_lora()
    expected = {
        name.replace(".default", ""): list(p.shape)
        for name, p in lora.named_parameters()
        if p.requires_grad
    }
    assert checkpoint["adapter_shapes"] == expected  # full-size: neither a shard nor empty
    if strategy == "zero3":
        # Each model file of ZeRO-3 holds no frozen-parameter fragments (the base model's
        # partitions): the reference's exclude_frozen_parameters for PEFT models.
        assert checkpoint["zero_frozen"] == [0, 0, 0, 0]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_best_model_and_resume_load_the_adapter_back(
    reports: list[dict[str, Any]], strategy: str
) -> None:
    main = reports[0][strategy]
    best = str(main["best_step"])
    assert base.max_difference(main["adapter"], main["adapter_files"][best]) == 0.0
    for report in reports:
        assert report[strategy]["resumed_losses"] == report[strategy]["losses"]
    final = main["adapter_files"][str(worker.STEPS)]
    assert base.max_difference(main["resumed_adapter"], final) == 0.0


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_save_model_writes_an_adapter_from_pretrained_reads_on_one_process(
    reports: list[dict[str, Any]], strategy: str
) -> None:
    main = reports[0][strategy]
    assert set(main["saved"]) >= ADAPTER_FILES and not set(main["saved"]) & FULL_WEIGHTS
    assert main["reloaded_difference"] == 0.0
