"""ZeRO-3 models partitioned while ``from_pretrained`` loads them, on 2 CPU processes.

A tiny Llama is saved with ``save_pretrained``; ``zero_init_worker.py`` builds the
arguments with a ZeRO-3 config (which registers it with transformers through trainer-dist's
arguments hook), loads the model, checks that every process holds only its partition of
the saved weights, and trains it; the same run on a model loaded whole must reach the
same weights. A partitioned model is also evaluated and predicted (generating, with a
``Seq2SeqTrainer``) right after loading, through an inference-only engine, which must
match the model loaded whole on one process, and then trained, which must reach the
weights of the run that did not evaluate first. ``bf16_full_eval`` on a partitioned model
must give the loss of the whole model cast to bf16 while training stays in fp32 (the
config has no precision section), and a model loaded whole must be
partitioned by the inference engine when it is evaluated first, as in the reference, and
still train to the weights of the whole run. The accelerate flavour does the same with
the config coming from an accelerate config (``deepspeed_config_file`` and
``zero3_init_flag: true``).

Until trainer-dist's entry point is installed (its metadata is written at install time),
the workers see it through a stand-in distribution on ``PYTHONPATH``, so the test runs
the real path: ``TrainingArguments`` -> ``run_hooks`` -> ``register_zero3_init``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from trainer_core import ARGUMENTS_HOOKS_GROUP, available_plugins

from ._scripts import load_script

HERE = Path(__file__).parent
base = load_script("test_distributed_worker.py")

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

WORKER = HERE / "zero_init_worker.py"
BIN = Path(sys.executable).parent
TIMEOUT_S = 180
TOLERANCE = 1e-5
HOOK_NAME = "deepspeed_zero3_init"
DEEPSPEED_FILE = {
    "train_batch_size": "auto",
    "train_micro_batch_size_per_gpu": "auto",
    "gradient_accumulation_steps": "auto",
    "gradient_clipping": "auto",
    "zero_optimization": {
        "stage": 3,
        "reduce_bucket_size": "auto",
        "stage3_prefetch_bucket_size": "auto",
        "stage3_param_persistence_threshold": 0,  # partition even the tiny norms
        "stage3_gather_16bit_weights_on_model_save": True,  # save_model writes weights
    },
}


@pytest.fixture(scope="module")
def hook_path() -> None:
    """trainer-dist's arguments hook must come from its installed metadata (its
    pyproject's entry point): the workers find it there, as a user's script would."""
    installed = available_plugins(ARGUMENTS_HOOKS_GROUP)
    assert HOOK_NAME in installed, f"{HOOK_NAME!r} is not registered: {installed}"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The saved tiny Llama and the ZeRO-3 config file."""
    from trainer_testing.language import tiny_llama

    folder = tmp_path_factory.mktemp("zero_init_files")
    # Room for the prompt and the generated tokens (rotary positions: the weights do not
    # depend on it).
    tiny_llama(32, 16, seed=3).save_pretrained(folder / "model")
    config = folder / "ds_zero3.json"
    config.write_text(json.dumps(DEEPSPEED_FILE))
    return {"model": folder / "model", "config": config}


