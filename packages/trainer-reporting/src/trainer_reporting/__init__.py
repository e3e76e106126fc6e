"""Reporters as callbacks: TensorBoard, Weights & Biases, MLflow and the Hub."""

from __future__ import annotations

from trainer_reporting._hub_callback import HubCallback
from trainer_reporting._hub_push import HubPusher
from trainer_reporting._hub_repo import HubAccessError
from trainer_reporting._logs import rewrite_logs
from trainer_reporting._mlflow import MLflowCallback
from trainer_reporting._model_card import ModelCardDraft
from trainer_reporting._model_card_sources import draft_model_card, write_model_card
from trainer_reporting._tensorboard import TensorBoardCallback
from trainer_reporting._wandb import WandbCallback

__all__: list[str] = [
    "HubAccessError",
    "HubCallback",
    "HubPusher",
    "MLflowCallback",
    "ModelCardDraft",
    "TensorBoardCallback",
    "WandbCallback",
    "draft_model_card",
    "rewrite_logs",
    "write_model_card",
]
