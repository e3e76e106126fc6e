"""A checkpoint store that keeps every checkpoint's state in memory.

Only an empty marker folder ``<output_dir>/checkpoint-<step>`` goes to disk: the port
names checkpoints by that folder and the loop checks it exists. Useful where writing
weights is not wanted (tests, short searches); nothing survives the process.
"""

from __future__ import annotations

import copy
import os
import random
import shutil
from collections.abc import Callable, Collection, Mapping
from typing import Any

import torch

from trainer_core import CheckpointContent, LoadedCheckpoint

PREFIX = "checkpoint-"


def _step(path: str) -> int:
    return int(os.path.basename(path)[len(PREFIX) :])


class MemoryCheckpointStore:
    """``trainer_core.CheckpointStore`` in memory; pass ``Trainer(checkpoint_store=...)``."""

    def __init__(self) -> None:
        self._saved: dict[str, dict[str, Any]] = {}

    def save(
        self,
        output_dir: str,
        step: int,
        content: CheckpointContent,
        *,
        process_index: int = 0,
        is_writer: bool = True,
        barrier: Callable[[], None] | None = None,
        sharded_writer: Callable[[str], None] | None = None,
    ) -> str:
        if sharded_writer is not None:
            raise TypeError("MemoryCheckpointStore keeps full state only")
        path = os.path.join(output_dir, f"{PREFIX}{step}")
        snapshot = {  # built whole before anything is recorded: a failure leaves nothing
            "weights": self._weights(content),
            "optimizer": _copy_state(content.optimizer),
            "scheduler": _copy_state(content.scheduler),
            "scaler": copy.deepcopy(dict(content.scaler_state or {})) or None,
            "trainer_state": copy.deepcopy(content.trainer_state),
            "rng": {
                "python": random.getstate(),
                "torch": torch.get_rng_state(),
                **copy.deepcopy(dict(content.rng_extra)),
            },
        }
        os.makedirs(path, exist_ok=True)
        self._saved[path] = snapshot
        return path

    def save_model(self, output_dir: str, content: CheckpointContent) -> None:
        self._saved.setdefault(output_dir, {})["weights"] = self._weights(content)

    def checkpoints(self, output_dir: str) -> list[str]:
        found = [
            path
            for path in self._saved
            if os.path.dirname(path) == output_dir and os.path.basename(path).startswith(PREFIX)
        ]
        return sorted(found, key=_step)

    def latest(self, output_dir: str) -> str | None:
        found = self.checkpoints(output_dir)
        return found[-1] if found else None

    def rotate(self, output_dir: str, limit: int, *, keep: Collection[str] = ()) -> list[str]:
        found = self.checkpoints(output_dir)
        deletable = [path for path in found[:-1] if path not in keep]
        excess = max(len(found) - max(limit, 1), 0)
        deleted = deletable[:excess]
        for path in deleted:
            self.delete(path)
        return deleted

    def delete(self, checkpoint: str) -> bool:
        known = self._saved.pop(checkpoint, None) is not None
        shutil.rmtree(checkpoint, ignore_errors=True)
        return known

    def load(
        self,
        checkpoint: str,
        content: CheckpointContent,
        *,
        process_index: int = 0,
        map_location: Any = None,
    ) -> LoadedCheckpoint:
        snapshot = self._snapshot(checkpoint)
        if content.model is not None:
            content.model.load_state_dict(snapshot["weights"])
        if content.optimizer is not None and snapshot.get("optimizer") is not None:
            content.optimizer.load_state_dict(copy.deepcopy(snapshot["optimizer"]))
        if content.scheduler is not None and snapshot.get("scheduler") is not None:
            content.scheduler.load_state_dict(copy.deepcopy(snapshot["scheduler"]))
        return LoadedCheckpoint(
            path=checkpoint,
            trainer_state=copy.deepcopy(snapshot.get("trainer_state")),
            scaler_state=snapshot.get("scaler"),
            rng_state=snapshot.get("rng"),
        )

    def is_sharded(self, checkpoint: str) -> bool:
        return False

    def load_model(self, checkpoint: str, model: Any, *, map_location: Any = None) -> None:
        model.load_state_dict(self._snapshot(checkpoint)["weights"])

    def restore_rng(self, rng_state: Mapping[str, Any]) -> None:
        random.setstate(rng_state["python"])
        torch.set_rng_state(rng_state["torch"])

    def _snapshot(self, checkpoint: str) -> dict[str, Any]:
        if checkpoint not in self._saved:
            raise FileNotFoundError(f"No checkpoint {checkpoint!r} in this MemoryCheckpointStore")
        return self._saved[checkpoint]

    @staticmethod
    def _weights(content: CheckpointContent) -> dict[str, Any] | None:
        if content.model is None:
            return None
        state = content.state_dict if content.state_dict is not None else content.model.state_dict()
        return {name: value.detach().clone() for name, value in state.items()}


def _copy_state(stateful: Any) -> Any:
    return None if stateful is None else copy.deepcopy(stateful.state_dict())
