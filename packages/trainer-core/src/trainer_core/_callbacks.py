"""The callback base class and the handler that calls every callback at each event.

``CallbackHandler`` runs on the hot path (several events per optimizer step), so it
keeps a dispatch table per event: the bound methods of the callbacks that actually
override that event, built once and rebuilt only when the callback list changes. An
event no callback cares about costs one dictionary lookup.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterable
from typing import Any, SupportsIndex

from trainer_core._events import Event
from trainer_core._state import TrainerControl, TrainerState

logger = logging.getLogger(__name__)

_EVENT_NAMES = tuple(event.value for event in Event)


class TrainerCallback:
    """Base class for objects that watch the training loop and steer it at events.

    Subclass it and override the events you need (see :class:`Event` for when each one
    fires). Every method receives the same arguments:

    Args:
        args: The ``TrainingArguments`` of the run.
        state: The :class:`TrainerState`: progress, log history, best metric.
        control: The :class:`TrainerControl`; set its switches to steer the loop.
        **kwargs: Also passed at every event: ``model`` (the model being trained),
            ``processing_class`` and its older name ``tokenizer`` (the tokenizer or
            processor given to the Trainer), ``optimizer``, ``lr_scheduler``,
            ``train_dataloader`` and ``eval_dataloader``. ``on_evaluate`` and
            ``on_predict`` also get ``metrics`` (the metric dict just computed) and
            ``on_log`` gets ``logs`` (the dict being logged).

    A method may return a :class:`TrainerControl` to replace the one the loop holds, or
    ``None`` (the default) after changing ``control`` in place, which is the usual way.
    Callbacks never see each other's return values directly: they share ``control``.

    Example:
        >>> class StopAtStep(TrainerCallback):
        ...     def on_step_end(self, args, state, control, **kwargs):
        ...         if state.global_step >= 100:
        ...             control.should_training_stop = True
    """

    def on_init_end(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl | None:
        """Called once the Trainer is constructed."""

    def on_train_begin(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl | None:
        """Called when ``train()`` starts, after the state is set up (and restored on resume)."""

    def on_train_end(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl | None:
        """Called when ``train()`` finishes its last step."""

    def on_epoch_begin(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl | None:
        """Called at the start of each epoch."""

    def on_epoch_end(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl | None:
        """Called at the end of each epoch, before its logging, evaluation and saving."""

    def on_step_begin(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl | None:
        """Called before the first batch of an optimizer step (one step may span batches)."""

    def on_pre_optimizer_step(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl | None:
        """Called after gradient clipping, just before ``optimizer.step()``.

        The gradients are final here: the place to inspect or record them.
        """

    def on_optimizer_step(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl | None:
        """Called just after ``optimizer.step()``, before the gradients are zeroed."""

    def on_substep_end(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl | None:
        """Called after each gradient-accumulation batch that does not end a step."""

    def on_step_end(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl | None:
        """Called after an optimizer step, ``state.global_step`` already incremented.

        The loop logs, evaluates and saves right after, as ``control`` then says.
        """

    def on_evaluate(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl | None:
        """Called after an evaluation; ``kwargs["metrics"]`` holds its metrics."""

    def on_predict(
        self,
        args: Any,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> TrainerControl | None:
        """Called after a successful ``predict()`` with its metrics.

        ``metrics`` is named in the signature, as in the reference, so that an override
        calling ``super().on_predict(args, state, control, metrics)`` still works.
        """

    def on_save(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl | None:
        """Called after a checkpoint has been written."""

    def on_log(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl | None:
        """Called after ``Trainer.log``; ``kwargs["logs"]`` is the dict just logged."""

    def on_prediction_step(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl | None:
        """Called after each batch of an evaluation or prediction loop."""

    def on_push_begin(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl | None:
        """Called before the output folder is uploaded to the Hub."""


CallbackSpec = TrainerCallback | type[TrainerCallback]


def _overriding_method(callback: Any, name: str) -> Any:
    """``callback``'s method for event ``name``, fitted to its argument names; None for
    a callback that inherits the base class's empty method (calling it would do
    nothing) or has no method of that name at all."""
    method = getattr(callback, name, None)
    if method is None:
        return None
    inherited = getattr(type(callback), name, None) is getattr(TrainerCallback, name)
    if inherited and name not in getattr(callback, "__dict__", ()):
        return None
    return _fitted_to_aliases(method)


class _CallbackList(list):
    """The handler's callback list: any change empties the handler's dispatch table.

    Code written for the reference Trainer edits ``callback_handler.callbacks`` in place
    (``append``, ``insert``, ``remove``); routing every mutation through here keeps the
    cached dispatch table right without checking the list on each event.
    """

    __slots__ = ("_table",)

    def __init__(self, items: Iterable[Any], table: dict[str, tuple[Any, ...]]) -> None:
        super().__init__(items)
        self._table = table

    def _changed(self) -> None:
        table = getattr(self, "_table", None)  # unset while copy/pickle rebuilds a list
        if table is not None:
            table.clear()

    def append(self, item: Any) -> None:
        self._changed()
        super().append(item)

    def extend(self, items: Iterable[Any]) -> None:
        self._changed()
        super().extend(items)

    def insert(self, index: SupportsIndex, item: Any) -> None:
        self._changed()
        super().insert(index, item)

    def remove(self, item: Any) -> None:
        self._changed()
        super().remove(item)

    def pop(self, index: SupportsIndex = -1) -> Any:
        self._changed()
        return super().pop(index)

    def clear(self) -> None:
        self._changed()
        super().clear()

    def sort(self, *args: Any, **kwargs: Any) -> None:
        self._changed()
        super().sort(*args, **kwargs)

    def reverse(self) -> None:
        self._changed()
        super().reverse()

    def __setitem__(self, index: Any, value: Any) -> None:
        self._changed()
        super().__setitem__(index, value)

    def __delitem__(self, index: Any) -> None:
        self._changed()
        super().__delitem__(index)

    def __iadd__(self, items: Iterable[Any]) -> _CallbackList:
        self._changed()
        return super().__iadd__(items)

    def __imul__(self, count: SupportsIndex) -> _CallbackList:
        self._changed()
        return super().__imul__(count)


class _SharedKwarg:
    """A handler attribute that is also passed, under the same name, to every callback.

    The values live in one dict that each event unpacks as is, so dispatch builds no
    keyword dict of its own.
    """

    def __init__(self, *keys: str) -> None:
        self._keys = keys

    def __get__(self, handler: Any, owner: type | None = None) -> Any:
        if handler is None:
            return self
        return handler._shared[self._keys[0]]

    def __set__(self, handler: Any, value: Any) -> None:
        for key in self._keys:
            handler._shared[key] = value


_ALIASES = ("processing_class", "tokenizer")
"""Two names of one keyword argument: transformers 5 passes the first, v4.34 the second."""


def _fitted_to_aliases(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method``, or a wrapper that leaves out the alias names it cannot take.

    Every callback gets the processing class under both names, so that one written for
    either release finds it. A method that lists its keyword arguments without
    ``**kwargs`` would refuse the name it does not list; only such a method is wrapped.
    """
    try:
        parameters = inspect.signature(method).parameters
    except (TypeError, ValueError):  # a builtin or C callable: pass everything
        return method
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return method
    unaccepted = tuple(name for name in _ALIASES if name not in parameters)
    if not unaccepted:
        return method

    @functools.wraps(method)
    def call(args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        for name in unaccepted:
            kwargs.pop(name, None)
        return method(args, state, control, **kwargs)

    return call


def _event_name(event: Event | str) -> str:
    """Return the method name of ``event``, refusing names that are not events."""
    if event in _EVENT_NAMES:
        return str(event)
    raise ValueError(f"Unknown callback event {event!r}; the events are: {', '.join(_EVENT_NAMES)}")


class CallbackHandler(TrainerCallback):
    """Holds the Trainer's callbacks and calls them, in order, at every event.

    Each ``on_<event>`` method first resets the :class:`TrainerControl` switches that
    the event consumes (a new step clears should_log/evaluate/save, ``on_save`` clears
    should_save, ...), then calls the callbacks. A callback that returns a control
    object replaces the one passed to the callbacks after it; the last one is returned.

    The model, processing class (also reachable as ``tokenizer``), optimizer, scheduler
    and dataloaders are attributes the loop updates; every callback receives their
    current values as keyword arguments.

    Dispatch is cached per event, so the callback objects must not get new ``on_*``
    methods after they are added; changes to the list itself (through the methods here
    or ``callbacks.append(...)`` and the like) are picked up.
    """

    model = _SharedKwarg("model")
    processing_class = _SharedKwarg("processing_class", "tokenizer")
    tokenizer = _SharedKwarg("tokenizer", "processing_class")
    optimizer = _SharedKwarg("optimizer")
    lr_scheduler = _SharedKwarg("lr_scheduler")
    train_dataloader = _SharedKwarg("train_dataloader")
    eval_dataloader = _SharedKwarg("eval_dataloader")

    def __init__(
        self,
        callbacks: Iterable[CallbackSpec],
        model: Any = None,
        processing_class: Any = None,
        optimizer: Any = None,
        lr_scheduler: Any = None,
        *,
        tokenizer: Any = None,
    ) -> None:
        if processing_class is not None and tokenizer is not None:
            raise ValueError(
                "CallbackHandler got both processing_class and tokenizer; they name the "
                "same object (tokenizer is the older name): pass only processing_class"
            )
        self._table: dict[str, tuple[tuple[int, Any], ...]] = {}
        self._shared: dict[str, Any] = {}
        self.model = model
        self.processing_class = processing_class if processing_class is not None else tokenizer
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.train_dataloader = None
        self.eval_dataloader = None
        self._callbacks = _CallbackList((), self._table)
        for callback in callbacks:
            self.add_callback(callback)
        self._warn_without_flow()

    def _warn_without_flow(self) -> None:
        from trainer_core._flow import DefaultFlowCallback

        if not any(_plays(callback, DefaultFlowCallback) for callback in self._callbacks):
            logger.warning(
                "No DefaultFlowCallback among the callbacks: the trainer will not log, "
                "evaluate, save or stop on the schedule its arguments set. Add one with "
                "add_callback(DefaultFlowCallback). The current callbacks are:\n%s",
                self.callback_list,
            )

    @property
    def callbacks(self) -> list[Any]:
        """The callbacks, in calling order. Editing this list in place is supported."""
        return self._callbacks

    @callbacks.setter
    def callbacks(self, callbacks: Iterable[Any]) -> None:
        self._table.clear()
        self._callbacks = _CallbackList(callbacks, self._table)

    @property
    def callback_list(self) -> str:
        """The class names of the callbacks, one per line, in calling order."""
        return "\n".join(type(callback).__name__ for callback in self._callbacks)

    def add_callback(self, callback: CallbackSpec) -> None:
        """Append a callback; a class is instantiated with no arguments first.

        Adding a second callback of a class already present is allowed (some callbacks
        are meant to be stacked) but logs a warning, since it is usually a mistake. The
        reference library's class of the same name as one present (its
        ``ProgressCallback`` next to ours) counts as a second one: both would act.
        """
        instance = callback() if isinstance(callback, type) else callback
        kind = type(instance)
        if any(_twins(type(existing), kind) for existing in self._callbacks):
            logger.warning(
                "Adding a %s (%s) to the callbacks, but there is already one. The current "
                "callbacks are:\n%s",
                kind.__name__,
                kind.__module__,
                self.callback_list,
            )
        self._callbacks.append(instance)

    def pop_callback(self, callback: CallbackSpec) -> Any:
        """Remove and return a callback, or return ``None`` when there is none to remove.

        Args:
            callback: A class (the first callback that is an instance of it is removed)
                or a callback object (that very object is removed). When no callback is
                an instance of the class, a class of the reference library stands for
                ours of the same name and the other way round: users who keep
                ``remove_callback(transformers.PrinterCallback)`` mean the printer this
                Trainer added, which is ours.
        """
        for matches in (_matches, _stands_in_for):
            for index, existing in enumerate(self._callbacks):
                if matches(existing, callback):
                    return self._callbacks.pop(index)
        return None

    def remove_callback(self, callback: CallbackSpec) -> None:
        """Remove a callback as :meth:`pop_callback` does.

        Raises:
            ValueError: ``callback`` is an object that is not among the callbacks (as in
                the reference; a class with no instance there is not an error).
        """
        if self.pop_callback(callback) is None and not isinstance(callback, type):
            raise ValueError(
                f"remove_callback: {callback!r} is not among the callbacks (was it removed "
                f"already, or added as a class?). The current callbacks are:\n"
                f"{self.callback_list}"
            )

    def call_event(
        self,
        event: Event | str,
        args: Any,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ) -> TrainerControl:
        """Call ``event`` on every callback that overrides it, in order.

        A callback added or removed by a callback during the event is seen as the
        reference's loop over the live list sees it: one appended is called for this
        event too, one removed after its turn is not called again (and one removing
        itself makes the next one be skipped, as a list iterator does).

        Returns:
            The control object: the one passed in, or the last one a callback returned.

        Raises:
            ValueError: ``event`` is not one of :class:`Event`.
        """
        table = self._table
        entry = table.get(event)
        if entry is None:
            entry = self._dispatch_entry(event)
        shared = self._shared
        for position, method in entry:
            result = method(args, state, control, **shared, **kwargs)
            if result is not None:
                control = result
            if table.get(event) is not entry:  # the list changed: go on over the new one
                return self._call_live(event, position + 1, args, state, control, kwargs)
        return control

    def _call_live(
        self,
        event: Event | str,
        start: int,
        args: Any,
        state: TrainerState,
        control: TrainerControl,
        kwargs: dict[str, Any],
    ) -> TrainerControl:
        """The rest of an event whose callback list changed midway, from list index
        ``start`` of the list as it is now (re-read before each call)."""
        name = _event_name(event)
        index = start
        while index < len(self._callbacks):
            method = _overriding_method(self._callbacks[index], name)
            index += 1
            if method is not None:
                result = method(args, state, control, **self._shared, **kwargs)
                if result is not None:
                    control = result
        return control

    def _dispatch_entry(self, event: Event | str) -> tuple[tuple[int, Any], ...]:
        """Build and cache ``(list index, bound method)`` for each callback to call for
        ``event`` (see :func:`_overriding_method`)."""
        name = _event_name(event)
        entry = tuple(
            (position, method)
            for position, callback in enumerate(self._callbacks)
            if (method := _overriding_method(callback, name)) is not None
        )
        self._table[name] = entry
        return entry

    def on_init_end(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl:
        return self.call_event(Event.ON_INIT_END, args, state, control, **kwargs)

    def on_train_begin(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl:
        control._new_training()
        return self.call_event(Event.ON_TRAIN_BEGIN, args, state, control, **kwargs)

    def on_train_end(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl:
        return self.call_event(Event.ON_TRAIN_END, args, state, control, **kwargs)

    def on_epoch_begin(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl:
        control._new_epoch()
        return self.call_event(Event.ON_EPOCH_BEGIN, args, state, control, **kwargs)

    def on_epoch_end(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl:
        return self.call_event(Event.ON_EPOCH_END, args, state, control, **kwargs)

    def on_step_begin(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl:
        control._new_step()
        return self.call_event(Event.ON_STEP_BEGIN, args, state, control, **kwargs)

    def on_pre_optimizer_step(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl:
        return self.call_event(Event.ON_PRE_OPTIMIZER_STEP, args, state, control, **kwargs)

    def on_optimizer_step(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl:
        return self.call_event(Event.ON_OPTIMIZER_STEP, args, state, control, **kwargs)

    def on_substep_end(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl:
        return self.call_event(Event.ON_SUBSTEP_END, args, state, control, **kwargs)

    def on_step_end(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl:
        return self.call_event(Event.ON_STEP_END, args, state, control, **kwargs)

    def on_evaluate(
        self,
        args: Any,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, Any],
        **kwargs: Any,
    ) -> TrainerControl:
        control.should_evaluate = False
        return self.call_event(Event.ON_EVALUATE, args, state, control, metrics=metrics, **kwargs)

    def on_predict(
        self,
        args: Any,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, Any],
        **kwargs: Any,
    ) -> TrainerControl:
        return self.call_event(Event.ON_PREDICT, args, state, control, metrics=metrics, **kwargs)

    def on_save(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl:
        control.should_save = False
        return self.call_event(Event.ON_SAVE, args, state, control, **kwargs)

    def on_log(
        self,
        args: Any,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any],
        **kwargs: Any,
    ) -> TrainerControl:
        control.should_log = False
        return self.call_event(Event.ON_LOG, args, state, control, logs=logs, **kwargs)

    def on_prediction_step(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl:
        return self.call_event(Event.ON_PREDICTION_STEP, args, state, control, **kwargs)

    def on_push_begin(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl:
        return self.call_event(Event.ON_PUSH_BEGIN, args, state, control, **kwargs)


def _matches(existing: Any, wanted: CallbackSpec) -> bool:
    """Whether ``existing`` is what ``pop_callback(wanted)`` asks for."""
    if isinstance(wanted, type):
        return isinstance(existing, wanted)
    return existing is wanted or bool(existing == wanted)  # ``in`` semantics, as the reference


# The library whose Trainer ours replaces: its callback classes name the same roles as ours.
_REFERENCE_PACKAGE = "transformers"


def _library(klass: type) -> str:
    """``"reference"``, ``"ours"`` (a ``trainer`` or ``trainer_*`` package) or ``"other"``."""
    top = klass.__module__.partition(".")[0]
    if top == _REFERENCE_PACKAGE:
        return "reference"
    return "ours" if top == "trainer" or top.startswith("trainer_") else "other"


def _twins(first: type, second: type) -> bool:
    """Whether two callback classes play one role: the same class, or the same name with
    one from the reference library and the other from ours (a user's class of that name
    is their own)."""
    if first is second:
        return True
    libraries = {_library(first), _library(second)}
    return first.__name__ == second.__name__ and libraries == {"reference", "ours"}


def _stands_in_for(existing: Any, wanted: CallbackSpec) -> bool:
    """Whether ``existing`` is an instance of the other library's twin of class ``wanted``."""
    if not isinstance(wanted, type):
        return False
    return any(_twins(base, wanted) for base in type(existing).__mro__)


def _plays(existing: Any, wanted: type) -> bool:
    """Whether ``existing`` is a ``wanted`` or an instance of its other-library twin."""
    return isinstance(existing, wanted) or _stands_in_for(existing, wanted)
