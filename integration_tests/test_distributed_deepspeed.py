"""DeepSpeed ZeRO-2 and ZeRO-3 over gloo on 2 CPU processes, under every launcher.

``deepspeed_worker.py`` runs the scenarios; these tests compare what each process
reported. The reference for the weights is DDP with the same global batch (itself checked
against one process in test_distributed_ddp.py): DeepSpeed in fp32 must reach the same
weights to float precision, in one group of 2 where each process trained on its own
half of the data.

Checkpoints also move between numbers of processes: those of the 2-process runs resume
on one process (``one``), and those one process writes resume on two (``two``), with the
same global batch, ending with the weights of the uninterrupted runs.

Each launch costs ~15 s of imports per process, so one launch checks all it can: the
``deepspeed`` launcher's (``zero``) also runs the user script and the saving checks (what
checkpoints and ``save_model`` hold, on a tiny Llama). The other launches are those that
differ in what they test: one process without a launcher, torchrun resuming its
checkpoints, and ``accelerate launch`` configured in two ways.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from ._scripts import load_script

HERE = Path(__file__).parent
base = load_script("test_distributed_worker.py")

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

WORKER = HERE / "deepspeed_worker.py"
BIN = Path(sys.executable).parent
TIMEOUT_S = 240
TOLERANCE = 1e-5
DEEPSPEED_FILE = {
    "train_batch_size": "auto",
    "train_micro_batch_size_per_gpu": "auto",
    "gradient_accumulation_steps": "auto",
    "gradient_clipping": "auto",
    "zero_optimization": {  # the offloads of the reference's ZeRO-3 example
        "stage": 3,
        "stage3_param_persistence_threshold": 0,
        "offload_optimizer": {"device": "cpu", "pin_memory": True},
        "offload_param": {"device": "cpu", "pin_memory": True},
    },
}


def launch(command: list[str], out: Path, *worker_args: str) -> list[dict[str, Any]]:
    """Run the worker under ``command`` (a launcher); return each rank's report."""
    return base.run_launched([*command, str(WORKER), *worker_args], out, 2, timeout=TIMEOUT_S)


def assert_one_group(reports: list[dict[str, Any]]) -> None:
    """One group of 2, each process training on its own half of every epoch."""
    base.assert_one_group_with_sharded_data(reports)


@pytest.fixture(scope="module")
def zero_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where ``zero`` writes (its checkpoints are resumed on one process)."""
    return tmp_path_factory.mktemp("zero")


@pytest.fixture(scope="module")
def zero(zero_dir: Path, deepspeed_file: Path) -> list[dict[str, Any]]:
    """Everything one launch can check, under the ``deepspeed`` launcher (each launch
    costs ~15 s of imports per process): the scenarios with configs built in code, the
    user script with ``--deepspeed <file>`` from the command line, then ``saving``."""
    port = str(base.free_port())
    command = [str(BIN / "deepspeed"), "--num_gpus", "2", "--master_port", port]
    out = zero_dir
    return launch(
        command, out, "zero", str(out), "--deepspeed", str(deepspeed_file), "--use_cpu", "true"
    )


@pytest.fixture(scope="module")
def one(
    zero: list[dict[str, Any]], zero_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    """One process without a launcher: resumes ``zero``'s checkpoints and writes its own."""
    out = tmp_path_factory.mktemp("one")
    command = [sys.executable, str(WORKER), "one", str(out), str(zero_dir)]
    return out, base.run_launched(command, out, 1, timeout=TIMEOUT_S)[0]


