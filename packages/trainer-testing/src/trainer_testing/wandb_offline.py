"""Read back what an offline wandb run wrote, so tests can check a real run's contents.

An offline run (``WANDB_MODE=offline``) leaves ``<WANDB_DIR>/wandb/offline-run-*/
run-<id>.wandb``: wandb's records (protocol buffers from ``wandb.proto``) framed in the
LevelDB log format (32 KiB blocks, each record chunk behind a 7-byte header: CRC32,
length, chunk type), after a 7-byte file header (``:W&B``, a magic number, a version).
The installed wandb has no Python reader for it (its reader is in the Go core), so this
one follows that framing. Needs wandb installed (for the record definitions).
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_BLOCK = 32 * 1024
_FILE_HEADER = 7
_CHUNK_HEADER = struct.Struct("<IHB")  # crc32, length, type
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


@dataclass
class OfflineRun:
    """What one offline run recorded.

    Attributes:
        run_id: The run's id.
        name: The display name.
        project: The project.
        group: The run group ("" when none).
        config: The run's config, with every update applied.
        history: The logged rows, in order, without wandb's ``_`` keys.
        summary: The final summary, without wandb's ``_`` keys.
        metrics: ``{metric name or glob: step metric}`` from ``define_metric``.
        artifacts: ``(name, type, aliases, metadata)`` of each logged artifact.
        artifact_files: ``{path in the artifact: size in bytes}`` of each logged
            artifact, in the order of ``artifacts``.
    """

    run_id: str = ""
    name: str = ""
    project: str = ""
    group: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)
    artifacts: list[tuple[str, str, list[str], dict[str, Any]]] = field(default_factory=list)
    artifact_files: list[dict[str, int]] = field(default_factory=list)


@contextmanager
def offline_wandb(monkeypatch: Any, runs_dir: Path, scratch: Path, project: str) -> Iterator[Path]:
    """wandb in offline mode for one test: runs under ``runs_dir`` (the ``WANDB_DIR``),
    its other folders under ``scratch``, none of the user's model-logging settings.

    wandb reads its settings once per process, so its state is torn down before (to
    read these) and after (so the next test starts afresh).

    Args:
        monkeypatch: pytest's ``monkeypatch`` fixture (it undoes the variables).
        runs_dir: created if missing; yielded.
        scratch: where the data, cache and config folders go.
        project: ``WANDB_PROJECT``.
    """
    for name, value in {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DIR": runs_dir,
        "WANDB_DATA_DIR": scratch / "wandb-data",
        "WANDB_CACHE_DIR": scratch / "wandb-cache",
        "WANDB_CONFIG_DIR": scratch / "wandb-config",
        "WANDB_PROJECT": project,
    }.items():
        monkeypatch.setenv(name, str(value))
    for name in (
        "WANDB_LOG_MODEL",
        "WANDB_WATCH",
        "WANDB_DISABLED",
        "WANDB_RUN_ID",
        "WANDB_RESUME",
    ):
        monkeypatch.delenv(name, raising=False)
    runs_dir.mkdir(parents=True, exist_ok=True)
    import wandb

    wandb.teardown()
    try:
        yield runs_dir
    finally:
        wandb.finish()
        wandb.teardown()


def offline_runs(wandb_dir: str | Path) -> list[OfflineRun]:
    """Every offline run under ``wandb_dir`` (the ``WANDB_DIR`` of the test).

    Ordered by folder name: by start time to the second, then by run id, so runs started
    within one second come in no particular order.
    """
    files = sorted(Path(wandb_dir).glob("wandb/offline-run-*/run-*.wandb"))
    return [read_run(path) for path in files]


def read_run(path: str | Path, timeout: float = 30.0) -> OfflineRun:
    """Parse one ``run-<id>.wandb`` file, once it is complete.

    ``wandb.finish()`` can return before wandb's core process has written the file out,
    so the file is read again until it holds the run's exit record (or ``timeout``
    seconds have passed, after which what is there is returned). A record still being
    written is left out of a read, so a read in the middle of a write is not an error.
    """
    deadline = time.monotonic() + timeout
    records = _complete_records(Path(path))
    while not _finished(records) and time.monotonic() < deadline:
        time.sleep(0.05)
        records = _complete_records(Path(path))
    if not _finished(records):  # the last read, letting a corrupt file say so
        records = _records(Path(path).read_bytes())
    run = OfflineRun()
    for record in records:
        _apply(run, record)
    return run


def _finished(records: list[Any]) -> bool:
    return any(record.WhichOneof("record_type") == "exit" for record in records)


def _complete_records(path: Path) -> list[Any]:
    """The records wholly on disk now; one that does not parse yet is still being written,
    so it and what follows are left for the next read."""
    from google.protobuf.message import DecodeError

    try:
        return _records(path.read_bytes())
    except DecodeError:
        return []


def _records(data: bytes) -> list[Any]:
    from wandb.proto import wandb_internal_pb2

    records, pending, position = [], b"", _FILE_HEADER
    while position + _CHUNK_HEADER.size <= len(data):
        left_in_block = _BLOCK - position % _BLOCK
        if left_in_block < _CHUNK_HEADER.size:  # block trailer padding
            position += left_in_block
            continue
        _, length, kind = _CHUNK_HEADER.unpack_from(data, position)
        if length == 0 and kind == 0:
            break
        start = position + _CHUNK_HEADER.size
        if start + length > len(data):  # the chunk's bytes are not all written yet
            break
        pending += data[start : start + length]
        position = start + length
        if kind in (_FULL, _LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def _key(item: Any) -> str:
    return "/".join(item.nested_key) if item.nested_key else item.key


def _apply(run: OfflineRun, record: Any) -> None:
    kind = record.WhichOneof("record_type")
    if kind == "run":  # the first record names the run; later ones may only update it
        found = record.run
        run.run_id = found.run_id or run.run_id
        run.name = found.display_name or run.name
        run.project = found.project or run.project
        run.group = found.run_group or run.group
        _update(run.config, found.config.update)
    elif kind == "config":
        _update(run.config, record.config.update)
    elif kind == "history":
        row = {_key(item): json.loads(item.value_json) for item in record.history.item}
        run.history.append({k: v for k, v in row.items() if not k.startswith("_")})
    elif kind == "summary":
        _update(run.summary, record.summary.update)
    elif kind == "metric":
        metric = record.metric
        run.metrics[metric.name or metric.glob_name] = metric.step_metric
    elif kind == "artifact":
        artifact = record.artifact
        metadata = json.loads(artifact.metadata) if artifact.metadata else {}
        run.artifacts.append((artifact.name, artifact.type, list(artifact.aliases), metadata))
        run.artifact_files.append({entry.path: entry.size for entry in artifact.manifest.contents})


def _update(target: dict[str, Any], items: Any) -> None:
    for item in items:
        key = _key(item)
        if not key.startswith("_"):
            target[key] = json.loads(item.value_json)
