"""Console output callbacks: tqdm progress bars, or plain printed logs.

Only the local main process draws or prints, so an eight-process run shows one bar per
machine instead of eight interleaved ones.
"""

from __future__ import annotations

from typing import Any, TextIO

from tqdm.auto import tqdm

from trainer_core._callbacks import TrainerCallback
from trainer_core._state import TrainerControl, TrainerState


def format_logs(logs: dict[str, Any], max_str_len: int | None = None) -> dict[str, Any]:
    """Return a display copy of ``logs``; the caller's dict is left untouched.

    ``total_flos`` is dropped (a huge, unreadable number), floats are shown with four
    significant digits, and strings longer than ``max_str_len`` are replaced by a note
    giving their length, so one long value cannot flood the console.
    """
    shown: dict[str, Any] = {}
    for key, value in logs.items():
        if key == "total_flos":
            continue
        if isinstance(value, float):
            shown[key] = f"{value:.4g}"
        elif isinstance(value, str) and max_str_len is not None and len(value) > max_str_len:
            shown[key] = (
                f"[string of length {len(value)} not shown: longer than "
                f"max_str_len={max_str_len}; raise max_str_len to see it]"
            )
        else:
            shown[key] = value
    return shown


class ProgressCallback(TrainerCallback):
    """Shows a tqdm bar for training and one for each evaluation or prediction run.

    Logs are printed above the training bar with ``tqdm.write`` so the bar is redrawn
    below them rather than broken. Outside training (a standalone ``evaluate()``) logs
    are not printed; use :class:`PrinterCallback` for that.

    Args:
        max_str_len: Longest string log value printed as is; longer ones are replaced by
            a note giving their length.
        file: Stream the bars and logs go to; ``None`` means tqdm's defaults (bars on
            stderr, logs on stdout).
    """

    def __init__(self, max_str_len: int = 100, *, file: TextIO | None = None) -> None:
        self.max_str_len = max_str_len
        self.file = file
        self.training_bar: Any = None
        self.prediction_bar: Any = None
        self.current_step = 0

    def on_train_begin(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Open the training bar, sized to ``state.max_steps``."""
        if state.is_local_process_zero:
            self.training_bar = tqdm(total=state.max_steps, dynamic_ncols=True, file=self.file)
        self.current_step = 0

    def on_step_end(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Advance the training bar to ``state.global_step``."""
        if self.training_bar is not None:
            self.training_bar.update(state.global_step - self.current_step)
        self.current_step = state.global_step

    def on_prediction_step(
        self,
        args: Any,
        state: TrainerState,
        control: TrainerControl,
        eval_dataloader: Any = None,
        **kwargs: Any,
    ) -> None:
        """Advance the evaluation bar, opening it on the first batch.

        Without a sized dataloader there is no total to show, so no bar is drawn.
        """
        if not state.is_local_process_zero or not _has_length(eval_dataloader):
            return
        if self.prediction_bar is None:
            self.prediction_bar = tqdm(
                total=len(eval_dataloader),
                leave=self.training_bar is None,
                dynamic_ncols=True,
                file=self.file,
            )
        self.prediction_bar.update(1)

    def on_evaluate(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Close the evaluation bar."""
        self._close_prediction_bar()

    def on_predict(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Close the prediction bar."""
        self._close_prediction_bar()

    def on_log(
        self,
        args: Any,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Print the logs above the training bar, if one is open."""
        if self.training_bar is None or not state.is_local_process_zero or logs is None:
            return
        tqdm.write(str(format_logs(logs, self.max_str_len)), file=self.file)

    def on_train_end(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Close the training bar."""
        if self.training_bar is not None:
            self.training_bar.close()
        self.training_bar = None

    def _close_prediction_bar(self) -> None:
        if self.prediction_bar is not None:
            self.prediction_bar.close()
        self.prediction_bar = None


class PrinterCallback(TrainerCallback):
    """Prints each log dict on its own line; the bar-free choice for files and CI logs.

    Args:
        file: Stream to print to; ``None`` means ``sys.stdout`` at the time of printing.
    """

    def __init__(self, *, file: TextIO | None = None) -> None:
        self.file = file

    def on_log(
        self,
        args: Any,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Print the logs (without ``total_flos``, floats to four digits)."""
        if state.is_local_process_zero and logs is not None:
            print(format_logs(logs), file=self.file)


def _has_length(dataloader: Any) -> bool:
    """Whether ``len(dataloader)`` works (iterable datasets have no length)."""
    try:
        len(dataloader)
    except (TypeError, NotImplementedError):
        return False
    return True
