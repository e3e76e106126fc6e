"""The README's main job, shortened: the example script trains, evaluates and saves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_char_lm_example_trains_saves_and_samples(tmp_path: Path) -> None:
    output_dir = tmp_path / "char_lm"
    command = [
        sys.executable, str(ROOT / "examples" / "char_lm" / "train_char_lm.py"),
        "--output_dir", str(output_dir), "--max_steps", "12", "--logging_steps", "4",
        "--n_layer", "1", "--n_embd", "32", "--block_size", "32", "--disable_tqdm", "True",
        "--sample_length", "20",
    ]  # fmt: skip
    result = subprocess.run(
        command, check=False, capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Evaluation loss" in result.stdout
    assert str(output_dir) in result.stdout
    saved = {path.name for path in output_dir.iterdir()}
    assert {"vocab.json", "char_lm_config.json", "training_args.json"} <= saved
    assert saved & {"pytorch_model.bin", "model.safetensors"}
    logged = [
        json.loads(line.replace("'", '"'))
        for line in result.stdout.splitlines()
        if line.startswith("{'loss'")
    ]
    assert len(logged) >= 3
