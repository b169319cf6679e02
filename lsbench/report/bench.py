"""Throughput and memory (``paper/results/bench-<machine>.json``, schema ``lsbench.bench/1``).

What the paper shows, per machine (:mod:`lsbench.bench` documents how it is measured):

* table ``throughput-<machine>-<dtype>``: for every lsbench recipe and logits shape, the median
  time of one jitted loss-and-gradient call (mode ``fwd+bwd``), its ratio to the ``read+write``
  memory floor (one read and one write pass over the logits), its ratio to optax's and to
  PyTorch's time in the same group (``< 1``: lsbench is faster) and the extra memory XLA
  allocates relative to the logits;
  ``tables/throughput.{tex,md}`` gathers the machines (``main.tex`` inputs that one);
* figure ``throughput``: logits per second against K for every implementation, one panel per
  machine (float32 where measured), with the ``read+write`` floor drawn.

Every number is read from the results file (``time_s.median``, ``ratios``,
``memory.xla.extra_ratio``); nothing is recomputed. ``python -m lsbench bench`` also writes its
own, more detailed ``tables/bench.{tex,md}`` (:func:`lsbench.bench.render_tables`), which this
module does not touch.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Mapping, Sequence

from lsbench.report import figures as F
from lsbench.report.fmt import DASH, ratio, seconds
from lsbench.report.proofs import placeholder
from lsbench.report.results import ResultFile, ResultsError, check_schema, need
from lsbench.report.tables import REGENERATE, Table, to_markdown

SCHEMA = "lsbench.bench/1"
COMMAND = "python -m lsbench bench"
MODE = "fwd+bwd"
FLOOR = "read+write"
OURS = "lsbench"
PEERS = (("optax", "optax"), ("torch", "PyTorch"))
DTYPE_ORDER = ("float32", "bfloat16")
PER_DTYPE = ("time", "× floor", "× optax", "× PyTorch", "extra mem.")


@dataclasses.dataclass(frozen=True)
class Result:
    name: str
    impl: str
    mode: str
    dtype: str
    shape: tuple[int, ...]
    median_s: float | None
    ratios: Mapping[str, float]
    extra_ratio: float | None

    @property
    def k(self) -> int:
        return self.shape[-1]

    @property
    def elements(self) -> int:
        return math.prod(self.shape)


@dataclasses.dataclass(frozen=True)
class Bench:
    file: ResultFile
    machine: str
    device: str | None
    results: tuple[Result, ...]
    quick: bool

    def find(self, impl: str, name: str, mode: str, dtype: str, shape: tuple[int, ...]) -> Result | None:
        for r in self.results:
            if (r.impl, r.name, r.mode, r.dtype, r.shape) == (impl, name, mode, dtype, shape):
                return r
        return None

    @property
    def dtypes(self) -> list[str]:
        found = {r.dtype for r in self.results}
        return [d for d in DTYPE_ORDER if d in found] + sorted(found - set(DTYPE_ORDER))


def parse_bench(rf: ResultFile, machine_hint: str) -> Bench:
    check_schema(rf, SCHEMA)
    machine = rf.data.get("machine")
    machine = machine if isinstance(machine, str) and machine else machine_hint
    env = need(rf, rf.data, "environment", dict, optional=True) or {}
    device = env.get("gpu") or env.get("cpu_model")
    cores = env.get("cores")
    if isinstance(device, str) and isinstance(cores, int) and not env.get("gpu"):
        device = f"{device}, {cores} cores"
    rows = need(rf, rf.data, "results", list)
    results = []
    for i, r in enumerate(rows):
        where = f"results[{i}]"
        if not isinstance(r, Mapping):
            raise ResultsError(rf.path, f"{where}: expected an object, found {type(r).__name__}")
        status = need(rf, r, "status", str, where)
        shape = need(rf, r, "shape", list, where)
        if not shape or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape):
            raise ResultsError(rf.path, f"{where}.shape: expected a list of positive integers, found {shape!r}")
        t = need(rf, r, "time_s", dict, where, optional=True)
        median = None
        if status == "ok":
            if t is None:
                raise ResultsError(rf.path, f"{where}: status ok but time_s is missing")
            median = float(need(rf, t, "median", (int, float), f"{where}.time_s"))
        ratios = need(rf, r, "ratios", dict, where, optional=True) or {}
        for k, v in ratios.items():
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise ResultsError(rf.path, f"{where}.ratios.{k}: expected a number, found {type(v).__name__}")
        mem = need(rf, r, "memory", dict, where, optional=True) or {}
        xla = mem.get("xla") if isinstance(mem.get("xla"), Mapping) else {}
        extra = xla.get("extra_ratio")
        results.append(Result(
            name=need(rf, r, "name", str, where), impl=need(rf, r, "impl", str, where),
            mode=need(rf, r, "mode", str, where), dtype=need(rf, r, "dtype", str, where), shape=tuple(shape),
            median_s=median if status == "ok" else None,
            ratios={k: float(v) for k, v in ratios.items() if v is not None} if status == "ok" else {},
            extra_ratio=float(extra) if isinstance(extra, (int, float)) and status == "ok" else None,
        ))
    settings = rf.data.get("settings")
    quick = bool(settings.get("quick")) if isinstance(settings, Mapping) else False
    return Bench(rf, machine, device if isinstance(device, str) else None, tuple(results), quick)


def _recipes(names: Sequence[str]) -> list[str]:
    from lsbench.losses import RECIPES

    order = [n for n in RECIPES if n in names]
    return order + sorted(n for n in names if n not in order)


def _shape_key(shape: tuple[int, ...]) -> tuple:
    return (shape[-1], math.prod(shape), shape)


def machine_slug(machine: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", machine).strip("-") or "machine"


def machine_tables(b: Bench) -> list[Table]:
    """One table per data type measured on the machine."""
    return [machine_table(b, d) for d in b.dtypes] or [machine_table(b, None)]


def machine_table(b: Bench, dtype: str | None) -> Table:
    ours = [r for r in b.results if r.impl == OURS and r.mode == MODE and r.dtype == dtype]
    recipes = _recipes(sorted({r.name for r in ours}))
    shapes = sorted({r.shape for r in ours}, key=_shape_key)
    columns = ("recipe", "shape", *PER_DTYPE)
    rows = []
    for i, recipe in enumerate(recipes):
        if i:
            rows.append(("\\midrule",))
        for j, shape in enumerate(s for s in shapes if any(r.name == recipe and r.shape == s for r in ours)):
            cells = [recipe if j == 0 else "", "×".join(map(str, shape))]
            r = b.find(OURS, recipe, MODE, dtype, shape)
            if r is None or r.median_s is None:
                cells += [DASH] * len(PER_DTYPE)
            else:
                cells += [seconds(r.median_s), ratio(r.ratios.get(FLOOR)) if FLOOR in r.ratios else DASH]
                cells += [ratio(r.ratios[p]) if p in r.ratios else DASH for p, _ in PEERS]
                cells.append(ratio(r.extra_ratio) if r.extra_ratio is not None else DASH)
            rows.append(tuple(cells))
    if not rows:
        rows.append(("no lsbench loss-and-gradient cases recorded", *[""] * (len(columns) - 1)))
    notes = ["time: median of single jitted loss-and-gradient calls; × floor: time over the read+write "
             "memory floor (one read and one write pass over the logits); × optax, × PyTorch: time over the "
             "peer's time on the same logits (below 1: lsbench is faster); extra mem.: bytes XLA allocates "
             "beyond the inputs, over the logits' bytes."]
    if b.quick:
        notes.append("QUICK configuration: tiny shapes and few rounds, for tests; not a benchmark.")
    device = f" ({b.device})" if b.device else ""
    return Table(
        name=f"throughput-{machine_slug(b.machine)}" + (f"-{dtype}" if dtype else ""),
        caption=f"Throughput and memory on {b.machine}{device}, {dtype or 'no data type'}: loss and gradient "
                "of every recipe.",
        columns=columns,
        rows=tuple(rows),
        sources=(b.file.source,),
        align="ll" + "r" * (len(columns) - 2),
        notes=tuple(notes),
        shrink_only=True, ragged_notes=True,
    )


def gather(tables: Sequence[Table], tables_prefix: str = "tables") -> tuple[str, str]:
    """``tables/throughput.{tex,md}``: the per-machine tables, in machine order."""
    tex = [f"% Generated by `{REGENERATE}`; do not edit. One table per bench-<machine>.json."]
    tex += [rf"\input{{{tables_prefix}/{t.name}}}" for t in tables]
    md = [f"<!-- Generated by `{REGENERATE}`; do not edit. -->", ""]
    for t in tables:
        md += [to_markdown(t).rstrip("\n"), ""]
    return "\n".join(tex) + "\n", "\n".join(md)


COLUMNS_PLACEHOLDER = ("recipe", "shape", *PER_DTYPE)


def throughput_placeholder() -> Table:
    return placeholder("throughput", "Throughput and memory.", COLUMNS_PLACEHOLDER, COMMAND)


# --------------------------------------------------------------------------- figure


def _series(b: Bench) -> tuple[str, dict[str, list[Result]], list[tuple[int, float]]]:
    dtype = "float32" if "float32" in b.dtypes else (b.dtypes[0] if b.dtypes else "")
    by_label: dict[str, dict[int, Result]] = {}

    def add(label: str, r: Result):
        if r.median_s is None:
            return
        cur = by_label.setdefault(label, {}).get(r.k)
        if cur is None or r.elements > cur.elements:  # per K, the largest shape measured
            by_label[label][r.k] = r

    for r in b.results:
        if r.dtype != dtype:
            continue
        if r.impl == OURS and r.mode == MODE:
            add(f"lsbench {r.name}", r)
        elif r.impl in dict(PEERS) and r.mode == MODE:
            add(f"{dict(PEERS)[r.impl]} (uniform)", r)
        elif r.impl == "floor" and r.name == FLOOR:
            add("floor", r)
    floor = by_label.pop("floor", {})
    lines = {lab: sorted(v.values(), key=lambda r: r.k) for lab, v in by_label.items()}
    floor_pts = [(k, floor[k].elements / floor[k].median_s) for k in sorted(floor)]
    return dtype, lines, floor_pts


def throughput_figure(benches: Sequence[Bench]):
    benches = [b for b in benches if _series(b)[1]]
    if not benches:
        return None

    def draw():
        from matplotlib.ticker import FuncFormatter

        plain = FuncFormatter(lambda v, _pos: f"{v:g}")
        labels_all: list[str] = []
        for b in benches:
            for lab in _series(b)[1]:
                if lab not in labels_all:
                    labels_all.append(lab)
        ours = sorted(lab for lab in labels_all if lab.startswith(OURS))
        peers = sorted(lab for lab in labels_all if not lab.startswith(OURS))
        labels_all = ours + peers
        colour = {lab: F.PALETTE[i % len(F.PALETTE)] for i, lab in enumerate(labels_all)}
        from matplotlib.ticker import NullFormatter

        fig = F.new_figure(min(6.5, 2.6 * len(benches) + 1.9), 3.2, layout="constrained")
        axes = fig.subplots(1, len(benches), squeeze=False)[0]
        for ax, b in zip(axes, benches):
            dtype, lines, floor = _series(b)
            for lab in labels_all:
                if lab not in lines:
                    continue
                rs = lines[lab]
                ax.plot([r.k for r in rs], [r.elements / r.median_s / 1e9 for r in rs], marker="o", markersize=2.5,
                        linewidth=1.6 if lab == f"{OURS} uniform" else 0.9, color=colour[lab], label=lab,
                        linestyle="-" if lab.startswith(OURS) else "--")
            if floor:
                ax.plot([k for k, _ in floor], [v / 1e9 for _, v in floor], color="black", linewidth=1.8,
                        label="read+write floor")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.xaxis.set_major_formatter(plain)
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.yaxis.set_major_formatter(plain)
            lo, hi = ax.get_ylim()
            # label the minor ticks only when the axis spans less than a decade (else no major tick shows)
            ax.yaxis.set_minor_formatter(plain if hi / lo < 10 else NullFormatter())
            ax.tick_params(axis="y", which="minor", labelsize=5.5)
            ax.set_xlabel("K (classes)")
            ax.set_ylabel("logits per second (billions)")
            ax.set_title(f"{b.machine} ({dtype})")
        handles, labels = [], []
        for ax in axes:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        fig.legend(handles, labels, loc="outside right upper", frameon=False)
        return fig

    caption = ("Throughput of one loss-and-gradient call (logits per second) against the number of classes K, "
               "per implementation and machine; at each K the largest measured shape is shown; the black "
               "line is the read+write memory floor.")
    return draw, caption


def bench_macros(benches: Sequence[Bench] | None) -> dict[str, Any]:
    return {"BenchMachines": len(benches) if benches else None,
            "BenchMachineList": ", ".join(b.machine for b in benches) if benches else None}
