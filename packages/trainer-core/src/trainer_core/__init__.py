"""The torch-free contracts every trainer package shares.

Callbacks, trainer state and control, the ports (Protocols) that layers implement, the
output tuples, the plugin loader and the error types. Importing this package never
imports torch, so configuration, reporting and search code can depend on it cheaply.
"""

from __future__ import annotations

from trainer_core._best_metric import best_metric_greater_is_better, best_metric_key
from trainer_core._callbacks import CallbackHandler, TrainerCallback
from trainer_core._checkpoint_port import CheckpointContent, CheckpointStore, LoadedCheckpoint
from trainer_core._early_stopping import EarlyStoppingCallback
from trainer_core._errors import (
    MissingExtraError,
    PluginLoadError,
    UnknownPluginError,
    import_optional,
)
from trainer_core._events import Event
from trainer_core._flow import DefaultFlowCallback
from trainer_core._metric_values import denumpify_detensorize
from trainer_core._outputs import (
    BestRun,
    EvalLoopOutput,
    EvalPrediction,
    HPSearchBackend,
    PredictionOutput,
    TrainOutput,
)
from trainer_core._plugins import (
    ARGUMENTS_HOOKS_GROUP,
    HP_SEARCH_BACKENDS_GROUP,
    HUB_GROUP,
    KNOWN_PROVIDERS,
    PROCESS_GROUP_HOOKS_GROUP,
    REPORT_TO_GROUP,
    PluginHookError,
    available_plugins,
    installed_plugins,
    load_plugin,
    run_hooks,
)
from trainer_core._progress import PrinterCallback, ProgressCallback
from trainer_core._reporter_port import Reporter
from trainer_core._runtime_port import ReduceOp, Runtime
from trainer_core._search_port import SearchBackend, TrainerLike, default_compute_objective
from trainer_core._signatures import number_of_arguments
from trainer_core._state import ExportableState, TrainerControl, TrainerState

__all__ = [
    "ARGUMENTS_HOOKS_GROUP",
    "HP_SEARCH_BACKENDS_GROUP",
    "HUB_GROUP",
    "KNOWN_PROVIDERS",
    "PROCESS_GROUP_HOOKS_GROUP",
    "REPORT_TO_GROUP",
    "BestRun",
    "CallbackHandler",
    "CheckpointContent",
    "CheckpointStore",
    "DefaultFlowCallback",
    "EarlyStoppingCallback",
    "EvalLoopOutput",
    "EvalPrediction",
    "Event",
    "ExportableState",
    "HPSearchBackend",
    "LoadedCheckpoint",
    "MissingExtraError",
    "PluginHookError",
    "PluginLoadError",
    "PredictionOutput",
    "PrinterCallback",
    "ProgressCallback",
    "ReduceOp",
    "Reporter",
    "Runtime",
    "SearchBackend",
    "TrainOutput",
    "TrainerCallback",
    "TrainerControl",
    "TrainerLike",
    "TrainerState",
    "UnknownPluginError",
    "available_plugins",
    "best_metric_greater_is_better",
    "best_metric_key",
    "default_compute_objective",
    "denumpify_detensorize",
    "import_optional",
    "installed_plugins",
    "load_plugin",
    "number_of_arguments",
    "run_hooks",
]
