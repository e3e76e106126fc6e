"""checkpoint-<step> folders: crash-safe writes, discovery, rotation and loading."""

from __future__ import annotations

__all__: list[str] = []