@pytest.fixture(scope="module")
def two(
    one: tuple[Path, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> list[dict[str, Any]]:
    """Two processes under torchrun, resuming the checkpoints one process wrote."""
    out = tmp_path_factory.mktemp("two")
    port = str(base.free_port())
    command = [str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", port]
    return launch(command, out, "two", str(out), str(one[0]))


@pytest.fixture(scope="module")
def ddp_weights(zero: list[dict[str, Any]]) -> dict[str, list[float]]:
    return zero[0]["ddp"]["weights"]


@pytest.fixture(scope="module")
def deepspeed_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "ds_config_zero3.json"
    path.write_text(json.dumps(DEEPSPEED_FILE))
    return path


@pytest.mark.parametrize("stage", ["2", "3"])
def test_zero_trains_like_ddp_in_one_group(zero: list[dict[str, Any]], stage: str) -> None:
    runs = [report["stages"][stage] for report in zero]
    assert_one_group([{**report, **run} for report, run in zip(zero, runs, strict=True)])
    main, ddp = runs[0], zero[0]["ddp"]
    assert main["runtime"] == "DeepSpeedRuntime"
    assert main["engine"] == "DeepSpeedEngine"
    assert main["wrapped_is_engine"]
    assert main["flags"] == [True, False]  # is_deepspeed_enabled, is_fsdp_enabled
    assert main["zero_stage"] == int(stage)
    assert main["checkpoint_format"] == "sharded"
    assert main["shards_parameters"] == (stage == "3")
    assert main["partitioned"] == (stage == "3")  # ZeRO-3 keeps only a partition per process
    assert main["basic_optimizer"] == "AdamW"  # the Trainer's (optim="adamw_torch")
    # ZeRO-Offload runs on the CPU too, with torch's AdamW (ZeRO-2's optimizer state).
    assert main["offloaded"] == [stage == "2", False]
    assert base.max_difference(main["weights"], ddp["weights"]) < TOLERANCE
    assert main["losses"] == pytest.approx(ddp["losses"], rel=1e-4)
    # The norm DeepSpeed computed before clipping, as DDP's clip_grad_norm_ returns it.
    assert main["grad_norms"] == pytest.approx(ddp["grad_norms"], rel=1e-4)
    assert main["learning_rates"] == pytest.approx(ddp["learning_rates"])


@pytest.mark.parametrize("stage", ["2", "3"])
def test_save_model_writes_full_weights(
    zero: list[dict[str, Any]], ddp_weights: dict[str, Any], stage: str
) -> None:
    main, replica = (report["stages"][stage] for report in zero)
    assert "model.safetensors" in main["saved_files"]
    assert base.max_difference(main["saved_weights"], ddp_weights) < TOLERANCE
    if stage == "3":  # gathered on the main process only
        assert replica["weights"] == {}


@pytest.mark.parametrize("stage", ["2", "3"])
def test_trainer_resumes_a_deepspeed_checkpoint_to_the_same_weights(
    zero: list[dict[str, Any]], stage: str
) -> None:
    main = zero[0]["stages"][stage]
    assert {"checkpoint-3", "checkpoint-6", "checkpoint-8"} <= set(main["checkpoints"])
    assert base.max_difference(main["trainer_resumed"], main["weights"]) < 1e-6
    # The history holds steps 1-3 from the checkpoint, then the resumed steps 4-8.
    assert main["resumed_losses"] == pytest.approx(main["losses"], rel=1e-5)


@pytest.mark.parametrize("stage", ["2", "3"])
def test_sharded_state_round_trip_through_the_runtime(
    zero: list[dict[str, Any]], stage: str
) -> None:
    for report in zero:  # under ZeRO-3 only the main process gets the gathered weights
        run = report["stages"][stage]
        if run["hand"]["final"] or report is zero[0]:
            assert base.max_difference(run["resumed"], run["hand"]["final"]) < 1e-6
    entries = zero[0]["stages"][stage]["hand"]["checkpoint_entries"]
    assert {"latest", "global_step4", "zero_to_fp32.py"} <= set(entries)


@pytest.mark.parametrize("stage", ["2", "3"])
def test_export_gives_plain_fp32_weights(zero: list[dict[str, Any]], stage: str) -> None:
    main = zero[0]["stages"][stage]
    hand = main["hand"]
    assert base.max_difference(hand["exported"], hand["at_save"]) < 1e-6
    assert base.max_difference(hand["exported_file"], hand["at_save"]) < 1e-6
    assert base.max_difference(main["final_export"], main["weights"]) < 1e-6


@pytest.mark.parametrize("stage", ["2", "3"])
def test_two_process_checkpoints_resume_on_one_process(
    zero: list[dict[str, Any]], one: tuple[Path, dict[str, Any]], stage: str
) -> None:
    _, report = one
    assert (report["world_size"], report["ranks"]) == (1, [0])
    resumed, uninterrupted = report["stages"][stage]["trainer"], zero[0]["stages"][stage]
    assert resumed["runtime"] == "DeepSpeedRuntime"
    # One process with batch 2 = two with batch 1 each (the same global batch).
    assert base.max_difference(resumed["weights"], uninterrupted["weights"]) < TOLERANCE
    assert resumed["losses"] == pytest.approx(uninterrupted["losses"], rel=1e-4)


@pytest.mark.parametrize("stage", ["2", "3"])
def test_resume_on_one_process_carries_the_adam_state(
    zero: list[dict[str, Any]], one: tuple[Path, dict[str, Any]], stage: str
) -> None:
    """By hand, with two parameter groups (weight decay on the weights only): the state
    DeepSpeed converts reaches the uninterrupted run's weights; the same weights with a
    fresh optimizer (``load_sharded_state`` without one) do not."""
    run, saved = one[1]["stages"][stage], zero[0]["stages"][stage]["hand"]
    assert base.max_difference(run["hand"]["loaded"], saved["at_save"]) < 1e-6
    assert base.max_difference(run["hand"]["final"], saved["final"]) < 1e-6
    assert base.max_difference(run["weights_only"]["loaded"], saved["at_save"]) < 1e-6
    assert base.max_difference(run["weights_only"]["final"], saved["final"]) > 1e-2


@pytest.mark.parametrize("stage", ["2", "3"])
def test_one_process_checkpoints_resume_on_two_processes(
    zero: list[dict[str, Any]],
    one: tuple[Path, dict[str, Any]],
    two: list[dict[str, Any]],
    stage: str,
) -> None:
    for report in two:
        assert (report["world_size"], report["ranks"]) == (2, [0, 1])
    first, second = (set(report["stages"][stage]["trainer"]["seen"]) for report in two)
    assert first != second  # each process trained on its own share
    single, run = one[1]["stages"][stage], two[0]["stages"][stage]
    trainer, hand = single["single"], single["single_hand"]  # uninterrupted, one process
    assert base.max_difference(trainer["weights"], zero[0]["stages"][stage]["weights"]) < TOLERANCE
    assert base.max_difference(run["trainer"]["weights"], trainer["weights"]) < TOLERANCE
    assert run["trainer"]["losses"] == pytest.approx(trainer["losses"], rel=1e-4)
    assert base.max_difference(run["hand"]["loaded"], hand["at_save"]) < 1e-6
    assert base.max_difference(run["hand"]["final"], hand["final"]) < 1e-6
    assert base.max_difference(run["weights_only"]["final"], hand["final"]) > 1e-2


def test_resuming_elsewhere_leaves_the_checkpoints_as_they_were(
    one: tuple[Path, dict[str, Any]], two: list[dict[str, Any]]
) -> None:
    """The universal copy is written beside the checkpoint and removed: the folders that
    were resumed hold the same files, byte for byte, and nothing else."""
    runs = [one[1], *two]
    assert all(run["stages"][stage]["source_unchanged"] for run in runs for stage in ("2", "3"))


def test_an_optimizer_state_the_conversion_would_lose_is_refused(
    one: tuple[Path, dict[str, Any]],
) -> None:
    refused = one[1]["refused"]
    assert refused["error"] is not None
    assert "written by 2 data-parallel processes; this run has 1" in refused["error"]
    assert "SGD" in refused["error"] and "Resume on 2 processes" in refused["error"]
    assert refused["unchanged"]  # refused before anything was written


def test_optimizer_and_scheduler_from_the_config(zero: list[dict[str, Any]]) -> None:
    run = zero[0]["config_optimizer"]
    assert run["basic_optimizer"] == "AdamW"  # the config's AdamW, torch's implementation
    assert run["scheduler"] == "WarmupDecayLR"
    rates = run["learning_rates"]
    assert rates[0] == 0.0 and max(rates) == pytest.approx(0.05)  # auto: warmup_steps=2, lr
    peak = rates.index(max(rates))
    after = rates[peak + 1 :]
    # Decays over the run (the logs show the rate each step used: the last is 1/8 of the
    # way from the end of the decay).
    assert after == sorted(after, reverse=True) and after[-1] < 0.4 * max(rates)
    losses = run["losses"]  # one batch's loss varies a lot: compare the two epochs' sums
    half = len(losses) // 2
    assert sum(losses[half:]) < sum(losses[:half])


def test_a_second_train_plans_the_schedule_afresh(zero: list[dict[str, Any]]) -> None:
    """The engine is kept, but neither the config's nor the Trainer's scheduler goes on
    from where the first run left it (at the end of its decay)."""
    for run in (zero[0]["config_optimizer"], zero[0]["compiled"]):
        assert run["second_run_learning_rates"] == pytest.approx(run["learning_rates"])


def test_torch_compile_compiles_the_engine_and_trains_alike(
    zero: list[dict[str, Any]], ddp_weights: dict[str, Any]
) -> None:
    run = zero[0]["compiled"]
    assert run["is_compiled"]
    assert base.max_difference(run["weights"], ddp_weights) < TOLERANCE


def test_deepspeed_launcher(zero: list[dict[str, Any]], ddp_weights: dict[str, Any]) -> None:
    reports = [{**report, **report["launcher"]} for report in zero]
    _check_launcher_run(reports, ddp_weights, stage=3, offloaded=[True, True])
    assert [report["local_rank_argument"] for report in reports] == [0, 1]  # --local_rank=K


def test_accelerate_launch_with_a_deepspeed_config_file(
    tmp_path: Path, deepspeed_file: Path, ddp_weights: dict[str, Any]
) -> None:
    config = base.write_accelerate_deepspeed_config(tmp_path, deepspeed_file, zero3_init_flag=False)
    command = [
        str(BIN / "accelerate"), "launch", "--config_file", str(config),
        "--main_process_port", str(base.free_port()),
    ]  # fmt: skip
    reports = launch(command, tmp_path, "launcher", str(tmp_path))
    _check_launcher_run(reports, ddp_weights, stage=3, offloaded=[True, True])


def test_accelerate_launch_with_deepspeed_plugin_options(
    tmp_path: Path, ddp_weights: dict[str, Any]
) -> None:
    command = [
        str(BIN / "accelerate"), "launch", "--use_deepspeed", "--zero_stage", "2",
        "--num_processes", "2", "--num_machines", "1", "--gradient_accumulation_steps", "2",
        "--gradient_clipping", "1.0", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--offload_optimizer_device", "cpu", "--offload_param_device", "cpu",
        "--main_process_port", str(base.free_port()),
    ]  # fmt: skip
    reports = launch(command, tmp_path, "launcher", str(tmp_path))
    # The reference's example d.: ZeRO-2 offloads the optimizer; it has no parameter offload.
    _check_launcher_run(reports, ddp_weights, stage=2, offloaded=[True, False])


def _check_launcher_run(
    reports: list[dict[str, Any]],
    ddp_weights: dict[str, Any],
    *,
    stage: int,
    offloaded: list[bool],
) -> None:
    assert_one_group(reports)
    for report in reports:
        assert report["runtime"] == "DeepSpeedRuntime"
        assert report["zero_stage"] == stage
        assert report["offloaded"] == offloaded
    assert base.max_difference(reports[0]["weights"], ddp_weights) < TOLERANCE


def test_trainer_keeps_create_optimizer_and_scheduler_overrides(tmp_path: Path) -> None:
    """The runtime now asks the Trainer for its optimizer (``prepare_training``); a
    subclass that overrides ``create_optimizer_and_scheduler`` still decides both."""
    import torch

    from trainer import Trainer

    class OwnOptimizer(Trainer):
        def create_optimizer_and_scheduler(self, num_training_steps: int) -> None:
            self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.5)
            self.lr_scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=1)
            self.steps_asked = num_training_steps

    args = base.training_args(str(tmp_path), num_train_epochs=1, per_device_train_batch_size=4)
    trainer = OwnOptimizer(model=base.make_model(), args=args, train_dataset=base.make_dataset())
    trainer.train()
    assert isinstance(trainer.optimizer, torch.optim.SGD)
    assert isinstance(trainer.lr_scheduler, torch.optim.lr_scheduler.StepLR)
    assert trainer.steps_asked == 4
    assert trainer.lr_scheduler.get_last_lr() == [pytest.approx(0.5 * 0.1**4)]


# ------------------------------------------------------------------ saving
@pytest.fixture(scope="module")
def saving(zero: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``saving`` scenario's reports (a tiny Llama on the 2 processes of ``zero``'s
    launch, which it ends: nothing it checks depends on the launcher)."""
    return [report["saving"] for report in zero]


@pytest.mark.parametrize("stage", ["2", "3"])
def test_deepspeed_checkpoints_hold_weights_and_config(
    saving: list[dict[str, Any]], stage: str
) -> None:
    """As the reference's: ``from_pretrained(checkpoint-N)`` works (ZeRO-3 gathers the
    16-bit weights when its config says so), beside DeepSpeed's files for resuming."""
    run = saving[0]["checkpoints"][stage]
    assert {"model.safetensors", "config.json", "latest", "global_step4"} <= set(run["files"])
    assert {"sharded_state.json", "scheduler.pt", "trainer_state.json"} <= set(run["files"])
    assert isinstance(run["pretrained"], dict), run["pretrained"]
    assert base.max_difference(run["pretrained"], run["weights"]) == 0.0


