"""FSDP on 2 CPU processes with a transformers model whose embedding and output share a
weight, asked for the transformers 5 way (``--fsdp`` alone, a size-based wrap policy in
``--fsdp_config``). The worker is fsdp_tied_worker.py."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from ._scripts import load_script

pytest.importorskip("transformers")

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

base = load_script("test_distributed_worker.py")

WORKER = Path(__file__).with_name("fsdp_tied_worker.py")
TORCHRUN = Path(sys.executable).parent / "torchrun"


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("fsdp_tied")
    port = str(base.free_port())
    command = [str(TORCHRUN), "--nproc_per_node", "2", "--master_port", port, str(WORKER)]
    return base.run_launched([*command, str(out)], out, 2, timeout=150)


def test_the_bare_fsdp_switch_shards_with_size_based_units(reports: list[dict[str, Any]]) -> None:
    main = reports[0]
    assert main["fsdp"] == ["full_shard", "auto_wrap"]
    assert main["runtime"] == "FSDPRuntime" and main["parameter_types"] == ["DTensor"]
    units = main["units"]
    assert "" in units and len(units) > 1  # the root and layers past the threshold
    # The tied embedding and output projection are in no unit but the root's.
    assert not [u for u in units if u.endswith(("embed_tokens", "lm_head"))]


def test_tied_weights_train_and_save_like_the_whole_model(reports: list[dict[str, Any]]) -> None:
    main = reports[0]
    assert main["eval_before"] == pytest.approx(main["whole_before"], abs=1e-5)
    assert main["eval_after"] < main["eval_before"]  # it trained
    assert reports[1]["eval_after"] == pytest.approx(main["eval_after"], abs=1e-6)
    assert main["reloaded_tied"] is True
    assert main["whole_after"] == pytest.approx(main["eval_after"], abs=1e-5)
