"""The event list is the single source of truth for callback and handler methods."""

from __future__ import annotations

import inspect
import subprocess
import sys

from trainer_core import CallbackHandler, Event, TrainerCallback, TrainerControl, TrainerState

EXPECTED_EVENTS = {
    "on_init_end",
    "on_train_begin",
    "on_train_end",
    "on_epoch_begin",
    "on_epoch_end",
    "on_step_begin",
    "on_pre_optimizer_step",
    "on_optimizer_step",
    "on_substep_end",
    "on_step_end",
    "on_evaluate",
    "on_predict",
    "on_save",
    "on_log",
    "on_prediction_step",
    "on_push_begin",
}


def _public_on_methods(namespace: dict[str, object]) -> set[str]:
    return {name for name, value in namespace.items() if name.startswith("on_") and callable(value)}


def test_event_values_are_the_documented_event_names() -> None:
    assert {event.value for event in Event} == EXPECTED_EVENTS
    for event in Event:
        assert event.name.lower() == event.value


def test_trainer_callback_has_exactly_one_method_per_event() -> None:
    assert _public_on_methods(vars(TrainerCallback)) == {event.value for event in Event}


def test_callback_handler_defines_its_own_dispatcher_per_event() -> None:
    # vars(): the handler's own methods, so an inherited no-op cannot pass for a dispatcher.
    assert _public_on_methods(vars(CallbackHandler)) == {event.value for event in Event}


def test_every_event_method_takes_args_state_control_and_kwargs() -> None:
    for event in Event:
        parameters = list(inspect.signature(getattr(TrainerCallback, event.value)).parameters)
        # on_predict names its metrics, as the reference's does (a super() call passes them
        # positionally).
        named = ["metrics"] if event is Event.ON_PREDICT else []
        assert parameters == ["self", "args", "state", "control", *named, "kwargs"], event


def test_an_override_passing_metrics_to_super_positionally_works() -> None:
    class Forwarding(TrainerCallback):
        def on_predict(self, args, state, control, metrics, **kwargs):  # type: ignore[no-untyped-def]
            return super().on_predict(args, state, control, metrics, **kwargs)

    assert (
        Forwarding().on_predict(None, TrainerState(), TrainerControl(), {"test_loss": 1.0}) is None
    )


def test_event_equals_and_hashes_like_its_name() -> None:
    assert Event.ON_LOG == "on_log"
    assert str(Event.ON_LOG) == "on_log"
    assert {"on_log": 1}[Event.ON_LOG] == 1
    assert Event("on_step_end") is Event.ON_STEP_END


def test_docstring_marks_where_every_event_fires() -> None:
    doc = Event.__doc__ or ""
    missing = [event.value for event in Event if f"<{event.value}>" not in doc]
    assert missing == []


def test_import_loads_no_torch() -> None:
    code = (
        "import sys, trainer_core\n"
        "heavy = sorted(m for m in ('torch', 'numpy', 'transformers', 'accelerate') "
        "if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""
