"""One process of a multi-process (multi-"host") data-parallel run on the CPU.

Started twice by ``tests/test_sharding.py`` (process ids 0 and 1, 4 forced
host devices each, gloo collectives over localhost): exactly the start-up the
README documents for several machines, with ``jax.distributed.initialize`` and
each process feeding only its own slice of every batch through
``jax.make_array_from_process_local_data`` (``shard_local_batch``). Prints the
losses and the final parameters as one JSON line prefixed ``RESULT ``
(gloo writes its own lines to stdout).

    python tests/_multihost_worker.py --process-id I --num-processes 2 --port P
"""

from __future__ import annotations

import argparse
import json
import os

ap = argparse.ArgumentParser()
ap.add_argument("--process-id", type=int, required=True)
ap.add_argument("--num-processes", type=int, required=True)
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--local-devices", type=int, default=4)
args = ap.parse_args()
os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={args.local_devices}"
os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # noqa: E402

jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU only; GPUs/TPUs need nothing
jax.distributed.initialize(coordinator_address=f"localhost:{args.port}", num_processes=args.num_processes,
                           process_id=args.process_id)

import optax  # noqa: E402
from flax import nnx  # noqa: E402

from _sharding_common import EPS, IGNORE, MLP, dp_batches, flat  # noqa: E402
from lsbench.parallel import DataParallelTrainer, make_mesh, recipe_loss_fn, shard_local_batch  # noqa: E402

mesh = make_mesh()  # every device of every process
trainer = DataParallelTrainer(MLP(rngs=nnx.Rngs(0)), optax.adam(1e-2),
                              recipe_loss_fn("uniform", epsilon=EPS, ignore_index=IGNORE), mesh)
losses = []
for batch in dp_batches():
    per = len(batch["label"]) // jax.process_count()
    mine = slice(jax.process_index() * per, (jax.process_index() + 1) * per)
    local = {k: v[mine] for k, v in batch.items()}  # this process loads only its slice
    losses.append(float(trainer.step(shard_local_batch(local, mesh))))
print("RESULT " + json.dumps({"process": jax.process_index(), "processes": jax.process_count(), "devices": jax.device_count(),
           "local_devices": jax.local_device_count(), "losses": losses,
           "params": flat(trainer.params).tolist()}), flush=True)
jax.distributed.shutdown()
