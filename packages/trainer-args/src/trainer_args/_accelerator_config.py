"""``TrainingArguments.accelerator_config``: accelerate's data-loader and state options.

Given as a dict, JSON text, a JSON file or an object, it is kept as an
:class:`AcceleratorConfig`, the type transformers keeps it as since 4.38: scripts and
subclasses written for it read ``args.accelerator_config.split_batches`` (every option,
its default when not given) or call ``to_dict()``. Our own code reads it through
``to_dict()`` too, so a dict assigned after construction still works.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

from trainer_args._json_args import options_of

__all__ = [
    "ACCELERATOR_CONFIG_KEYS",
    "ACCELERATOR_DEFAULTS",
    "AcceleratorConfig",
    "given_accelerator_options",
]


@dataclasses.dataclass
class AcceleratorConfig(Mapping[str, Any]):
    """accelerate's options that the Trainer honours (the names and defaults of
    transformers' ``AcceleratorConfig``).

    Also a read-only mapping of every option (``config["split_batches"]``, ``in``,
    ``dict(config)``, ``**config``), as code written when the arguments kept a dict reads
    it. Equality is the dataclass's: two configs with the same options.
    """

    split_batches: bool = False
    """Each process takes its share of one batch of ``per_device_*_batch_size`` samples
    (the batch size counts across processes) instead of a batch of its own."""
    dispatch_batches: bool | None = None
    """The main process reads the batches and sends them out (an iterable dataset's
    default)."""
    even_batches: bool = True
    """The last, uneven batches are filled up from the start so every process gets one."""
    use_seedable_sampler: bool = True
    """Shuffling draws from a generator seeded from ``seed``, so a resumed run repeats it."""
    non_blocking: bool = False
    """Batches move to the device asynchronously (with pinned memory)."""
    gradient_accumulation_kwargs: dict[str, Any] | None = None
    """``num_steps`` / ``sync_each_batch`` (see ``_accumulation_kwargs``)."""
    use_configured_state: bool = False
    """Use the accelerate state a script built before the arguments."""

    @classmethod
    def from_json_file(cls, json_file: str | os.PathLike[str]) -> AcceleratorConfig:
        """The options of a JSON file; an unknown key is an error naming it."""
        with open(json_file, encoding="utf-8") as handle:
            options = json.load(handle)
        unknown = sorted(set(options) - set(ACCELERATOR_CONFIG_KEYS))
        if unknown:
            raise ValueError(
                f"accelerator_config file {os.fspath(json_file)!r} has unknown keys {unknown}; "
                f"the keys are {', '.join(ACCELERATOR_CONFIG_KEYS)}."
            )
        return cls(**options)

    def to_dict(self) -> dict[str, Any]:
        """Every option, as a new dict (nested values copied)."""
        return dataclasses.asdict(self)

    def pop(self, key: str, default: Any = None) -> Any:
        """The option's value, reset to its default here (transformers' ``pop``)."""
        if key not in ACCELERATOR_CONFIG_KEYS:
            return default
        value = getattr(self, key)
        setattr(self, key, ACCELERATOR_DEFAULTS[key])
        return value

    def __getitem__(self, key: str) -> Any:
        if key not in ACCELERATOR_CONFIG_KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(ACCELERATOR_CONFIG_KEYS)

    def __len__(self) -> int:
        return len(ACCELERATOR_CONFIG_KEYS)


ACCELERATOR_DEFAULTS: dict[str, Any] = {
    f.name: f.default for f in dataclasses.fields(AcceleratorConfig)
}

ACCELERATOR_CONFIG_KEYS: tuple[str, ...] = tuple(ACCELERATOR_DEFAULTS)
"""Keys ``accelerator_config`` may hold."""


def given_accelerator_options(config: Any) -> dict[str, Any] | None:
    """The options an already-built config sets, as a dict: a dict as it is; an object
    (ours, or transformers' ``AcceleratorConfig``) by its values that differ from the
    defaults, so that a default it merely carries never conflicts with a deprecated
    ``split_batches`` / ``dispatch_batches`` given beside it. ``None`` for anything else
    (text and paths are read elsewhere)."""
    if isinstance(config, dict):
        return dict(config)
    options = options_of(config)
    if options is None:
        return None
    # A key we do not know is kept, so that the check of the keys names it.
    return {
        key: value
        for key, value in options.items()
        if key not in ACCELERATOR_DEFAULTS or ACCELERATOR_DEFAULTS[key] != value
    }