def test_save_only_model_writes_the_model_and_no_deepspeed_state(
    saving: list[dict[str, Any]],
) -> None:
    main = saving[0]["save_only_model"]
    files = set(main["files"])
    assert {"model.safetensors", "config.json", "trainer_state.json"} <= files
    assert not {name for name in files if name.startswith("global_step")}
    assert not files & {"latest", "sharded_state.json", "scheduler.pt", "rng_state_0.pth"}
    assert isinstance(main["pretrained"], dict), main["pretrained"]
    assert base.max_difference(main["pretrained"], main["weights"]) == 0.0


def test_resuming_a_save_only_model_checkpoint_is_refused(saving: list[dict[str, Any]]) -> None:
    for report in saving:  # on every process, before any collective
        error = report["save_only_model"]["resume_error"]
        assert "holds no DeepSpeed checkpoint" in error
        assert "save_only_model=True" in error and "from_pretrained" in error


def test_zero3_without_gathering_saves_deepspeed_files_and_the_config(
    saving: list[dict[str, Any]],
) -> None:
    """``stage3_gather_16bit_weights_on_model_save: false``: no full weights are gathered
    (as the reference: config + DeepSpeed's checkpoint, and a warning naming the way
    back); the weights export from both folders."""
    main = saving[0]["not_gathered"]
    for files in (main["checkpoint_files"], main["saved_files"]):
        assert {"config.json", "latest", "global_step4"} <= set(files)
        assert "model.safetensors" not in files
    assert isinstance(main["exported"], dict), main["exported"]
    assert base.max_difference(main["exported"], main["weights"]) < 1e-6
    assert base.max_difference(main["checkpoint_exported"], main["weights"]) < 1e-6
    warnings = main["warnings"]
    assert len(warnings) == 2  # the checkpoint, then save_model; the main process only
    assert all("export_deepspeed_checkpoint" in w and "zero_to_fp32" in w for w in warnings)
    assert "checkpoint-4 holds" in warnings[0] and ".tmp-" not in warnings[0]
    assert saving[1]["not_gathered"]["warnings"] == []


@pytest.mark.parametrize("schedule", ["WarmupLR", "WarmupDecayLR", "WarmupCosineLR"])
def test_warm_up_schedules_train_without_warm_up_steps(
    saving: list[dict[str, Any]], schedule: str
) -> None:
    """warmup_steps=0 (the default) fills warmup_num_steps with 1, which DeepSpeed
    accepts (0 is refused), and the run trains at the full rate after it. The logs show
    the rate each step used, and DeepSpeed's warm-up counts from iteration -1: the first
    two steps use the minimum."""
    run = saving[0]["no_warm_up"][schedule]
    assert run["warmup_num_steps"] == 1
    rates = run["learning_rates"]
    assert rates[:2] == [0.0, 0.0] and rates[2] == pytest.approx(0.05)
    assert len(run["losses"]) == 8
