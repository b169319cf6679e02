r"""The benchmark: cases, timing, memory and the results JSON (rendering lives in :mod:`lsbench.report.bench`).

Used by ``python -m lsbench bench`` (:mod:`lsbench.commands.bench`) and by the
pytest-benchmark files under ``benchmarks/`` (which time the same callables
with pytest-benchmark instead of :func:`~lsbench.bench.measure.time_interleaved`).

What is measured
================

Every case is one callable on inputs built once per ``(shape, dtype)`` group
(logits ``N(0, 2²)``, uniform integer labels, ε = 0.1):

* **recipes** (``impl="lsbench"``): ``jax.jit`` of ``RECIPES[name].loss``
  (``fwd``) or of ``jax.value_and_grad`` of it (``fwd+bwd``), for every recipe
  of the catalogue: the original seven (``RECIPE_NAMES``) at every shape, the
  newer ten (``MORE_RECIPE_NAMES``) at ``MORE_RECIPE_SHAPES`` by default
  (``--more-recipe-shapes all``: everywhere; ``settings.more_recipe_shapes``
  says which); dense-label recipes (``tf_onehot``, ``keras_binary``) get a
  one-hot label matrix, ``distillation`` teacher logits (T = 2);
* **chunked** (``impl="lsbench-chunked"``, name ``chunked[uniform]``):
  :func:`lsbench.losses.chunked.loss` with ``chunk_size`` classes per block;
* **donated** (mode ``fwd+bwd:donated``, ``uniform`` and ``chunked[uniform]``):
  ``jax.jit(value_and_grad(...), donate_argnums=0)``, a fresh copy of the
  logits per round (made outside the timed region), as in a training step where
  the logits die at the loss;
* **peers**, one family per kind of recipe (``PEERS``, recorded in the file's
  ``peers``), each in optax (jitted) and PyTorch (``torch.autograd.grad`` for
  ``fwd+bwd``, ``torch.set_num_threads(cores)`` on a CPU; skipped with a note
  when torch is not installed): ``ce`` (cases ``optax``/``torch``:
  ``softmax_cross_entropy(z, smooth_labels(one_hot(y), ε)).mean()`` and
  ``F.cross_entropy(z, y, label_smoothing=ε)``) for the softmax recipes;
  ``kl`` (case ``kl``: ``T²·kl_divergence(log_softmax(s/T), softmax(t/T)).mean()``
  and ``F.kl_div(..., reduction="batchmean")·T²``) for ``distillation``;
  ``sigmoid`` (case ``sigmoid``: ``sigmoid_binary_cross_entropy(z, (1-ε)·one_hot(y)
  + ε/2).mean()`` and ``F.binary_cross_entropy_with_logits``) for the sigmoid
  recipes (``keras_binary``, ``timm_binary``, ``mmpretrain_multilabel``: the
  same work whatever the affine smoothing of the one-hot);
* **floors**, same inputs: ``read`` = ``jax.jit(max over the class axis)`` (one
  read pass), ``read+write`` = ``np.multiply(z, 2, out=buf)`` into a
  preallocated buffer (bfloat16: ``np.bitwise_xor(u16, 0x8000, out=buf)``, the
  same bytes, a sign flip), and ``xla-write`` = ``jax.jit(lambda z: z * 2)``,
  which returns a fresh array: the cost XLA:CPU pays for any ``[.., K]``
  output, page faults of a new buffer included (informational);
* **fused linear** (``linear[uniform]`` vs ``linear-unfused[uniform]``, shapes
  ``N×H×K``): :func:`lsbench.losses.linear.linear_smoothed_cross_entropy`
  against ``RECIPES["uniform"].loss(hidden @ weight, labels)``, gradients with
  respect to hidden and weight.

Timing (:func:`~lsbench.bench.measure.time_interleaved`): every case of a
``(dtype, shape)`` group is compiled first; each gets two untimed warm-up
calls; then the group is timed in *passes*, each pass a few single calls of
every case (``time.perf_counter`` around the call and ``block_until_ready``;
the cases in suite order on even passes, reversed on odd ones), so that the
candidates and their references share whatever load the machine had. After
``min_passes`` passes (3) it stops when every case's spread -- ``(q3 - q1) /
median`` of its per-pass medians -- is at most ``noise_bound`` (5 %), else after
``max_passes`` (10), and the cases still above the bound are flagged
``"noisy": true``. Each pass gives a case at least ``min_rounds / min_passes``
calls and about ``min_time_s / min_passes`` seconds, at most ``max_rounds``
calls. On the CPU the programs run on the calling thread (jax's
``jax_cpu_enable_async_dispatch`` off, :func:`~lsbench.bench.run.set_cpu_dispatch`;
``environment.cpu_dispatch``): with jax's asynchronous dispatch each call also
waits for a second thread to wake, which on a 2-core VM cost more than the
kernel at small shapes and landed on whichever case it chose (``--async-dispatch``
measures that way). Reported: median, quartiles, IQR, min, mean and number of all calls,
the spread, the passes and each pass's median. Ratios divide a case's median
by the median of a reference of the same group, timed in the same passes:
``ratios[ref] = t_case / t_ref`` for the floors and for the peers of the case's
family in the same mode (``ratios.optax``, ``ratios.torch``; ``peers`` gives
the ids divided by; ``< 1`` = faster than the peer). The machine's load average is recorded
before and after the run.

Memory ("peak extra memory beyond the inputs"), two measurements:

* ``memory.xla`` (every JAX case): ``jax.jit(f).lower(...).compile().memory_analysis()``
  of the compiled executable: ``extra_bytes = temp + output − alias`` (the
  buffers the call allocates: scratch and results not written in place);
* ``memory.rss`` (selected cases, ``--rss``): a child process builds the
  inputs, compiles, resets the kernel's peak-RSS mark (``/proc/self/clear_refs``
  ← ``5``), runs the case once and reports ``VmHWM − VmRSS_before``: the
  resident memory the call added at its peak, outputs included, allocator
  effects included. (Where ``clear_refs`` is not writable it falls back to
  ``ru_maxrss`` after the call minus ``VmRSS`` before, which over-counts
  compile-time peaks.) Torch is measured this way only.

On an accelerator nothing assumes a CPU: the machine id is
``<platform>-<device kind>`` (:func:`~lsbench.bench.run.machine_name`), the
device's platform and kind are recorded, ``read+write`` is XLA's in-place
``z * 2`` on the donated logits (device memory, not NumPy on the host), the
PyTorch peer runs on CUDA beside JAX (or is skipped with a note), and peak RSS
is not measured (host memory says nothing of device arrays;
``environment.memory_note`` says so; ``memory.xla`` remains).

``extra_ratio = extra_bytes / logits_bytes`` (for linear cases: relative to the
``[N, K]`` logits the fused path avoids).

Results JSON (``<out>/results/bench-<machine>.json``, schema ``lsbench.bench/2``)
================================================================================

Schema 2 (this one) differs from 1 in meaning: a recipe's ``ratios.optax`` /
``ratios.torch`` divide by the peers of its own family (in 1, distillation was
divided by the one-hot cross-entropy), and it adds ``peers`` (document and
result), ``settings.more_recipe_shapes``, ``settings.temperature`` and each
target's ``kind`` and ``group``. The report reads both.

::

    {
      "schema": "lsbench.bench/2",
      "machine": "cpu-amd-epyc-2c",          # cpu-<model>-<cores>c or gpu-<device kind>
      "created": "2026-11-22T21:40:00Z",     # UTC, ISO 8601
      "git": {"commit": "<sha or null>", "dirty": bool | null},
      "environment": {
        "python": str, "platform": str,
        "packages": {"jax": str, "jaxlib": str, "optax": str, "numpy": str,
                     "torch": str | null, "lsbench": str},
        "jax_backend": "cpu" | "gpu" | ..., "devices": [str, ...],
        "device_platform": "cpu" | "gpu" | ..., "device_kind": str,        # jax.devices()[0] (new)
        "cpu_model": str, "cores": int, "gpu": str | null,
        "torch_threads": int | null,
        "loadavg_start": [1m, 5m, 15m] | null, "loadavg_end": [...] | null,
        "env": {"XLA_FLAGS": ..., "MALLOC_ARENA_MAX": ..., ...},  # only the variables that are set
        "runtime": {"XLA_FLAGS": str | null, "JAX_PLATFORMS": ..., "OMP_NUM_THREADS": ..., ...},  # (new)
        "cpu_dispatch": "synchronous" | "asynchronous" | null   # (new) see run.set_cpu_dispatch; null off the CPU
      },                                     # no absolute path anywhere (checked before writing)
      "settings": {"quick": bool, "shapes": [[N, K], ...], "linear_shapes": [[N, H, K], ...],
                   "dtypes": [...], "cases": [pattern, ...] | null, "epsilon": 0.1,
                   "chunk_size": int, "linear_chunk_size": int, "min_rounds": int,
                   "max_rounds": int, "min_time_s": float, "rss": "auto" | "all" | "none",
                   "timing": "interleaved", "noise_bound": 0.05, "min_passes": 3, "max_passes": 10,
                   "temperature": 2.0, "more_recipes": [name, ...],
                   "more_recipe_shapes": [[N, K], ...] | null},   # null: the newer recipes at every shape
      "floors": {"read": str, "read+write": str, "xla-write": str},   # descriptions
      "peers": {"ce" | "kl" | "sigmoid": {"optax": str, "torch": str}},   # what each peer computes
      "results": [
        {"id": "lsbench:uniform/fwd+bwd/float32/1024x32000",
         "name": "uniform", "impl": "lsbench" | "lsbench-chunked" | "lsbench-linear" | "unfused"
                                     | "optax" | "torch" | "floor",
         "mode": "fwd" | "fwd+bwd" | "fwd+bwd:donated" | "floor",
         "dtype": "float32" | "bfloat16", "shape": [1024, 32000],
         "group": "float32/1024x32000",
         "logits_bytes": int,
         "status": "ok" | "skipped" | "error", "note": str | null,
         "compile_s": float | null,
         "time_s": {"median", "q1", "q3", "iqr", "min", "mean": float, "rounds": int,
                    "spread": float, "passes": int, "pass_medians": [float, ...]} | null,
         "noisy": bool,                       # spread > noise_bound after max_passes (new)
         "ratios": {"read": float, "read+write": float, "xla-write": float,
                    "optax": float, "torch": float, "unfused": float},   # present keys only
         "peers": {"optax": id, "torch": id},  # the peer cases ratios.optax / ratios.torch divide by
         "memory": {"xla": {"temp_bytes", "output_bytes", "alias_bytes", "argument_bytes",
                            "extra_bytes": int, "extra_ratio": float} | null,
                    "rss": {"extra_bytes": int, "extra_ratio": float, "method": str} | null}},
        ...
      ],
      "targets": [
        {"name": str, "kind": str, "group": "<dtype>/<shape>", "case": id, "metric": str,
         "value": float | null, "op": "<=" | ">=", "limit": float, "met": bool | null,
         "note": str | null}, ...     # see lsbench.bench.measure.evaluate_targets
      ]
    }

The package: :mod:`~lsbench.bench.cases` (what is timed and how it is built),
:mod:`~lsbench.bench.measure` (timing, ratios, targets),
:mod:`~lsbench.bench.memory` (XLA and RSS memory) and :mod:`~lsbench.bench.run`
(settings, environment, the results JSON). It measures and writes JSON only;
every table and figure is rendered from the JSON by :mod:`lsbench.report.bench`
(``tables/bench.{tex,md}`` by ``python -m lsbench bench``, the paper's
throughput tables and figure by ``python -m lsbench paper``).
"""

