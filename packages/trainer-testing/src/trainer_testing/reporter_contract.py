"""The contract suite of ``trainer_core.Reporter`` (torch-free).

Every reporter runs it, the built-in ones and any a package registers in the
``trainer.report_to`` entry-point group. It checks what the loop relies on: the class
is what the entry point names, it is built with no arguments, its ``name`` is the
entry-point name, and its events take the extra keyword arguments the loop sends
(``model``, ``optimizer``, dataloaders...), on the main process and on the others, and
never raise for a logged value the service cannot store.
"""

from __future__ import annotations

from typing import Any

from trainer_core import REPORT_TO_GROUP, Reporter, TrainerControl, TrainerState, load_plugin

EXTRA_EVENT_KWARGS: dict[str, Any] = {
    "model": None,
    "processing_class": None,
    "optimizer": None,
    "lr_scheduler": None,
    "train_dataloader": None,
    "eval_dataloader": None,
}
"""Keyword arguments the loop passes to every event besides the event's own."""


def check_reporter_contract(reporter_class: type, args: Any, *, registered: bool = True) -> None:
    """Check ``reporter_class`` as the loop uses it, running one short "training".

    Args:
        reporter_class: The class the entry point names.
        args: The ``TrainingArguments`` (or what the reporter reads of them) to run with;
            their ``output_dir`` may receive the reporter's files.
        registered: Also check that ``load_plugin("trainer.report_to", name)`` finds
            this class (the package is installed).

    Raises:
        AssertionError: naming the broken part of the contract.
    """
    kind = getattr(reporter_class, "__name__", repr(reporter_class))
    if not isinstance(reporter_class, type):
        raise AssertionError(f"{kind} is not a class: the loop instantiates it")
    name = getattr(reporter_class, "name", None)
    if not (isinstance(name, str) and name):
        raise AssertionError(f"{kind}.name must be a non-empty string class attribute")
    reporter = reporter_class()
    if not isinstance(reporter, Reporter):
        raise AssertionError(f"{kind} lacks the Reporter methods")
    if registered and load_plugin(REPORT_TO_GROUP, name) is not reporter_class:
        raise AssertionError(f"{REPORT_TO_GROUP} {name!r} does not load {kind}")
    for main in (False, True):
        state = TrainerState(is_world_process_zero=main, is_local_process_zero=main)
        control = TrainerControl()
        reporter.on_train_begin(args, state, control, **EXTRA_EVENT_KWARGS)
        for step, logs in enumerate(
            (
                {"loss": 1.25, "learning_rate": 1e-3, "epoch": 0.5},
                {"eval_loss": 0.5, "eval_note": "text", "eval_nested": {"a": 1}},
            ),
            start=1,
        ):
            state.global_step = step
            reporter.on_log(args, state, control, logs=logs, **EXTRA_EVENT_KWARGS)
        reporter.on_train_end(args, state, control, **EXTRA_EVENT_KWARGS)
