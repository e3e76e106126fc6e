"""Repository-wide pytest set-up.

One intra-op thread for torch: the test machines have 2 cores, pytest already keeps
one busy, and torch's OpenMP workers spinning against it made a tiny model's backward
pass 200x slower (0.85 s instead of 4 ms) when anything else ran at the same time.
Subprocesses that tests start inherit the setting.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
