"""Writing checkpoint files so that they are on disk soon after the last byte is written.

A crash-safe checkpoint must be on stable storage before it is renamed into place. The
slow way writes every file into the page cache and then waits for ``fsync`` to push all
of it to the disk; here the disk works while the files are still being serialised:

* :class:`DurableFile` is the file object the serialisers write into (``torch.save``
  accepts a file object; :func:`write_safetensors` streams the safetensors format into
  it). Tensor bytes go from the tensor's memory to the kernel without an intermediate
  copy. Every 32 MiB it has the kernel start writing the pages filled so far (Linux
  ``sync_file_range(SYNC_FILE_RANGE_WRITE)``), so that when the file is complete
  little is left to flush.
* :class:`Flusher` runs those requests and the final ``fsync`` of each file in one
  background thread, in order. The requests are issued there, not by the serialising
  thread, because the kernel may block the caller while it queues the I/O; and they
  cover whole MiB below the end of the file, never the page being filled, which a write
  could otherwise have to wait for while it is under write-back. The final ``fsync`` of
  one file overlaps with the serialisation of the next.

Measured on the development machine (tools/bench/bench_checkpoint.py): flushing after
writing made a save 1.5x the plain, non-durable writes; writing back during the writes
brings it to 1.15-1.25x. Elsewhere than Linux the early write-back is skipped and the
final ``fsync`` does all of the work.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import struct
import sys
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch

__all__ = [
    "DurableFile",
    "Flusher",
    "can_write_safetensors",
    "fsync_path",
    "start_writeback",
    "write_safetensors",
]

_CHUNK = 32 * 2**20  # bytes written between two write-back requests
_ALIGN = 2**20  # requests end on a MiB boundary below the end of the file
_MAX_WRITE = 2**30  # one os.write call (Linux caps a single write just below 2 GiB)
_SYNC_FILE_RANGE_WRITE = 2
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _load_sync_file_range() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        function = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_sync_file_range = _load_sync_file_range()


def start_writeback(fd: int, offset: int, length: int) -> bool:
    """Ask the kernel to start writing ``length`` bytes at ``offset`` to disk; no wait.

    Returns whether the request was made (False where the call does not exist or the
    file system refused it; the data is then flushed by the final ``fsync`` anyway).
    """
    if _sync_file_range is None or length <= 0:
        return False
    return _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE) == 0


class DurableFile:
    """A binary file for serialisers that pushes its bytes towards the disk as it grows.

    Args:
        path: The file to create (truncated if it exists).
        writeback: Called with ``(fd, offset, length)`` for each filled chunk, to start
            its write-back (:meth:`Flusher.open` passes one that runs in its thread);
            None when durability is not wanted: the bytes then stay in the page cache,
            as with a plain write.
    """

    def __init__(
        self, path: str, *, writeback: Callable[[int, int, int], Any] | None = None
    ) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_CLOEXEC, 0o644)
        self.size = 0
        self.failure: OSError | None = None
        self._pushed = 0
        self._writeback = writeback

    def write(self, data: Any) -> int:
        """Write all of ``data`` (bytes or any buffer: a memoryview, a numpy array).

        A failure is kept in :attr:`failure` too: ``torch.save`` replaces it with an
        error of its own that no longer says why (disk full, file too large).
        """
        view = memoryview(data).cast("B")
        done = 0
        try:
            while done < len(view):
                done += os.write(self.fd, view[done : done + _MAX_WRITE])
        except OSError as error:
            error.filename = error.filename or self.path
            self.failure = error
            raise
        self.size += done
        end = self.size - self.size % _ALIGN
        if self._writeback is not None and end - self._pushed >= _CHUNK:
            self._writeback(self.fd, self._pushed, end - self._pushed)
            self._pushed = end
        return done

    def flush(self) -> None:
        """Nothing is buffered in this process (``torch.save`` calls it at the end)."""

    def sync_and_close(self) -> None:
        """Flush the file to stable storage, then close it."""
        try:
            os.fsync(self.fd)
        finally:
            self.close()

    def close(self) -> None:
        """Close without flushing (the data is in the page cache)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def abandon(self, error: BaseException) -> None:
        """Close after ``error`` interrupted writing; re-raise the write failure behind
        it, if any, so that the caller learns the real cause."""
        self.close()
        if self.failure is not None and error is not self.failure:
            raise self.failure from error


