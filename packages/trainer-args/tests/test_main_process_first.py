"""main_process_first: a plain block without a process group, an ordered one with gloo."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from trainer_args import TrainingArguments


def test_runs_the_block_without_a_process_group() -> None:
    args = TrainingArguments("out")
    ran = []
    with args.main_process_first(desc="tokenize"):
        ran.append(True)
    with args.main_process_first(local=False):
        ran.append(True)
    assert ran == [True, True]


def test_exceptions_propagate_without_a_process_group() -> None:
    args = TrainingArguments("out")
    with pytest.raises(RuntimeError, match="boom"), args.main_process_first():
        raise RuntimeError("boom")


# Each rank first reads its ranks from the process group alone (launcher variables
# removed), then runs three blocks and records what it saw when entering each:
# 1. one node (LOCAL_RANK = RANK), local=True: rank 1 must wait until rank 0 is done;
# 2. two nodes (LOCAL_RANK = 0 on both), local=True: both are main and run together; rank
#    0 only leaves its block after rank 1 entered, so waiting here would deadlock;
# 3. two nodes, local=False: rank 1 must wait for rank 0, the global main.
WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    import torch.distributed as dist
    from trainer_args import TrainingArguments

    folder = sys.argv[1]
    rank = int(os.environ["RANK"])
    dist.init_process_group("gloo")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        del os.environ[name]  # from here on the ranks can only come from the group
    args = TrainingArguments(folder, use_cpu=True)
    seen = {"from_group": [args.world_size, args.process_index, args.local_process_index]}

    def marker(name):
        return os.path.join(folder, name)

    def wait_for(path, seconds=60.0):
        deadline = time.time() + seconds
        while not os.path.exists(path):
            if time.time() > deadline:
                raise TimeoutError(path)
            time.sleep(0.02)

    os.environ["LOCAL_RANK"] = str(rank)
    with args.main_process_first(local=True, desc="one node"):
        seen["one_node"] = os.path.exists(marker("main-1"))
        if rank == 0:
            time.sleep(0.5)
            open(marker("main-1"), "w").close()

    os.environ["LOCAL_RANK"] = "0"
    with args.main_process_first(local=True, desc="two nodes"):
        open(marker(f"entered-2-{rank}"), "w").close()
        if rank == 0:
            wait_for(marker("entered-2-1"))
        seen["two_nodes_together"] = True

    with args.main_process_first(local=False, desc="global"):
        seen["global"] = os.path.exists(marker("main-3"))
        if rank == 0:
            time.sleep(0.5)
            open(marker("main-3"), "w").close()

    dist.destroy_process_group()
    with open(marker(f"rank{rank}.json"), "w") as handle:
        json.dump(seen, handle)
    # Skip the interpreter's teardown: the C++ destructors of torch.distributed's
    # background threads rarely abort a process that has done all its work.
    sys.stdout.flush()
    os._exit(0)
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
@pytest.mark.multiprocess
def test_replica_waits_for_the_main_process_with_a_gloo_group(tmp_path: Path) -> None:
    pytest.importorskip("torch.distributed")
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    port = str(_free_port())
    workers = []
    for rank in range(2):
        env = {
            **os.environ,
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": port,
            "WORLD_SIZE": "2",
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
        }
        workers.append(
            subprocess.Popen(
                [sys.executable, str(script), str(tmp_path)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = []
    try:
        for worker in workers:
            outputs.append(worker.communicate(timeout=180)[0])
    finally:
        for worker in workers:
            worker.kill()
    assert all(worker.returncode == 0 for worker in workers), outputs
    main = json.loads((tmp_path / "rank0.json").read_text())
    replica = json.loads((tmp_path / "rank1.json").read_text())
    assert main == {
        "from_group": [2, 0, 0],
        "one_node": False,
        "two_nodes_together": True,
        "global": False,
    }
    assert replica == {
        "from_group": [2, 1, 1],
        "one_node": True,
        "two_nodes_together": True,
        "global": True,
    }
