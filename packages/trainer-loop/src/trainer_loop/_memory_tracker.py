"""Memory reports of ``__init__``, ``train``, ``evaluate`` and ``predict`` (skip_memory_metrics).

With ``skip_memory_metrics=False`` each stage reports, in bytes:

- ``<stage>_mem_cpu_alloc_delta``: process RSS at the end minus at the start (may be
  negative when the stage freed memory);
- ``<stage>_mem_cpu_peaked_delta``: how far RSS rose above its end value during the
  stage (never negative); alloc + peaked is what the stage needed;
- on CUDA, ``<stage>_mem_gpu_alloc_delta`` / ``<stage>_mem_gpu_peaked_delta`` from
  ``torch.cuda.memory_allocated`` and ``max_memory_allocated`` of the current device.

Stages are ``init``, ``train``, ``eval`` and ``test``. The ``init`` figures are added to
the metrics of the first stage reported after it, with ``before_init_mem_cpu`` (and
``before_init_mem_gpu`` on CUDA): the memory in use when ``__init__`` began, which the
deltas leave out (the model is usually built before the Trainer). Only the outermost
stage is measured: an evaluation inside ``train`` is counted in ``train`` (CUDA has a
single peak counter, so nested stages cannot be measured apart). The CPU peak is sampled
by a thread every millisecond, so a peak shorter than that can be missed.
"""

from __future__ import annotations

import gc
import os
import sys
import threading

import torch

_SAMPLE_SECONDS = 0.001

# The reference names a stage after the method that starts it; subclasses that copy its
# evaluate() or predict() call start() / stop_and_update_metrics(metrics) without one.
_CALLER_STAGES = {"__init__": "init", "train": "train", "evaluate": "eval", "predict": "test"}


def _caller_stage() -> str:
    """The stage of the method that called a tracker method (two frames up)."""
    name = sys._getframe(2).f_code.co_name
    if name not in _CALLER_STAGES:
        raise ValueError(
            f"MemoryTracker called without a stage from {name}(): the stage is named after "
            f"the calling method only from {', '.join(_CALLER_STAGES)}. Pass it: "
            "start('eval') / stop_and_update_metrics('eval', metrics)."
        )
    return _CALLER_STAGES[name]


class _ResidentSize:
    """This process's RSS in bytes, read from ``/proc/self/statm`` through one open file.

    The sampling thread reads it every millisecond, so it must not allocate through the
    C allocator: a thread that does makes glibc give it a malloc arena of its own, and
    contention over arenas can leave tens of MB of the main thread's freed memory
    resident, which would then be reported as the stage's own. ``os.pread`` into a small
    bytes object stays in Python's allocator. Elsewhere psutil is used.
    """

    def __init__(self) -> None:
        import psutil  # only runs with skip_memory_metrics=False: keep it off the import path

        self._process = psutil.Process()
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        try:
            self._fd: int | None = os.open("/proc/self/statm", os.O_RDONLY)
        except OSError:
            self._fd = None

    def __call__(self) -> int:
        if self._fd is None:
            return self._process.memory_info().rss
        return int(os.pread(self._fd, 96, 0).split()[1]) * self._page

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class _PeakSampler:
    """A daemon thread recording the highest RSS of this process until stopped."""

    def __init__(self, rss: _ResidentSize) -> None:
        self._rss = rss
        self._stopped = threading.Event()
        self.peak = rss()
        self._thread = threading.Thread(target=self._run, name="memory-peak", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        rss, stopped = self._rss, self._stopped
        while not stopped.wait(_SAMPLE_SECONDS):
            self.peak = max(self.peak, rss())

    def stop(self) -> int:
        """Stop sampling; return the peak RSS seen (bytes)."""
        self._stopped.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())
        return self.peak


class MemoryTracker:
    """Measures the memory of the outermost running stage; inactive when ``skip`` is True.

    Args:
        skip: ``args.skip_memory_metrics``; True makes every method a no-op.
        cuda: Whether to report GPU figures; by default when CUDA is available.
    """

    def __init__(self, skip: bool, *, cuda: bool | None = None) -> None:
        self.enabled = not skip
        self.cuda = torch.cuda.is_available() if cuda is None else cuda
        self.stage: str | None = None
        self.figures: dict[str, dict[str, int]] = {}
        self._init_reported = False
        self._rss: _ResidentSize | None = None  # open only while a stage is measured
        self._sampler: _PeakSampler | None = None
        self._cpu_start = 0
        self._gpu_start = 0
        self._before_init: dict[str, int] = {}  # memory in use when init began

    def start(self, stage: str | None = None) -> None:
        """Begin measuring ``stage`` unless another stage is being measured already.

        Without ``stage`` (the reference's call) it is named after the calling method.
        """
        if not self.enabled or self.stage is not None:
            return
        self.stage = stage if stage is not None else _caller_stage()
        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            self._gpu_start = torch.cuda.memory_allocated()
        self._rss = _ResidentSize()
        self._cpu_start = self._rss()
        self._sampler = _PeakSampler(self._rss)

    def stop(self, stage: str) -> bool:
        """Finish measuring ``stage``; False (nothing recorded) if it is not the one running."""
        if not self.enabled or self.stage != stage:
            return False
        peak = self._sampler.stop()  # type: ignore[union-attr]  # set by start
        gc.collect()
        cpu_end = self._rss()  # type: ignore[misc]  # set by start
        self._rss.close()  # type: ignore[union-attr]  # set by start
        figures = {
            "cpu_alloc": cpu_end - self._cpu_start,
            "cpu_peaked": max(0, peak - cpu_end),
        }
        if self.cuda:
            gpu_end = torch.cuda.memory_allocated()
            figures["gpu_alloc"] = gpu_end - self._gpu_start
            figures["gpu_peaked"] = max(0, torch.cuda.max_memory_allocated() - gpu_end)
        self.figures[stage] = figures
        if stage == "init":
            self._before_init = {"cpu": self._cpu_start}
            if self.cuda:
                self._before_init["gpu"] = self._gpu_start
        self.stage, self._sampler = None, None
        return True

    def update_metrics(self, stage: str, metrics: dict[str, float]) -> None:
        """Add ``stage``'s figures (and, the first time, ``init``'s) to ``metrics``."""
        if not self.enabled or stage not in self.figures:
            return
        stages = [stage]
        if not self._init_reported and "init" in self.figures and stage != "init":
            stages.insert(0, "init")
            self._init_reported = True
        for name in stages:
            for kind, value in self.figures[name].items():
                metrics[f"{name}_mem_{kind}_delta"] = value
        if stages[0] == "init":
            for device, used in self._before_init.items():
                metrics[f"before_init_mem_{device}"] = used

    def stop_and_update_metrics(
        self, stage: str | dict[str, float] | None = None, metrics: dict[str, float] | None = None
    ) -> None:
        """:meth:`stop` then, if ``stage`` was the one measured, :meth:`update_metrics`.

        The reference's form, ``stop_and_update_metrics(metrics)``, names the stage after
        the calling method (see :meth:`start`).
        """
        if not self.enabled:
            return
        if not isinstance(stage, str):
            stage, metrics = _caller_stage(), stage
        if self.stop(stage) and metrics is not None:
            self.update_metrics(stage, metrics)
