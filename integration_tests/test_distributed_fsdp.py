"""FSDP2 (torch's ``fully_shard``) over gloo on 2 CPU processes, launched by torchrun.

Every strategy must train to the weights one process reaches with the same global batch
(which is also what DDP reaches, see test_distributed_ddp.py), with parameters really
sharded (``DTensor``) in one group of 2. A sharded checkpoint written by 2 processes is
loaded back by 2 processes and by 1.

Three launches: torchrun and ``accelerate launch`` (2 processes each), and one plain
``python`` process that computes the one-process reference and then loads torchrun's
sharded checkpoint (one launch for both: each launch costs seconds of start-up, and
neither part depends on a fresh process).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ._scripts import load_script

worker = load_script("test_distributed_worker.py")
launch, max_difference = worker.launch, worker.max_difference
assert_one_group_with_sharded_data = worker.assert_one_group_with_sharded_data

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

VARIANTS: list[dict[str, Any]] = [
    {
        "fsdp": "full_shard auto_wrap offload",
        "fsdp_config": {"state_dict_type": "SHARDED_STATE_DICT"},
    },
    {"fsdp": "shard_grad_op auto_wrap", "fsdp_config": {"forward_prefetch": True}},
    {"fsdp": "hybrid_shard", "fsdp_config": {"min_num_params": 40}},
    {"fsdp": "no_shard"},
    {
        "fsdp": "full_shard auto_wrap",
        "fsdp_config": {
            "transformer_layer_cls_to_wrap": ["Block"],
            "activation_checkpointing": True,
            "backward_prefetch": "backward_pre",
            "limit_all_gathers": True,
            "sync_module_states": True,
            "use_orig_params": True,
        },
        "gradient_accumulation_steps": 2,
        "per_device_train_batch_size": 1,
    },
]


# bf16: FSDP gathers the parameters in bf16 (its mixed-precision policy) under autocast.
BF16_VARIANT: dict[str, Any] = {"fsdp": "full_shard auto_wrap", "bf16": True}
LAUNCHED = [*VARIANTS, BF16_VARIANT]


@pytest.fixture(scope="module")
def fsdp_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    out = tmp_path_factory.mktemp("fsdp")
    return out, launch("torchrun", out, "fsdp", "--variants", json.dumps(LAUNCHED))


@pytest.fixture(scope="module")
def one_process(
    tmp_path_factory: pytest.TempPathFactory, fsdp_run: tuple[Path, list[dict[str, Any]]]
) -> dict[str, Any]:
    """One plain process: ``single`` (the reference, batch 4), then ``load_shards`` of the
    sharded checkpoint that ``fsdp_run``'s 2 processes wrote (hence after it)."""
    shards = str(fsdp_run[0] / "sharded")
    out = tmp_path_factory.mktemp("one_process")
    return launch("python", out, "single,load_shards", "--shards", shards)[0]


@pytest.fixture(scope="module")
def single(one_process: dict[str, Any]) -> dict[str, Any]:
    return one_process["single"]


@pytest.mark.parametrize("number", range(len(VARIANTS)))
def test_every_strategy_shards_and_trains_like_one_process(
    fsdp_run: tuple[Path, list[dict[str, Any]]], single: dict[str, Any], number: int
) -> None:
    _, reports = fsdp_run
    variants = [report["variants"][number] for report in reports]
    assert_one_group_with_sharded_data(
        [{**report, **variant} for report, variant in zip(reports, variants, strict=True)]
    )
    main = variants[0]
    assert main["runtime"] == "FSDPRuntime"
    assert main["flags"] == [True, False]  # is_fsdp_enabled, is_deepspeed_enabled
    assert main["parameter_types"] == ["DTensor"]
    assert main["fsdp_units"] >= 1
    assert max_difference(main["weights"], single["weights"]) < 1e-5
    assert len(main["grad_norm"]) == 4  # clipped by the global norm of the sharded gradients
    # Never moved to the device whole (neither by the Trainer nor by the runtime):
    # fully_shard places each unit as it shards it, so the model never has to fit whole.
    assert main["whole_moves"] == 0


def test_offload_puts_every_unit_under_the_cpu_offload_policy(
    fsdp_run: tuple[Path, list[dict[str, Any]]],
) -> None:
    """On the CPU the policy moves nothing, but it is applied (and the first variant,
    which asks for it, trains like one process and round-trips a sharded checkpoint)."""
    _, reports = fsdp_run
    offloaded = [variant["offloaded_units"] for variant in reports[0]["variants"]]
    assert offloaded[0] == reports[0]["variants"][0]["fsdp_units"] == 3
    assert offloaded[1:] == [0] * (len(LAUNCHED) - 1)


