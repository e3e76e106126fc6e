"""The runtime: devices, processes, mixed precision and model wrapping (DDP, FSDP, DeepSpeed)."""

from __future__ import annotations

__all__: list[str] = []
