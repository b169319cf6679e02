#!/usr/bin/env bash
# The benchmark on a GPU, prepared to finish in about 8 minutes: `python -m lsbench bench` on a subset of
# shapes (K = 1000, 32000 and a [B, T, K] shape), every recipe at each of them, one fused-linear shape, at most
# 5 passes per group, writing paper/results/bench-gpu-<device kind>.json (the machine id comes from JAX's
# device, see lsbench.bench.run.machine_name) and paper/tables/bench.{tex,md}.
#
#   benchmarks/gpu.sh                      # on the GPU machine, from a committed checkout
#   benchmarks/gpu.sh -- --allow-dirty     # anything after -- goes to `lsbench bench` unchanged
#   benchmarks/gpu.sh --quick --out DIR    # tiny shapes on any backend: checks this script (seconds)
#   benchmarks/gpu.sh --dry-run            # print the command and exit
#
# PYTHON (default: python) is the interpreter with lsbench, jax[cuda] and, for the PyTorch peer, a CUDA torch.
# JAX is told not to preallocate GPU memory, so that the PyTorch peer beside it has room; the results record it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=paper
QUICK=0
DRY=0
ALLOW_CPU=0
PASS=()
usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --out) [ $# -ge 2 ] || { echo "gpu.sh: --out needs a directory" >&2; exit 2; }; OUT=$2; shift ;;
    --allow-cpu) ALLOW_CPU=1 ;;  # the full GPU subset on a CPU backend (slow; for trying the script)
    --dry-run) DRY=1 ;;
    -h|--help) usage; exit 0 ;;
    --) shift; PASS=("$@"); break ;;
    *) echo "gpu.sh: unknown argument '$1' (expected --quick, --out DIR, --allow-cpu, --dry-run, -- ARGS)" >&2
       exit 2 ;;
  esac
  shift
done
export XLA_PYTHON_CLIENT_PREALLOCATE=${XLA_PYTHON_CLIENT_PREALLOCATE:-false}
if [ "$QUICK" = 1 ]; then
  CMD=("$PY" -m lsbench bench --quick --no-progress --out "$OUT")
else
  CMD=("$PY" -m lsbench bench --no-progress --out "$OUT"
       --shapes 4096x1000,1024x32000,8x512x32000 --more-recipe-shapes all
       --linear-shapes 256x256x32000 --max-passes 5)
fi
CMD+=("${PASS[@]+"${PASS[@]}"}")
if [ "$DRY" = 1 ]; then
  printf '%q ' "${CMD[@]}"; echo
  exit 0
fi
backend=$("$PY" -c 'import jax; print(jax.default_backend())')
if [ "$backend" = cpu ] && [ "$QUICK" = 0 ] && [ "$ALLOW_CPU" = 0 ]; then
  echo "gpu.sh: JAX sees no accelerator (backend cpu); run python -m lsbench bench on a CPU," \
       "or pass --quick / --allow-cpu to try this script here" >&2
  exit 2
fi
echo "gpu.sh: backend $backend; $(printf '%q ' "${CMD[@]}")"
start=$(date +%s)
status=0
"${CMD[@]}" || status=$?
echo "gpu.sh: exit status $status after $(( $(date +%s) - start )) s"
exit "$status"
