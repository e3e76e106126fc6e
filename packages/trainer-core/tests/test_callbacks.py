"""CallbackHandler: managing the callback list and dispatching events."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from trainer_core import (
    CallbackHandler,
    DefaultFlowCallback,
    Event,
    PrinterCallback,
    ProgressCallback,
    TrainerCallback,
    TrainerControl,
    TrainerState,
)

ARGS = SimpleNamespace()


class Recorder(TrainerCallback):
    """Records every event it sees with the keyword arguments it got."""

    def __init__(self, name: str = "recorder", journal: list[Any] | None = None) -> None:
        self.name = name
        self.journal = journal if journal is not None else []

    def _record(self, event: str, kwargs: dict[str, Any]) -> None:
        self.journal.append((self.name, event, kwargs))


for _event in Event:

    def _method(self: Recorder, args: Any, state: Any, control: Any, _e=_event, **kw: Any) -> None:
        self._record(_e.value, kw)

    setattr(Recorder, _event.value, _method)


class OtherCallback(TrainerCallback):
    pass


def _handler(*callbacks: Any, **kwargs: Any) -> CallbackHandler:
    return CallbackHandler([DefaultFlowCallback, *callbacks], **kwargs)


def test_adding_a_class_instantiates_it() -> None:
    handler = _handler(PrinterCallback)
    assert [type(cb) for cb in handler.callbacks] == [DefaultFlowCallback, PrinterCallback]


def test_adding_an_instance_keeps_that_object() -> None:
    progress = ProgressCallback(max_str_len=7)
    handler = _handler()
    handler.add_callback(progress)
    assert handler.callbacks[-1] is progress
    assert handler.callback_list == "DefaultFlowCallback\nProgressCallback"


def test_duplicate_class_logs_a_warning_listing_the_callbacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler = _handler(PrinterCallback)
    with caplog.at_level(logging.WARNING, logger="trainer_core._callbacks"):
        handler.add_callback(PrinterCallback())
    assert "already one" in caplog.text
    assert "DefaultFlowCallback\nPrinterCallback" in caplog.text
    assert len(handler.callbacks) == 3


def test_missing_flow_callback_logs_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="trainer_core._callbacks"):
        CallbackHandler([PrinterCallback], None, None, None, None)
    assert "No DefaultFlowCallback" in caplog.text and "PrinterCallback" in caplog.text


def test_pop_by_class_returns_the_first_instance_of_it() -> None:
    first, second = Recorder("a"), Recorder("b")
    handler = _handler(first, second)
    assert handler.pop_callback(Recorder) is first
    assert handler.callbacks == [handler.callbacks[0], second]


def test_pop_by_class_matches_subclasses() -> None:
    handler = _handler()
    assert isinstance(handler.pop_callback(TrainerCallback), DefaultFlowCallback)


def test_pop_by_instance_returns_that_object() -> None:
    first, second = Recorder("a"), Recorder("b")
    handler = _handler(first, second)
    assert handler.pop_callback(second) is second
    assert handler.callbacks[1:] == [first]


def test_pop_of_an_absent_callback_returns_none() -> None:
    handler = _handler()
    assert handler.pop_callback(OtherCallback) is None
    assert handler.pop_callback(OtherCallback()) is None
    assert len(handler.callbacks) == 1


def test_remove_by_class_and_by_instance() -> None:
    recorder, other = Recorder(), OtherCallback()
    handler = _handler(recorder, other)
    handler.remove_callback(OtherCallback)
    handler.remove_callback(OtherCallback)  # no instance of the class: nothing happens
    handler.remove_callback(recorder)
    assert handler.callback_list == "DefaultFlowCallback"
    with pytest.raises(ValueError, match="is not among the callbacks"):
        handler.remove_callback(recorder)  # an absent object, as the reference refuses


def test_pop_finds_an_equal_callback_as_list_membership_does() -> None:
    class Named(TrainerCallback):
        def __init__(self, name: str) -> None:
            self.name = name

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Named) and other.name == self.name

        __hash__ = None  # type: ignore[assignment]

    stored = Named("a")
    handler = _handler(stored)
    assert handler.pop_callback(Named("a")) is stored


def test_events_call_callbacks_in_order_with_the_shared_kwargs() -> None:
    journal: list[Any] = []
    handler = _handler(
        Recorder("a", journal),
        Recorder("b", journal),
        model="M",
        processing_class="P",
        optimizer="O",
        lr_scheduler="S",
    )
    handler.train_dataloader = "TD"
    handler.eval_dataloader = "ED"
    handler.on_log(ARGS, TrainerState(), TrainerControl(), {"loss": 1.0})
    expected = {
        "model": "M",
        "processing_class": "P",
        "tokenizer": "P",
        "optimizer": "O",
        "lr_scheduler": "S",
        "train_dataloader": "TD",
        "eval_dataloader": "ED",
        "logs": {"loss": 1.0},
    }
    assert journal == [("a", "on_log", expected), ("b", "on_log", expected)]


def test_every_event_reaches_the_callbacks() -> None:
    recorder = Recorder()
    handler = _handler(recorder)
    state, control = TrainerState(), TrainerControl()
    for event in Event:
        extra = {"metrics": {}} if event in ("on_evaluate", "on_predict") else {}
        extra = {"logs": {}} if event == "on_log" else extra
        returned = getattr(handler, event.value)(ARGS, state, control, **extra)
        assert returned is control
    assert [event for _, event, _ in recorder.journal] == [event.value for event in Event]


def test_evaluate_and_predict_take_metrics_positionally() -> None:
    recorder = Recorder()
    handler = _handler(recorder)
    handler.on_evaluate(ARGS, TrainerState(), TrainerControl(), {"eval_loss": 0.5})
    handler.on_predict(ARGS, TrainerState(), TrainerControl(), {"test_loss": 0.4})
    assert [kw["metrics"] for _, _, kw in recorder.journal] == [
        {"eval_loss": 0.5},
        {"test_loss": 0.4},
    ]


def test_a_callback_listing_its_keywords_gets_only_the_alias_it_names() -> None:
    seen: dict[str, Any] = {}

    class Transformers5Style(TrainerCallback):  # no **kwargs, no `tokenizer`
        def on_log(self, args, state, control, logs=None, model=None, processing_class=None,
                   optimizer=None, lr_scheduler=None, train_dataloader=None,
                   eval_dataloader=None):  # fmt: skip
            seen["5"] = processing_class

    class V434Style(TrainerCallback):  # no **kwargs, no `processing_class`
        def on_log(self, args, state, control, logs=None, model=None, tokenizer=None,
                   optimizer=None, lr_scheduler=None, train_dataloader=None,
                   eval_dataloader=None):  # fmt: skip
            seen["4"] = tokenizer

    handler = _handler(Transformers5Style(), V434Style(), processing_class="P")
    handler.on_log(ARGS, TrainerState(), TrainerControl(), {"loss": 1.0})
    assert seen == {"5": "P", "4": "P"}


def test_tokenizer_is_an_alias_of_processing_class() -> None:
    handler = CallbackHandler([DefaultFlowCallback], None, None, None, None, tokenizer="T")
    assert handler.processing_class == "T" and handler.tokenizer == "T"
    handler.tokenizer = "T2"
    assert handler.processing_class == "T2"
    handler.processing_class = "P"
    assert handler.tokenizer == "P"
    with pytest.raises(ValueError, match="only processing_class"):
        CallbackHandler([], processing_class="P", tokenizer="T")


def test_a_returned_control_replaces_the_one_passed_on() -> None:
    replacement = TrainerControl(should_training_stop=True)
    seen: list[TrainerControl] = []

    class Replacer(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            return replacement

    class Watcher(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            seen.append(control)

    handler = CallbackHandler([Replacer, Watcher])
    original = TrainerControl()
    assert handler.on_step_end(ARGS, TrainerState(max_steps=9), original) is replacement
    assert seen == [replacement] and seen[0] is replacement


@pytest.mark.parametrize(
    ("event", "switch", "extra"),
    [
        ("on_step_begin", "should_log", {}),
        ("on_step_begin", "should_evaluate", {}),
        ("on_step_begin", "should_save", {}),
        ("on_evaluate", "should_evaluate", {"metrics": {}}),
        ("on_save", "should_save", {}),
        ("on_log", "should_log", {"logs": {}}),
        ("on_epoch_begin", "should_epoch_stop", {}),
        ("on_train_begin", "should_training_stop", {}),
    ],
)
def test_handler_resets_the_switch_an_event_consumes(
    event: str, switch: str, extra: dict[str, Any]
) -> None:
    control = TrainerControl(**{switch: True})
    getattr(_handler(), event)(ARGS, TrainerState(), control, **extra)
    assert getattr(control, switch) is False


def test_call_event_accepts_enum_members_and_names() -> None:
    recorder = Recorder()
    handler = _handler(recorder)
    handler.call_event(Event.ON_SAVE, ARGS, TrainerState(), TrainerControl())
    handler.call_event("on_save", ARGS, TrainerState(), TrainerControl(), extra=1)
    assert [kw.get("extra") for _, _, kw in recorder.journal] == [None, 1]


def test_call_event_refuses_an_unknown_event() -> None:
    with pytest.raises(ValueError, match=r"'on_sav'.*on_save"):
        _handler().call_event("on_sav", ARGS, TrainerState(), TrainerControl())


def test_in_place_list_edits_are_seen_by_later_events() -> None:
    first, second, third = Recorder("a"), Recorder("b"), Recorder("c")
    handler = _handler(first)
    state, control = TrainerState(), TrainerControl()
    handler.on_save(ARGS, state, control)  # builds the dispatch table for on_save
    handler.callbacks.append(second)
    handler.callbacks.insert(0, third)
    handler.on_save(ARGS, state, control)
    del handler.callbacks[0]
    handler.on_save(ARGS, state, control)
    handler.callbacks = [first]
    handler.on_save(ARGS, state, control)
    assert [len(r.journal) for r in (first, second, third)] == [4, 2, 1]


def test_duck_typed_callbacks_and_instance_overrides_are_called() -> None:
    calls: list[str] = []
    duck = SimpleNamespace(on_log=lambda args, state, control, **kw: calls.append("duck"))
    patched = OtherCallback()
    vars(patched)["on_log"] = lambda args, state, control, **kw: calls.append("patched")
    handler = _handler(duck, patched)
    handler.on_log(ARGS, TrainerState(), TrainerControl(), {})
    handler.on_save(ARGS, TrainerState(), TrainerControl())  # the duck has no on_save
    assert calls == ["duck", "patched"]


def test_handler_is_itself_a_trainer_callback() -> None:
    assert isinstance(_handler(), TrainerCallback)


# Stand-ins for the reference library's classes of the same names: what
# ``remove_callback(transformers.PrinterCallback)`` passes in code users keep.
class ReferencePrinterCallback(TrainerCallback):
    pass


ReferencePrinterCallback.__name__ = "PrinterCallback"
ReferencePrinterCallback.__module__ = "transformers.trainer_callback"


class ReferenceFlowCallback(TrainerCallback):
    pass


ReferenceFlowCallback.__name__ = "DefaultFlowCallback"
ReferenceFlowCallback.__module__ = "transformers.trainer_callback"


def test_a_reference_class_removes_our_callback_of_the_same_name() -> None:
    printer = PrinterCallback()
    handler = _handler(printer)
    assert handler.pop_callback(ReferencePrinterCallback) is printer
    handler.remove_callback(ReferenceFlowCallback)
    assert handler.callbacks == []


def test_an_exact_instance_is_removed_before_its_twin() -> None:
    ours, theirs = PrinterCallback(), ReferencePrinterCallback()
    handler = _handler(ours, theirs)
    assert handler.pop_callback(ReferencePrinterCallback) is theirs
    assert handler.pop_callback(PrinterCallback) is ours
    assert handler.pop_callback(ReferencePrinterCallback) is None


def test_twins_by_name_need_the_reference_library_on_one_side() -> None:
    class PrinterCallback(TrainerCallback):  # a user's class that shares the name
        pass

    handler = _handler(PrinterCallback())
    assert handler.pop_callback(ReferencePrinterCallback) is None
    assert handler.pop_callback(ReferencePrinterCallback()) is None  # objects match by identity


def test_adding_the_reference_twin_of_a_present_callback_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler = _handler(PrinterCallback)
    with caplog.at_level(logging.WARNING, logger="trainer_core._callbacks"):
        handler.add_callback(ReferencePrinterCallback)
    assert "already one" in caplog.text and "transformers.trainer_callback" in caplog.text


def test_a_reference_flow_callback_counts_as_the_flow(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="trainer_core._callbacks"):
        CallbackHandler([ReferenceFlowCallback], None, None, None, None)
    assert "No DefaultFlowCallback" not in caplog.text


def test_push_begin_reaches_callbacks_with_the_shared_kwargs() -> None:
    journal: list[Any] = []
    handler = _handler(Recorder("a", journal), model="m")
    handler.on_push_begin(ARGS, TrainerState(), TrainerControl())
    assert [(name, event) for name, event, _ in journal] == [("a", "on_push_begin")]
    assert journal[0][2]["model"] == "m"


class _Editing(TrainerCallback):
    """On ``on_train_begin`` it runs ``edit(handler)``: a lazily added or removed callback."""

    def __init__(self, journal: list[str], edit: Any) -> None:
        self.journal, self.edit, self.handler = journal, edit, None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.journal.append("editor")
        self.edit(self.handler)


class _Named(TrainerCallback):
    def __init__(self, name: str, journal: list[str]) -> None:
        self.name, self.journal = name, journal

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.journal.append(self.name)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        # Added during the event: called for it too, as the reference's loop sees it.
        (lambda handler, named: handler.add_callback(named["late"]), ["editor", "a", "b", "late"]),
        # Removed before its turn: not called.
        (lambda handler, named: handler.remove_callback(named["b"]), ["editor", "a"]),
        # The editor removes itself: a list iterator then skips the next callback.
        (lambda handler, named: handler.remove_callback(handler.callbacks[1]), ["editor", "b"]),
    ],
    ids=["added", "removed-ahead", "removed-itself"],
)
def test_callbacks_edited_during_an_event_are_seen_as_the_live_list_is(
    edit: Any, expected: list[str]
) -> None:
    journal: list[str] = []
    named = {name: _Named(name, journal) for name in ("a", "b", "late")}
    editor = _Editing(journal, lambda handler: edit(handler, named))
    handler = _handler(editor, named["a"], named["b"])
    editor.handler = handler
    handler.on_train_begin(ARGS, TrainerState(), TrainerControl())
    assert journal == expected
    editor.edit = lambda handler: None
    journal.clear()
    handler.on_train_begin(ARGS, TrainerState(), TrainerControl())
    called = [c.name for c in handler.callbacks if isinstance(c, _Named)]
    assert journal == (["editor"] if editor in handler.callbacks else []) + called
