"""``Runtime.broadcast_object``: the main process's picklable value on every process.

The DDP case runs 2 real gloo processes (``python -m torch.distributed.run``), each
building a ``DistributedRuntime`` exactly as under a launcher.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch

from trainer_core import Runtime
from trainer_dist import SingleProcessRuntime, XlaFSDPRuntime, XlaFSDPSettings

_SCRIPT = """
import json, os, sys
from trainer_dist import DistributedRuntime

runtime = DistributedRuntime(use_cpu=True, timeout_seconds=30)
rank = runtime.process_index
sent = {"rank": rank, "params": {"learning_rate": 0.01 * (rank + 1)}, "ids": [rank] * 3}
received = runtime.broadcast_object(sent)
from_one = runtime.broadcast_object(("from", rank), src=1)
with open(os.path.join(sys.argv[1], f"rank{rank}.json"), "w") as handle:
    json.dump({"received": received, "from_one": from_one}, handle)
runtime.wait_for_everyone()
# Leave the group, then skip the interpreter's teardown: the C++ destructors of
# torch.distributed's background threads rarely abort ("terminate called without an
# active exception") a process that has done all its work, and the launcher then
# reports the run as failed.
import torch.distributed
torch.distributed.destroy_process_group()
sys.stdout.flush()
os._exit(0)
"""


def test_one_process_gets_its_own_object_back() -> None:
    runtime = SingleProcessRuntime(device="cpu")
    value = {"learning_rate": 0.1}
    assert isinstance(runtime, Runtime)
    assert runtime.broadcast_object(value) is value


class _OneXlaProcess:
    """The few TorchXla calls the runtime's constructor makes, for 1 or more processes."""

    def __init__(self, size: int) -> None:
        self.size = size

    def device(self) -> torch.device:
        return torch.device("cpu")

    def world_size(self) -> int:
        return self.size

    def ordinal(self) -> int:
        return 0

    def local_ordinal(self) -> int:
        return 0

    def devices_per_process(self) -> int:
        return 1

    def join_process_group(self) -> None:
        pass


def test_xla_broadcasts_only_within_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    alone = XlaFSDPRuntime(XlaFSDPSettings(), xla=_OneXlaProcess(1))
    assert alone.broadcast_object([1, 2]) == [1, 2]
    monkeypatch.setenv("WORLD_SIZE", "2")  # as a launcher of 2 processes would
    several = XlaFSDPRuntime(XlaFSDPSettings(), xla=_OneXlaProcess(2))
    with pytest.raises(NotImplementedError, match="2 XLA processes"):
        several.broadcast_object({"learning_rate": 0.1})


def _free_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


@pytest.mark.multiprocess
def test_two_gloo_processes_receive_the_source_rank_object(tmp_path: Path) -> None:
    script = tmp_path / "broadcast.py"
    script.write_text(textwrap.dedent(_SCRIPT))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        env.pop(name, None)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    command += ["--master_port", _free_port(), str(script), str(tmp_path)]
    done = subprocess.run(command, check=False, capture_output=True, text=True, env=env, timeout=90)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    reports: list[dict[str, Any]] = [
        json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)
    ]
    expected = {"rank": 0, "params": {"learning_rate": 0.01}, "ids": [0, 0, 0]}
    assert [report["received"] for report in reports] == [expected, expected]
    assert [report["from_one"] for report in reports] == [["from", 1], ["from", 1]]
