"""``TrainerMemoryTracker``: the reference's name and constructor for the memory tracker.

Trainer subclasses that copy the reference's ``train`` / ``evaluate`` build one with
``TrainerMemoryTracker(self.args.skip_memory_metrics)`` and call ``start()`` and
``stop_and_update_metrics(metrics)``, naming the stage after the calling method; the
tracker the Trainer uses (:class:`trainer_loop._memory_tracker.MemoryTracker`) accepts
those calls, and this subclass adds the keyword and default of the reference's
constructor.
"""

from __future__ import annotations

from trainer_loop._memory_tracker import MemoryTracker


class TrainerMemoryTracker(MemoryTracker):
    """Reports the CPU (and CUDA) memory a stage used, as ``<stage>_mem_*`` metrics.

    Args:
        skip_memory_metrics: When True, every method does nothing (the default of
            ``TrainingArguments.skip_memory_metrics`` is True: measuring costs a
            sampling thread and a ``gc.collect()`` per stage).

    See ``Trainer.log_metrics`` for what the figures mean.
    """

    def __init__(self, skip_memory_metrics: bool = False) -> None:
        super().__init__(skip_memory_metrics)
        self.skip_memory_metrics = skip_memory_metrics
