"""``import trainer_args`` loads neither torch nor numpy, and takes milliseconds."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys, time
start = time.perf_counter()
import trainer_args
elapsed = time.perf_counter() - start
lazy_stdlib_loaded = sorted(m for m in ("socket", "datetime") if m in sys.modules)
args = trainer_args.TrainingArguments("out", eval_strategy="steps", fsdp="full_shard")
args.to_json_string()
args.should_log, args.world_size, args.process_index
print(json.dumps({
    "elapsed": elapsed,
    "lazy_stdlib_loaded": lazy_stdlib_loaded,
    "heavy": sorted(m for m in ("torch", "numpy", "accelerate", "transformers")
                    if m in sys.modules),
}))
"""


def _probe() -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(result.stdout)


def test_import_and_basic_use_load_no_torch_nor_numpy() -> None:
    probe = _probe()
    assert probe["heavy"] == []
    assert probe["lazy_stdlib_loaded"] == []  # only loaded when an object is built


def test_import_time_in_a_fresh_interpreter() -> None:
    # Best of three fresh interpreters, so that one slow start on a busy machine does
    # not fail the test; the bound is generous, typical figures are far below it.
    elapsed = min(float(_probe()["elapsed"]) for _ in range(3))  # type: ignore[arg-type]
    print(f"import trainer_args took {elapsed * 1000:.1f} ms")
    assert elapsed < 1.0