class Flusher:
    """Finishes files in a background thread while the next ones are written.

    Args:
        enabled: Flush to stable storage; when False files are only closed (their data
            stays in the page cache) and :meth:`finish` does nothing.
    """

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._pool = ThreadPoolExecutor(max_workers=1) if enabled else None
        self._futures: list[Future[None]] = []
        self._closed: set[str] = set()  # written and flushed by this flusher itself
        self._started: set[str] = set()  # others' files whose flush started early

    def __enter__(self) -> Flusher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def open(self, path: str) -> DurableFile:
        """A new file whose pages start towards the disk while it is written."""
        return DurableFile(path, writeback=self._start_writeback if self.enabled else None)

    def _start_writeback(self, fd: int, offset: int, length: int) -> None:
        # Queued before the file's final fsync and close, so the fd is still open.
        if self._pool is not None:
            self._pool.submit(start_writeback, fd, offset, length)

    def close(self, handle: DurableFile) -> None:
        """Hand a complete file over: flushed and closed in the background (after its
        write-back requests)."""
        if self._pool is None:
            handle.close()
            return
        self._closed.add(os.path.realpath(handle.path))
        self._futures.append(self._pool.submit(handle.sync_and_close))

    def flush_written(self, folder: str) -> None:
        """Start flushing, in the background, the files in ``folder`` that other code
        wrote (``save_pretrained``) and that were not handed over before.

        Other processes may still be writing into ``folder`` (the RNG files, or a second
        node's writer sharing the storage): a file of theirs can be renamed or removed
        between the listing and its flush, so a vanished file is skipped here, and
        :meth:`finish` flushes what is there once everybody is done.
        """
        if self._pool is None:
            return
        for path in _files_under(folder):
            if path not in self._closed and path not in self._started:
                self._started.add(path)
                self._futures.append(self._pool.submit(_fsync_if_present, path))

    def finish(self, folder: str) -> None:
        """Wait for every flush (raising its error), flush the files of ``folder`` written
        by others (RNG files, shards, ``save_pretrained``) and then the folders.

        Every file this flusher did not write is flushed here, also those whose flush
        :meth:`flush_written` started: a file can have been replaced since (another
        writer's atomic rename), and flushing a file already on the disk costs little.
        """
        if self._pool is None:
            return
        for future in self._futures:
            future.result()
        for path in _files_under(folder):
            if path not in self._closed:
                fsync_path(path)
        for root, _dirs, _files in os.walk(folder, topdown=False):
            fsync_path(root)


def _files_under(folder: str) -> list[str]:
    return [
        os.path.realpath(os.path.join(root, name))
        for root, _dirs, files in os.walk(folder)
        for name in files
    ]


def _fsync_if_present(path: str) -> None:
    # Another writer's temporary file may have been renamed or removed since the listing.
    with contextlib.suppress(FileNotFoundError):
        fsync_path(path)


def fsync_path(path: str) -> None:
    """Flush one file (or a folder's entries, such as a rename) to stable storage."""
    fd = os.open(path, os.O_RDONLY | _O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------- safetensors
# safetensors' dtype names, in the order its writer lays tensors out (largest element
# first, so that every tensor is aligned): files written here are byte for byte those
# of ``safetensors.torch.save_file``.
_DTYPES: tuple[tuple[torch.dtype, str], ...] = (
    (torch.uint64, "U64"),
    (torch.int64, "I64"),
    (torch.float64, "F64"),
    (torch.complex64, "C64"),
    (torch.float32, "F32"),
    (torch.uint32, "U32"),
    (torch.int32, "I32"),
    (torch.bfloat16, "BF16"),
    (torch.float16, "F16"),
    (torch.uint16, "U16"),
    (torch.int16, "I16"),
    (torch.float8_e5m2fnuz, "F8_E5M2FNUZ"),
    (torch.float8_e4m3fnuz, "F8_E4M3FNUZ"),
    (torch.float8_e4m3fn, "F8_E4M3"),
    (torch.float8_e5m2, "F8_E5M2"),
    (torch.int8, "I8"),
    (torch.uint8, "U8"),
    (torch.bool, "BOOL"),
)
_DTYPE_NAMES = {dtype: name for dtype, name in _DTYPES}
_DTYPE_ORDER = {dtype: rank for rank, (dtype, _) in enumerate(_DTYPES)}


def can_write_safetensors(tensors: Mapping[str, torch.Tensor]) -> bool:
    """Whether :func:`write_safetensors` handles every tensor (dense, known dtype) on
    this machine (safetensors stores little-endian bytes: the memory of a tensor here)."""
    return sys.byteorder == "little" and all(
        t.dtype in _DTYPE_NAMES and t.layout is torch.strided and not t.is_quantized
        for t in tensors.values()
    )


def write_safetensors(
    tensors: Mapping[str, torch.Tensor], handle: DurableFile, metadata: Mapping[str, str]
) -> None:
    """Stream ``tensors`` into ``handle`` in the safetensors format.

    The tensors must be contiguous (see ``_weights._unique_tensors``); those on an
    accelerator are copied to the CPU one at a time.
    """
    ordered = sorted(tensors.items(), key=lambda item: (_DTYPE_ORDER[item[1].dtype], item[0]))
    header: dict[str, Any] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for name, tensor in ordered:
        size = tensor.numel() * tensor.element_size()
        header[name] = {
            "dtype": _DTYPE_NAMES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    encoded = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    encoded += b" " * (-(len(encoded) + 8) % 8)  # the data starts 8-byte aligned
    handle.write(struct.pack("<Q", len(encoded)) + encoded)
    for _name, tensor in ordered:
        if tensor.numel():
            handle.write(_bytes_of(tensor))


def _bytes_of(tensor: torch.Tensor) -> Any:
    """The tensor's memory as a buffer (no copy on the CPU)."""
    flat = tensor.detach().reshape(-1)
    if flat.device.type != "cpu":
        flat = flat.cpu()
    return flat.view(torch.uint8).numpy()