from lsbench.bench.cases import (CHUNK_SIZE, DTYPES, EPSILON, FLOORS, LINEAR_CHUNK_SIZE, LINEAR_SHAPES,
                                 MORE_RECIPE_NAMES, MORE_RECIPE_SHAPES, PEER_IMPLS, PEERS, QUICK_CHUNK_SIZE,
                                 QUICK_LINEAR_SHAPES, QUICK_SHAPES, RECIPE_NAMES, SHAPES, SIGMOID_RECIPES, TEMPERATURE,
                                 Case, Inputs, Prepared, Skip, make_cases, parse_shape, peer_case_name, peer_family,
                                 prepare, recipe_second_input, recipes_at, select_cases, shape_str)
from lsbench.bench.measure import (compute_ratios, evaluate_targets, find_result, relative_spread, speed_up_limit,
                                   summarize, time_interleaved)
from lsbench.bench.memory import (RSS_ACCELERATOR_NOTE, RSS_MIN_BYTES, RSS_NAMES, measure_rss, measure_rss_here,
                                  rss_applies, wants_rss, xla_memory)
from lsbench.bench.run import (SCHEMA, Settings, environment, machine_id, machine_name, noisy_cases, results_path,
                               run_suite, set_cpu_dispatch, validate, write_results)

__all__ = [
    "MORE_RECIPE_NAMES", "MORE_RECIPE_SHAPES", "PEER_IMPLS", "PEERS", "SIGMOID_RECIPES", "TEMPERATURE",
    "peer_case_name", "peer_family", "recipe_second_input", "recipes_at", "speed_up_limit",
    "CHUNK_SIZE", "DTYPES", "EPSILON", "FLOORS", "LINEAR_CHUNK_SIZE", "LINEAR_SHAPES", "QUICK_CHUNK_SIZE",
    "QUICK_LINEAR_SHAPES", "QUICK_SHAPES", "RECIPE_NAMES", "RSS_ACCELERATOR_NOTE", "RSS_MIN_BYTES", "RSS_NAMES",
    "SCHEMA", "SHAPES", "Case", "Inputs", "Prepared", "Settings", "Skip", "compute_ratios", "environment",
    "evaluate_targets", "find_result", "machine_id", "machine_name", "make_cases", "measure_rss",
    "measure_rss_here", "noisy_cases", "parse_shape", "prepare", "relative_spread", "results_path", "rss_applies",
    "run_suite", "select_cases", "set_cpu_dispatch", "shape_str", "summarize", "time_interleaved", "validate",
    "wants_rss", "write_results", "xla_memory",
]
