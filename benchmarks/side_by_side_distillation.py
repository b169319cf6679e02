"""Side by side: ``distillation`` against optax's ``kl_divergence`` on temperature-scaled softmaxes.

``python -m lsbench bench`` compares every recipe with optax's smoothed cross-entropy; the
peer that computes distillation's loss is ``T²·kl_divergence(log_softmax(s/T), softmax(t/T))``.
This script times both (forward, and forward + gradient in the student logits), interleaved
over repeats so that both see the same load, and prints the ratio of medians and each spread
(IQR / median of the per-repeat medians)::

    PYTHONPATH=. python benchmarks/side_by_side_distillation.py --shapes 256x10,4096x1000 --dtypes float32

It prints the machine's load average before and after (a ratio measured under load is noisier).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import optax

from lsbench.bench import parse_shape, relative_spread
from lsbench.losses import RECIPES

TEMPERATURE = 2.0


def lsbench_loss(s, t):
    return RECIPES["distillation"].loss(s, t, temperature=TEMPERATURE)


def optax_loss(s, t):
    s, t = s.astype(jnp.float32) / TEMPERATURE, t.astype(jnp.float32) / TEMPERATURE
    return TEMPERATURE**2 * optax.kl_divergence(jax.nn.log_softmax(s), jax.nn.softmax(t)).mean()


def median_of_calls(fn, args, min_time=0.1, min_calls=3):
    times, start = [], time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="256x10,256x1000,4096x1000,1024x32000")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--min-time", type=float, default=0.1, help="seconds of calls per median (default 0.1)")
    args = parser.parse_args(argv)
    print("load (1, 5, 15 min) before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()), flush=True)
    for dtype in args.dtypes.split(","):
        for shape in map(parse_shape, args.shapes.split(",")):
            k1, k2 = jax.random.split(jax.random.PRNGKey(0))
            s = (2 * jax.random.normal(k1, shape)).astype(dtype)
            t = (2 * jax.random.normal(k2, shape)).astype(dtype)
            for mode in ("fwd", "fwd+bwd"):
                fns = {name: jax.jit(f if mode == "fwd" else jax.value_and_grad(f)).lower(s, t).compile()
                       for name, f in (("lsbench", lsbench_loss), ("optax", optax_loss))}
                for fn in fns.values():
                    jax.block_until_ready(fn(s, t))
                runs = {name: [] for name in fns}
                for _ in range(args.repeats):
                    for name, fn in fns.items():
                        runs[name].append(median_of_calls(fn, (s, t), args.min_time))
                ours, peer = (statistics.median(runs[n]) for n in ("lsbench", "optax"))
                print(f"{dtype} {'x'.join(map(str, shape))} {mode}: lsbench/optax {ours / peer:.2f} "
                      f"(optax {peer * 1e3:.3f} ms; spread lsbench {relative_spread(runs['lsbench']):.2f}, "
                      f"optax {relative_spread(runs['optax']):.2f})", flush=True)
    print("load (1, 5, 15 min) after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()), flush=True)


if __name__ == "__main__":
    main()
