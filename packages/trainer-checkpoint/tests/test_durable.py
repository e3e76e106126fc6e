"""Files written for durability: the same bytes as the plain writers, flushed as they go."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zipfile

import pytest
import torch
from safetensors.torch import load_file, save_file

from trainer_checkpoint._durable import (
    DurableFile,
    Flusher,
    can_write_safetensors,
    start_writeback,
    write_safetensors,
)


def _mixed() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "layer.weight": torch.randn(5, 3, generator=generator),
        "layer.bias": torch.randn(3, generator=generator).to(torch.bfloat16),
        "half": torch.randn(4, generator=generator).half(),
        "double": torch.randn(2, generator=generator).double(),
        "steps": torch.tensor([1, 2, 3]),
        "mask": torch.tensor([True, False]),
        "scalar": torch.tensor(2.5),
        "bytes": torch.arange(7, dtype=torch.uint8),
        "empty": torch.zeros(0, 4),
        "名前": torch.ones(1),  # non-ASCII names are written as UTF-8, as safetensors does
    }


def test_safetensors_files_are_byte_for_byte_those_of_safetensors(tmp_path) -> None:
    tensors = _mixed()
    assert can_write_safetensors(tensors)
    save_file(tensors, tmp_path / "reference.safetensors", metadata={"format": "pt"})
    handle = DurableFile(str(tmp_path / "ours.safetensors"))
    write_safetensors(tensors, handle, {"format": "pt"})
    handle.sync_and_close()
    ours = (tmp_path / "ours.safetensors").read_bytes()
    assert ours == (tmp_path / "reference.safetensors").read_bytes()
    loaded = load_file(tmp_path / "ours.safetensors")
    assert all(torch.equal(loaded[name], tensor) for name, tensor in tensors.items())


def test_unsupported_tensors_are_left_to_safetensors() -> None:
    assert not can_write_safetensors({"sparse": torch.eye(2).to_sparse()})


def test_torch_save_into_a_durable_file_writes_the_same_records(tmp_path) -> None:
    state = {"state": {0: {"exp_avg": torch.randn(300, 300)}}, "param_groups": [{"lr": 0.1}]}
    torch.save(state, tmp_path / "plain.pt")
    handle = DurableFile(str(tmp_path / "ours.pt"))
    torch.save(state, handle)
    handle.sync_and_close()
    assert handle.size == (tmp_path / "ours.pt").stat().st_size
    # The zip's root folder is named after the file for a path ("plain/") and "archive/"
    # for a file object; the records under it are the same, byte for byte.
    with zipfile.ZipFile(tmp_path / "plain.pt") as plain, zipfile.ZipFile(handle.path) as ours:
        assert [_record(i) for i in ours.infolist()] == [_record(i) for i in plain.infolist()]
        for left, right in zip(ours.infolist(), plain.infolist(), strict=True):
            assert ours.read(left) == plain.read(right)
    loaded = torch.load(handle.path, weights_only=True)
    assert torch.equal(loaded["state"][0]["exp_avg"], state["state"][0]["exp_avg"])


def _record(info: zipfile.ZipInfo) -> tuple[str, int, int]:
    return info.filename.split("/", 1)[1], info.file_size, info.CRC


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux's")
def test_write_back_starts_while_the_file_is_written(tmp_path) -> None:
    handle = DurableFile(str(tmp_path / "data"))
    handle.write(b"x" * 4096)
    assert start_writeback(handle.fd, 0, 4096)
    handle.close()


def test_the_flusher_finishes_every_file_and_reports_failures(tmp_path) -> None:
    folder = tmp_path / "staging"
    folder.mkdir()
    (folder / "written_elsewhere.json").write_text("{}")  # flushed by finish()
    with Flusher(enabled=True) as flusher:
        handle = flusher.open(str(folder / "weights"))
        handle.write(memoryview(b"abc"))
        flusher.close(handle)
        flusher.finish(str(folder))
    assert handle.fd == -1 and (folder / "weights").read_bytes() == b"abc"
    with Flusher(enabled=True) as flusher:
        broken = flusher.open(str(folder / "broken"))
        os.close(broken.fd)  # fsync will fail: the error must reach finish()
        flusher.close(broken)
        with pytest.raises(OSError):
            flusher.finish(str(folder))


def test_files_another_writer_renames_meanwhile_are_flushed_as_they_end_up(
    tmp_path, monkeypatch
) -> None:
    """Two nodes' writers sharing storage fill one staging folder: the other writer's
    temporary file may be renamed between this writer's listing and its flush (seen in
    CI as a failed save). It is skipped then, and its final name flushed by finish()."""
    from trainer_checkpoint import _durable

    folder = tmp_path / "staging"
    folder.mkdir()
    temporary, final = folder / ".trainer_state.json.99.tmp", folder / "trainer_state.json"
    temporary.write_text("{}")
    real_walk, real_fsync = os.walk, _durable.fsync_path
    flushed: list[str] = []

    def walk_then_other_writer_renames(top, *args, **kwargs):
        yield from real_walk(top, *args, **kwargs)
        if temporary.exists():
            temporary.rename(final)

    def recording_fsync(path: str) -> None:
        real_fsync(path)
        flushed.append(os.path.basename(path))

    monkeypatch.setattr(os, "walk", walk_then_other_writer_renames)
    monkeypatch.setattr(_durable, "fsync_path", recording_fsync)
    with Flusher(enabled=True) as flusher:
        flusher.flush_written(str(folder))
        flusher.finish(str(folder))
    assert "trainer_state.json" in flushed and ".trainer_state.json.99.tmp" not in flushed


_TOO_LARGE = textwrap.dedent(
    """
    import resource, signal, sys, torch
    from trainer_checkpoint._durable import DurableFile
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
    handle = DurableFile(sys.argv[1])
    try:
        torch.save({"a": torch.zeros(10000)}, handle)
    except RuntimeError as error:
        try:
            handle.abandon(error)
        except OSError as cause:
            print("CAUSE", cause.errno, cause.filename)
    """
)


def test_a_failed_write_inside_torch_save_keeps_its_cause(tmp_path) -> None:
    # torch.save reports a failed write as "unexpected pos"; the OSError behind it
    # (EFBIG here, ENOSPC on a full disk) is what the checkpoint error must name.
    path = str(tmp_path / "big.pt")
    result = subprocess.run(
        [sys.executable, "-c", _TOO_LARGE, path], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["CAUSE", "27", path]