@pytest.fixture(scope="module")
def torchrun(
    hook_path: None, files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("torchrun")
    port = str(base.free_port())
    command = [
        str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", port,
        str(WORKER), "torchrun", str(out), str(files["model"]), str(files["config"]),
    ]  # fmt: skip
    return base.run_launched(command, out, 2, timeout=TIMEOUT_S)


def assert_partitioned_saved_weights(report: dict[str, Any]) -> None:
    partition = report["partition"]
    assert partition["all_have_ds_id"]
    assert partition["local_numel"] == 0  # nothing whole on this process
    assert 0 < partition["partition_numel"] < partition["full_numel"]
    assert partition["max_difference_to_file"] == 0.0  # the saved weights, gathered


def test_arguments_register_zero3_and_start_the_group(torchrun: list[dict[str, Any]]) -> None:
    for report in torchrun:
        assert report["registered"] and report["zero3_enabled"]
        assert report["group_before_model"] and report["backend"] == "gloo"
        config = report["registered_config"]
        assert config["train_micro_batch_size_per_gpu"] == 2  # filled from the arguments
        assert config["train_batch_size"] == 4  # 2 per process x 2 processes
        assert config["zero_optimization"]["reduce_bucket_size"] == "auto"  # needs the model
    assert [report["ranks"] for report in torchrun] == [[0, 1], [0, 1]]


def test_from_pretrained_partitions_the_saved_weights(torchrun: list[dict[str, Any]]) -> None:
    for report in torchrun:
        assert_partitioned_saved_weights(report)
    first, second = (report["partition"]["partition_numel"] for report in torchrun)
    assert first + second >= torchrun[0]["partition"]["full_numel"]  # (padded) halves


def test_save_model_before_training_gathers_the_partitions(
    torchrun: list[dict[str, Any]],
) -> None:
    """Not the empty local tensors zero.Init leaves (shape (0,)): the loaded weights,
    gathered without building an engine; the model stays partitioned for training."""
    for report in torchrun:
        saved = report["saved_before_training"]
        assert saved["still_partitioned"] and saved["engines"]
    main = torchrun[0]["saved_before_training"]
    assert {"model.safetensors", "config.json"} <= set(main["files"])
    assert main["shapes"] == main["source_shapes"]
    assert main["difference_to_file"] == 0.0


def test_training_reaches_the_weights_of_a_model_loaded_whole(
    torchrun: list[dict[str, Any]],
) -> None:
    main = torchrun[0]
    assert main["zero_init"]["runtime"] == "DeepSpeedRuntime"
    assert main["zero_init"]["zero_stage"] == 3
    assert not main["whole_partitioned"] and not main["zero3_enabled_after_withdrawal"]
    trained, whole = main["zero_init"]["weights"], main["whole"]["weights"]
    assert trained  # the main process holds the gathered weights
    assert base.max_difference(trained, whole) < TOLERANCE
    assert main["zero_init"]["losses"] == pytest.approx(main["whole"]["losses"], abs=TOLERANCE)


def test_accelerate_launch_with_zero3_init_flag(
    hook_path: None,
    files: dict[str, Path],
    torchrun: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    config = base.write_accelerate_deepspeed_config(tmp_path, files["config"], zero3_init_flag=True)
    command = [
        str(BIN / "accelerate"), "launch", "--config_file", str(config),
        "--main_process_port", str(base.free_port()),
        str(WORKER), "accelerate", str(tmp_path), str(files["model"]),
    ]  # fmt: skip
    reports = base.run_launched(command, tmp_path, 2, timeout=TIMEOUT_S)
    for report in reports:
        assert report["registered"] and report["zero3_enabled"]
        assert_partitioned_saved_weights(report)
    weights = reports[0]["zero_init"]["weights"]
    assert base.max_difference(weights, torchrun[0]["zero_init"]["weights"]) < TOLERANCE


@pytest.fixture(scope="module")
def one_process(files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The worker's evaluation and prediction, on the model loaded whole in this process."""
    import torch
    from transformers import AutoModelForCausalLM

    from trainer import Seq2SeqTrainer, Seq2SeqTrainingArguments

    worker = load_script("zero_init_worker.py")
    args = Seq2SeqTrainingArguments(
        output_dir=str(tmp_path_factory.mktemp("one_process")),
        per_device_eval_batch_size=1,
        predict_with_generate=True,
        use_cpu=True,
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
    )
    model = AutoModelForCausalLM.from_pretrained(files["model"], dtype=torch.float32)
    trainer = Seq2SeqTrainer(model=model, args=args, eval_dataset=worker.eval_dataset())
    metrics = trainer.evaluate()
    output = trainer.predict(worker.eval_dataset(), max_new_tokens=worker.NEW_TOKENS)
    in_bf16 = Seq2SeqTrainer(
        model=AutoModelForCausalLM.from_pretrained(files["model"], dtype=torch.float32),
        args=dataclasses.replace(args, bf16_full_eval=True),
        eval_dataset=worker.eval_dataset(),
    )
    return {
        "eval_loss": metrics["eval_loss"],
        "test_loss": output.metrics["test_loss"],
        "predictions": output.predictions.tolist(),
        "bf16_eval_loss": in_bf16.evaluate()["eval_loss"],
    }


def test_evaluate_and_predict_a_partitioned_model_before_training(
    torchrun: list[dict[str, Any]], one_process: dict[str, Any]
) -> None:
    for report in torchrun:
        first = report["evaluate_first"]
        assert first["partitioned"] and first["hooks_loaded"] == 0
        assert first["engine_before_training"] == "DeepSpeedEngine"
        assert first["same_engine_for_predict"]  # built once
        assert first["hooks_evaluating"] > 0  # its gathering hooks
        assert first["eval_loss"] == pytest.approx(one_process["eval_loss"], abs=TOLERANCE)
        assert first["test_loss"] == pytest.approx(one_process["test_loss"], abs=TOLERANCE)
        # One generated sequence per sample of the odd-sized set (the repeat cut off).
        assert len(first["predictions"]) == 7
        assert first["predictions"] == one_process["predictions"]
    assert torchrun[0]["evaluate_first"]["gathered_to_file"] == 0.0  # save_model's weights
    assert torchrun[1]["evaluate_first"]["gathered_to_file"] is None  # gathered on the main


def test_training_after_evaluation_reaches_the_weights_of_training_alone(
    torchrun: list[dict[str, Any]],
) -> None:
    for report in torchrun:
        first, alone = report["evaluate_first"], report["zero_init"]
        assert not first["inference_engine_after_training"]
        assert first["training_engine_is_new"] and first["training_engine_has_optimizer"]
        assert first["hooks"] == alone["hooks"]  # the inference engine's hooks are gone
        assert first["losses"] == pytest.approx(alone["losses"], abs=TOLERANCE)
        assert first["eval_loss_after"] == pytest.approx(alone["eval_loss_after"], abs=TOLERANCE)
    main = torchrun[0]
    trained, alone = main["evaluate_first"]["weights"], main["zero_init"]["weights"]
    assert trained
    assert base.max_difference(trained, alone) < TOLERANCE


def test_bf16_full_eval_of_a_partitioned_model(
    torchrun: list[dict[str, Any]], one_process: dict[str, Any]
) -> None:
    """The gathered weights are evaluated in bf16, as the whole model cast to bf16 is,
    though ``zero.Init`` partitioned them in fp32: the config asks for no precision, and
    ``bf16_full_eval`` alone asks for fp32 training (the partitions are cast for the
    inference engine only)."""
    in_bf16 = one_process["bf16_eval_loss"]
    assert abs(in_bf16 - one_process["eval_loss"]) > 5 * TOLERANCE  # bf16 really differs
    for report in torchrun:
        full_eval = report["bf16_full_eval"]
        assert full_eval["registered_precision"] == []  # no section added for zero.Init
        assert full_eval["partition_dtypes"] == ["torch.float32"]
        assert full_eval["partitioned"] and full_eval["inference_engine_bf16"]
        assert full_eval["training_config_precision"] == "no"
        assert full_eval["eval_loss"] == pytest.approx(in_bf16, abs=TOLERANCE / 10)


def test_bf16_full_eval_alone_trains_in_fp32(torchrun: list[dict[str, Any]]) -> None:
    """As in the reference, ``bf16_full_eval`` without ``bf16`` adds no bf16 section to
    the training engine's config: the run trains as the one without the flag. Evaluated
    after training (ZeRO-3), the training engine's fp32 partitions are not cast (its
    optimizer owns them), so the evaluation matches that run's too."""
    for report in torchrun:
        full_eval, alone = report["bf16_full_eval"], report["zero_init"]
        assert not full_eval["training_engine_bf16"]
        trained = full_eval["trained"]
        assert trained["losses"] == pytest.approx(alone["losses"], abs=TOLERANCE)
        assert trained["eval_loss_after"] == pytest.approx(alone["eval_loss_after"], abs=TOLERANCE)
    weights = torchrun[0]["bf16_full_eval"]["trained"]["weights"]
    assert weights
    assert base.max_difference(weights, torchrun[0]["zero_init"]["weights"]) < TOLERANCE


def test_a_whole_model_is_partitioned_to_evaluate_before_training(
    torchrun: list[dict[str, Any]], one_process: dict[str, Any]
) -> None:
    """As in the reference, evaluation under a ZeRO-3 config partitions a model loaded
    whole (each process then holds a share); training then starts from the partitions
    and reaches the weights of the whole model trained without evaluating first."""
    for report in torchrun:
        first = report["whole_evaluate_first"]
        assert first["whole_when_loaded"] and first["partitioned_by_evaluation"]
        assert first["engine_before_training"] == "DeepSpeedEngine"
        assert first["eval_loss"] == pytest.approx(one_process["eval_loss"], abs=TOLERANCE)
        assert first["losses"] == pytest.approx(report["whole"]["losses"], abs=TOLERANCE)
    main = torchrun[0]
    trained = main["whole_evaluate_first"]["weights"]
    assert trained
    assert base.max_difference(trained, main["whole"]["weights"]) < TOLERANCE
