"""Naming and creating the Hub repository a training run pushes to, and explaining refusals.

huggingface_hub is imported here only inside functions: the ``hub`` extra is needed only
by runs that push.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainer_core import MissingExtraError, import_optional


class HubAccessError(PermissionError):
    """The Hub refused the token: it is invalid, or it may not write where asked.

    A ``PermissionError`` so that callers can tell it from network failures; the message
    names the repository, the Hub's answer and how to pass a working token.
    """


def load_hub_client() -> Any:
    """The ``huggingface_hub`` module, or the missing-extra error naming what to install."""
    return import_optional(
        "huggingface_hub", package="trainer-reporting", extra="hub", feature="push_to_hub"
    )


def repo_name_for(args: Any) -> str:
    """``hub_model_id`` when set (``"name"`` or ``"namespace/name"``), else the name of
    ``output_dir`` (the token's user is then the namespace), as the reference does.

    The older ``push_to_hub_model_id`` / ``push_to_hub_organization`` arguments were
    already folded into ``hub_model_id`` by the arguments' validation.
    """
    if getattr(args, "hub_model_id", None):
        return str(args.hub_model_id)
    return Path(args.output_dir).absolute().name


def create_hub_repo(api: Any, name: str, *, token: str | None, private: bool | None) -> str:
    """Create the model repository ``name`` (kept if it exists); return its full id.

    ``private`` applies only to a new repository, as on the Hub.
    """
    try:
        url = api.create_repo(name, token=token, private=private, exist_ok=True)
    except Exception as error:
        explained = explain_refusal(error, f"create or open the repository '{name}'", api)
        if explained is error:
            raise
        raise explained from error
    return str(url.repo_id)


def explain_refusal(error: Exception, action: str, api: Any) -> Exception:
    """A :class:`HubAccessError` for a 401/403 answer; for huggingface_hub's offline mode
    an error of the same class that also says how to train without the Hub; ``error``
    itself otherwise."""
    if type(error).__name__ == "OfflineModeIsEnabled":
        return type(error)(
            f"{error} push_to_hub=True needs the Hub to {action}: unset HF_HUB_OFFLINE, or "
            "train without pushing (push_to_hub=False) and upload output_dir later."
        )
    status = getattr(getattr(error, "response", None), "status_code", None)
    if isinstance(error, MissingExtraError) or status not in (401, 403):
        return error
    reason = (
        "no valid token was sent" if status == 401 else "the token may not write to that namespace"
    )
    return HubAccessError(
        f"The Hub at {api.endpoint} refused to {action} (HTTP {status}: {reason}). "
        "Pass a token with write access as TrainingArguments(hub_token=...), or log in "
        "with `hf auth login` (the HF_TOKEN environment variable works too); with "
        "hub_model_id='namespace/name', the token must be allowed to write to the namespace."
    )
