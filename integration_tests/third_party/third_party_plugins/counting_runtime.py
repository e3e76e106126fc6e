"""A runtime that wraps another and counts the calls the loop makes.

It forwards exactly the members of ``trainer_core.Runtime`` (no ``__getattr__``), so a
loop that needed anything else would fail with it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any

from trainer_core import ReduceOp, Runtime


def _forwarded(name: str) -> property:
    def read(self: CountingRuntime) -> Any:
        self.calls[name] += 1
        return getattr(self.inner, name)

    return property(read)


class CountingRuntime:
    """Forwards to ``inner``; ``calls`` counts each member used."""

    def __init__(self, inner: Runtime) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self.calls[name] += 1
        return getattr(self.inner, name)(*args, **kwargs)

    device = _forwarded("device")
    num_processes = _forwarded("num_processes")
    process_index = _forwarded("process_index")
    local_process_index = _forwarded("local_process_index")
    is_main_process = _forwarded("is_main_process")
    is_local_main_process = _forwarded("is_local_main_process")
    mixed_precision = _forwarded("mixed_precision")
    shards_parameters = _forwarded("shards_parameters")
    checkpoint_format = _forwarded("checkpoint_format")

    def prepare_model(self, model: Any, *, training: bool) -> Any:
        return self._call("prepare_model", model, training=training)

    def prepare_optimizer(self, optimizer: Any) -> Any:
        return self._call("prepare_optimizer", optimizer)

    def prepare_scheduler(self, scheduler: Any) -> Any:
        return self._call("prepare_scheduler", scheduler)

    def prepare_training(
        self,
        model: Any,
        *,
        create_optimizer: Callable[[], Any],
        create_scheduler: Callable[[Any], Any],
        num_training_steps: int,
    ) -> tuple[Any, Any, Any]:
        return self._call(
            "prepare_training",
            model,
            create_optimizer=create_optimizer,
            create_scheduler=create_scheduler,
            num_training_steps=num_training_steps,
        )

    def prepare_dataloader(self, dataloader: Any) -> Any:
        return self._call("prepare_dataloader", dataloader)

    def unwrap_model(self, model: Any) -> Any:
        return self._call("unwrap_model", model)

    def autocast(self, *, enabled: bool = True) -> AbstractContextManager[None]:
        return self._call("autocast", enabled=enabled)

    def backward(self, loss: Any) -> None:
        self._call("backward", loss)

    def no_sync(self, model: Any) -> AbstractContextManager[None]:
        return self._call("no_sync", model)

    def clip_grad_norm(self, parameters: Iterable[Any], max_norm: float) -> Any:
        return self._call("clip_grad_norm", parameters, max_norm)

    def optimizer_step(self, optimizer: Any) -> bool:
        return self._call("optimizer_step", optimizer)

    def gather(self, tensor: Any) -> Any:
        return self._call("gather", tensor)

    def pad_across_processes(self, tensor: Any, *, dim: int = 0, pad_index: int = -100) -> Any:
        return self._call("pad_across_processes", tensor, dim=dim, pad_index=pad_index)

    def reduce(self, tensor: Any, op: ReduceOp = "mean") -> Any:
        return self._call("reduce", tensor, op)

    def wait_for_everyone(self) -> None:
        self._call("wait_for_everyone")

    def broadcast_object(self, obj: Any, *, src: int = 0) -> Any:
        return self._call("broadcast_object", obj, src=src)

    def main_process_first(self, *, local: bool = True) -> AbstractContextManager[None]:
        return self._call("main_process_first", local=local)

    def set_seed(self, seed: int, *, deterministic: bool = False) -> None:
        self._call("set_seed", seed, deterministic=deterministic)

    def scaler_state_dict(self) -> dict[str, Any] | None:
        return self._call("scaler_state_dict")

    def load_scaler_state_dict(self, state: dict[str, Any]) -> None:
        self._call("load_scaler_state_dict", state)

    def state_dict(self, model: Any) -> dict[str, Any]:
        return self._call("state_dict", model)

    def load_state_dict(self, model: Any, state: dict[str, Any]) -> None:
        self._call("load_state_dict", model, state)

    def optimizer_state_dict(self, model: Any, optimizer: Any) -> dict[str, Any]:
        return self._call("optimizer_state_dict", model, optimizer)

    def load_optimizer_state_dict(self, model: Any, optimizer: Any, state: dict[str, Any]) -> None:
        self._call("load_optimizer_state_dict", model, optimizer, state)

    def save_sharded_state(self, directory: str, model: Any, optimizer: Any = None) -> None:
        self._call("save_sharded_state", directory, model, optimizer)

    def load_sharded_state(self, directory: str, model: Any, optimizer: Any = None) -> None:
        self._call("load_sharded_state", directory, model, optimizer)
