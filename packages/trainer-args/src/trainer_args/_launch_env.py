"""Rank and world size as the launcher that started this process announced them.

Launchers tell each process where it stands through environment variables; reading them
needs neither torch nor a process group, so configuration code can ask "am I the main
process?" before (or without) any distributed set-up. Launchers are tried in order and
the first one whose variables are present wins:

1. torchrun, ``accelerate launch``, the DeepSpeed launcher: ``WORLD_SIZE``, ``RANK``,
   ``LOCAL_RANK`` (and ``LOCAL_WORLD_SIZE``);
2. Open MPI (``mpirun``): ``OMPI_COMM_WORLD_SIZE``, ``OMPI_COMM_WORLD_RANK``,
   ``OMPI_COMM_WORLD_LOCAL_RANK``;
3. MPICH / Intel MPI (PMI): ``PMI_SIZE``, ``PMI_RANK``, ``MPI_LOCALRANKID``;
4. Slurm (``srun``): ``SLURM_STEP_NUM_TASKS``, ``SLURM_PROCID``, ``SLURM_LOCALID``.

The MPI and Slurm families count only when they announce more than one process: a
plain ``python train.py`` inside an allocation (``sbatch``, ``mpirun -n 1``) stays a
single, non-distributed process. Slurm is read from the per-step variable that ``srun``
sets, not ``SLURM_NTASKS``, which a batch script sees even though only one process runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class LaunchEnv:
    """Where this process stands among the processes of one run.

    Attributes:
        world_size: number of processes in the run (1 when not launched).
        rank: this process's index among all processes (0 when not launched).
        local_rank: this process's index on its machine, or ``-1`` when no launcher set
            one (the reference's convention for "not distributed").
        launcher: which family of variables was read (``"torch"``, ``"openmpi"``,
            ``"pmi"``, ``"slurm"``) or ``None``.
    """

    world_size: int = 1
    rank: int = 0
    local_rank: int = -1
    launcher: str | None = None


_LAUNCHERS: tuple[tuple[str, str, str, str], ...] = (
    ("torch", "WORLD_SIZE", "RANK", "LOCAL_RANK"),
    ("openmpi", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK"),
    ("pmi", "PMI_SIZE", "PMI_RANK", "MPI_LOCALRANKID"),
    ("slurm", "SLURM_STEP_NUM_TASKS", "SLURM_PROCID", "SLURM_LOCALID"),
)


def _int_var(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(
            f"Environment variable {name}={raw!r} is not an integer. Launchers set it to "
            f"a process count or index; unset it or fix the launcher command."
        ) from None


def read_launch_env(environ: Mapping[str, str] | None = None) -> LaunchEnv:
    """Read rank and world size from the first launcher whose variables are set.

    Args:
        environ: the environment to read; ``os.environ`` when omitted (tests pass dicts).

    Returns:
        A :class:`LaunchEnv`; the single-process defaults when no launcher variable is set.
        ``LOCAL_RANK`` alone (the DeepSpeed launcher's ``--local_rank`` style) still
        yields a local rank.
    """
    env = os.environ if environ is None else environ
    for launcher, size_var, rank_var, local_var in _LAUNCHERS:
        announced = size_var in env or rank_var in env
        if launcher != "torch":
            announced = _int_var(env, size_var, 1) > 1
        if announced:
            rank = _int_var(env, rank_var, 0)
            return LaunchEnv(
                world_size=_int_var(env, size_var, 1),
                rank=rank,
                local_rank=_int_var(env, local_var, rank),
                launcher=launcher,
            )
    local_rank = _int_var(env, "LOCAL_RANK", -1)
    return LaunchEnv(local_rank=local_rank, launcher="torch" if local_rank != -1 else None)