def test_bf16_gathers_the_parameters_in_bf16(
    fsdp_run: tuple[Path, list[dict[str, Any]]], single: dict[str, Any]
) -> None:
    """The sharded master weights stay fp32; training ends close to fp32 training."""
    _, reports = fsdp_run
    variants = [report["variants"][len(VARIANTS)] for report in reports]
    main = variants[0]
    assert [variant["gathered_dtypes"] for variant in variants] == [["torch.bfloat16"]] * 2
    assert main["parameter_types"] == ["DTensor"]
    assert all(
        variant["gathered_dtypes"] == ["torch.float32"] for variant in reports[0]["variants"][:-1]
    )
    difference = max_difference(main["weights"], single["weights"])
    assert 1e-5 < difference < 2e-2  # bf16 rounding, but the same training


def test_wrapping_follows_the_options(fsdp_run: tuple[Path, list[dict[str, Any]]]) -> None:
    _, reports = fsdp_run
    units = [variant["fsdp_units"] for variant in reports[0]["variants"]]
    # auto_wrap wraps the 2 Blocks (from _no_split_modules) and the root; without it only
    # the root; min_num_params=40 wraps the modules holding at least 40 parameters.
    assert units[0] == 3
    assert units[3] == 1
    assert units[2] > 1
    assert [v["checkpoint_format"] for v in reports[0]["variants"][:2]] == ["sharded", "full"]


def test_sharded_state_round_trips_on_two_processes(
    fsdp_run: tuple[Path, list[dict[str, Any]]],
) -> None:
    _, reports = fsdp_run
    first = reports[0]["variants"][0]
    assert max_difference(first["reloaded"], first["weights"]) == 0.0
    assert first["optimizer_restored"] is True
    assert "blocks.0.linear.weight" in first["optimizer_keys"]  # keyed by parameter name


def test_a_sharded_checkpoint_of_two_processes_loads_in_one(
    fsdp_run: tuple[Path, list[dict[str, Any]]], one_process: dict[str, Any]
) -> None:
    _, reports = fsdp_run
    loaded = one_process["load_shards"]  # fsdp_run's <out>/sharded, loaded in one process
    assert max_difference(loaded["weights"], reports[0]["variants"][0]["weights"]) == 0.0


# The reference's example accelerate FSDP config ("Using Accelerate Launcher with
# Trainer", b.), with this test model's layer class and 2 processes.
ACCELERATE_FSDP_CONFIG = """\
compute_environment: LOCAL_MACHINE
distributed_type: FSDP
downcast_bf16: 'no'
fsdp_config:
  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP
  fsdp_backward_prefetch_policy: BACKWARD_PRE
  fsdp_forward_prefetch: true
  fsdp_offload_params: false
  fsdp_sharding_strategy: 1
  fsdp_state_dict_type: FULL_STATE_DICT
  fsdp_sync_module_states: true
  fsdp_transformer_layer_cls_to_wrap: Block
  fsdp_use_orig_params: true
machine_rank: 0
main_training_function: main
mixed_precision: 'no'
num_machines: 1
num_processes: 2
rdzv_backend: static
same_network: true
tpu_env: []
tpu_use_cluster: false
tpu_use_sudo: false
use_cpu: false
"""


def test_accelerate_launch_with_an_fsdp_config_shards_the_model(
    tmp_path: Path, single: dict[str, Any]
) -> None:
    """The script passes no fsdp argument: FSDP comes from the launcher's config alone."""
    config = tmp_path / "accelerate_fsdp.yaml"
    config.write_text(ACCELERATE_FSDP_CONFIG)
    command = [
        str(worker.BIN / "accelerate"), "launch", "--config_file", str(config),
        "--main_process_port", str(worker.free_port()),
        str(worker.WORKER), "fsdp", str(tmp_path), "--variants", json.dumps([{}]),
    ]  # fmt: skip
    reports = worker.run_launched(command, tmp_path, 2)
    variants = [report["variants"][0] for report in reports]
    assert_one_group_with_sharded_data(
        [{**report, **variant} for report, variant in zip(reports, variants, strict=True)]
    )
    main = variants[0]
    assert main["runtime"] == "FSDPRuntime"
    assert main["parameter_types"] == ["DTensor"]
    assert main["fsdp_units"] == 3  # the 2 Blocks named in the config, and the root
    assert main["checkpoint_format"] == "full"
    assert max_difference(main["weights"], single["weights"]) < 1e-5
