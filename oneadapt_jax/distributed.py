"""JAX's multi-process runtime for `oneadapt batch`: one process per host (or per GPU), the
runs sharded over every process's devices (`jax.distributed`).

`initialize` starts it from flags (`--coordinator HOST:PORT --num-processes N --process-id I`),
from JAX's own environment variables (`JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES`,
`JAX_PROCESS_ID`), or, with none of those, from the launcher's environment when SLURM (`srun`)
or Open MPI (`mpirun`) started more than one task (JAX detects the coordinator, count and id).
On CPU the processes exchange data over gloo (TCP), so the same job runs as several processes on
one machine.
"""

from __future__ import annotations

import os

import jax

#: Launchers whose environment says how many tasks they started.
LAUNCHERS = {"SLURM_NTASKS": "SLURM", "OMPI_COMM_WORLD_SIZE": "Open MPI"}


def _env_int(name: str) -> int | None:
  value = os.environ.get(name)
  if value is None or value == "":
    return None
  try:
    return int(value)
  except ValueError:
    raise ValueError(f"{name}={value!r} is not an integer") from None


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> bool:
  """Starts `jax.distributed` when this process is one of several (see the module); returns
  whether it did. Call it before anything else runs on a JAX device."""
  coordinator = coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS") or None
  if num_processes is None:
    num_processes = _env_int("JAX_NUM_PROCESSES")
  if process_id is None:
    process_id = _env_int("JAX_PROCESS_ID")
  explicit = {"--coordinator": coordinator, "--num-processes": num_processes,
              "--process-id": process_id}
  if any(v is not None for v in explicit.values()):
    missing = [flag for flag, v in explicit.items() if v is None]
    if missing:
      raise ValueError(f"a multi-process job needs --coordinator, --num-processes and "
                       f"--process-id (or JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, "
                       f"JAX_PROCESS_ID); missing {', '.join(missing)}")
    if num_processes < 1 or not 0 <= process_id < num_processes:
      raise ValueError(f"--process-id must be in [0, {num_processes}) and --num-processes at "
                       f"least 1, got process {process_id} of {num_processes}")
    if num_processes == 1:
      return False
  elif not any((_env_int(name) or 1) > 1 for name in LAUNCHERS):
    return False  # one process: nothing to start
  # CPU devices of different processes talk over gloo (GPUs and TPUs use their own fabric).
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator, num_processes, process_id)
  return True
