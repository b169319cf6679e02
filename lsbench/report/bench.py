"""Throughput and memory (``paper/results/bench-<machine>.json``, schema ``lsbench.bench/2`` or ``/1``).

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
``memory.xla.extra_ratio``); nothing is recomputed, and nothing here imports the measuring code
(:mod:`lsbench.bench`). :func:`render_tables` / :func:`write_tables` also give the more detailed
``tables/bench.{tex,md}`` that ``python -m lsbench bench`` writes beside its results file
(``python -m lsbench paper`` does not rewrite those), with the targets as a compact table of which is
met where (:func:`target_matrix_markdown`); :func:`ratio_comparison` puts two results files' ratios side
by side (``benchmarks/compare_bench.py``: the issue's table of ratios before and after).
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from lsbench.report import figures as figure_files
from lsbench.report.fmt import DASH, ratio, seconds
from lsbench.report.results import ResultFile, ResultsError, check_schema, need, objects
from lsbench.report.tables import (REGENERATE, Table, atomic_write, latex_escape, placeholder, results_table,
                                   to_markdown)

SCHEMA = "lsbench.bench/2"
SCHEMAS = (SCHEMA, "lsbench.bench/1")  # /1: distillation's ratios were to the one-hot cross-entropy peers
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
    noisy: bool = False  # spread of its per-pass medians above the run's noise bound

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
    noise_bound: float | None = None  # interleaved timing (files without it were timed case by case)
    max_passes: int | None = None
    legacy_peers: bool = False  # schema 1: distillation's ratios are to the one-hot cross-entropy peers

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
    schema = check_schema(rf, SCHEMAS)
    machine = rf.data.get("machine")
    machine = machine if isinstance(machine, str) and machine else machine_hint
    env = need(rf, rf.data, "environment", dict, optional=True) or {}
    device = env.get("gpu") or env.get("cpu_model")
    cores = env.get("cores")
    if isinstance(device, str) and isinstance(cores, int) and not env.get("gpu"):
        device = f"{device}, {cores} cores"
    rows = need(rf, rf.data, "results", list)
    results = []
    for where, r in objects(rf, rows, "results"):
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
            noisy=bool(need(rf, r, "noisy", bool, where, optional=True)) and status == "ok",
        ))
    settings = rf.data.get("settings")
    settings = settings if isinstance(settings, Mapping) else {}
    bound = need(rf, settings, "noise_bound", (int, float), "settings", optional=True)
    passes = need(rf, settings, "max_passes", int, "settings", optional=True)
    return Bench(rf, machine, device if isinstance(device, str) else None, tuple(results),
                 bool(settings.get("quick")), None if bound is None else float(bound), passes,
                 legacy_peers=schema == "lsbench.bench/1")


NOISY = "†"


def noise_note(b: Bench) -> list[str]:
    """The table note on interleaved timing and noisy cases (none for files timed case by case)."""
    if b.noise_bound is None:
        return []
    n = sum(r.noisy for r in b.results)
    return [f"Timed in interleaved passes until the spread (IQR over median) of each case's per-pass medians "
            f"was at most {b.noise_bound:.0%}" + (f" (at most {b.max_passes} passes)" if b.max_passes else "")
            + (f"; {NOISY}: still above it (noisy), {n} case(s)." if n else "; no case was noisy.")]


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
                cells += [seconds(r.median_s) + (f" {NOISY}" if r.noisy else ""),
                          ratio(r.ratios.get(FLOOR)) if FLOOR in r.ratios else DASH]
                cells += [ratio(r.ratios[p]) if p in r.ratios else DASH for p, _ in PEERS]
                cells.append(ratio(r.extra_ratio) if r.extra_ratio is not None else DASH)
            rows.append(tuple(cells))
    if not rows:
        rows.append(("no lsbench loss-and-gradient cases recorded", *[""] * (len(columns) - 1)))
    notes = ["time: median of single jitted loss-and-gradient calls; × floor: time over the read+write "
             "memory floor (one read and one write pass over the logits); × optax, × PyTorch: time over the "
             "peer's time on the same logits (below 1: lsbench is faster); extra mem.: bytes XLA allocates "
             "beyond the inputs, over the logits' bytes."]
    notes += noise_note(b)
    if b.legacy_peers and "distillation" in recipes:
        notes.append("distillation's × optax and × PyTorch: against the one-hot cross-entropy peers (recorded "
                     "before its own KL peers were timed), not against the same computation.")
    if b.quick:
        notes.append("QUICK configuration: tiny shapes and few rounds, for tests; not a benchmark.")
    device = f" ({b.device})" if b.device else ""
    return results_table(
        f"throughput-{machine_slug(b.machine)}" + (f"-{dtype}" if dtype else ""),
        f"Throughput and memory on {b.machine}{device}, {dtype or 'no data type'}: loss and gradient "
        "of every recipe.",
        columns, rows, (b.file.source,), notes, label_columns=2)


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
        colour = {lab: figure_files.PALETTE[i % len(figure_files.PALETTE)] for i, lab in enumerate(labels_all)}
        from matplotlib.ticker import NullFormatter

        fig = figure_files.new_figure(min(6.5, 2.6 * len(benches) + 1.9), 3.2, layout="constrained")
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


# --------------------------------------------------------------------------- the bench command's own tables
# ``python -m lsbench bench`` writes ``tables/bench.{tex,md}``: every shape's uniform timings against the
# floors and peers, every recipe's medians, the fused-linear cases and the targets, from the JSON alone.


def _median_ms(r: Mapping | None) -> float | None:
    return None if not r or r["status"] != "ok" else r["time_s"]["median"] * 1e3


def _fixed(v: float | None, spec: str = "{:.2f}") -> str:
    return "--" if v is None else spec.format(v)


def _ms_cell(v: float | None) -> str:
    if v is None:
        return "--"
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:.0f}"


def _mb_cell(b: int | None) -> str:
    return "--" if b is None else f"{b / 2**20:.1f}"


def _shape_text(shape: Sequence[int]) -> str:
    return "x".join(str(int(s)) for s in shape)


def _record(results: Sequence[Mapping], impl: str, name: str, mode: str, dtype: str, shape) -> Mapping | None:
    key = (impl, name, mode, dtype, tuple(shape))
    return next((r for r in results if (r["impl"], r["name"], r["mode"], r["dtype"], tuple(r["shape"])) == key),
                None)


def _ok_ratio(r: Mapping | None, key: str) -> float | None:
    return r.get("ratios", {}).get(key) if r and r["status"] == "ok" else None


def _xla_extra(r: Mapping | None) -> float | None:
    return (((r or {}).get("memory") or {}).get("xla") or {}).get("extra_ratio")


def _inverse(v: float | None) -> float | None:
    return None if not v else 1 / v


def _bench_rows(doc: Mapping) -> tuple[list[dict], list[dict], list[dict], list[str]]:
    """``(summary, recipes, linear, recipe names)``: the rows of the bench command's tables."""
    res = doc["results"]
    floors = list(doc["floors"])
    names = list(dict.fromkeys(r["name"] for r in res if r["impl"] == OURS))
    groups = list(dict.fromkeys((r["dtype"], tuple(r["shape"])) for r in res
                                if r["impl"] not in ("lsbench-linear", "unfused")))
    summary, recipes = [], []
    for dtype, shape in groups:
        fwd = _record(res, OURS, "uniform", "fwd", dtype, shape)
        fb = _record(res, OURS, "uniform", MODE, dtype, shape)
        summary.append({
            "dtype": dtype, "shape": _shape_text(shape),
            "fwd_ms": _median_ms(fwd), "fwd_x_read": _ok_ratio(fwd, "read"),
            "fb_ms": _median_ms(fb), "fb_x_rw": _ok_ratio(fb, FLOOR), "fb_x_xlaw": _ok_ratio(fb, "xla-write"),
            "optax_speedup": _inverse(_ok_ratio(fb, "optax")), "torch_speedup": _inverse(_ok_ratio(fb, "torch")),
            "fb_mem": _xla_extra(fb),
            "chunked_fb_ms": _median_ms(_record(res, "lsbench-chunked", "chunked[uniform]", MODE, dtype, shape)),
            "chunked_donated_mem": _xla_extra(_record(res, "lsbench-chunked", "chunked[uniform]",
                                                      "fwd+bwd:donated", dtype, shape)),
        })
        row = {"dtype": dtype, "shape": _shape_text(shape)}
        for name in names:
            for mode in ("fwd", MODE):
                row[(name, mode)] = _median_ms(_record(res, OURS, name, mode, dtype, shape))
        for peer, _ in PEERS:
            for mode in ("fwd", MODE):
                row[(peer, mode)] = _median_ms(_record(res, peer, peer, mode, dtype, shape))
        for f in floors:
            row[(f, "floor")] = _median_ms(_record(res, "floor", f, "floor", dtype, shape))
        recipes.append(row)
    linear = []
    for r in res:
        if r["impl"] == "lsbench-linear" and r["status"] == "ok":
            u = _record(res, "unfused", "linear-unfused[uniform]", r["mode"], r["dtype"], r["shape"])
            fused_mem = (r.get("memory") or {}).get("xla") or {}
            unfused_mem = ((u or {}).get("memory") or {}).get("xla") or {}
            linear.append({"dtype": r["dtype"], "shape": _shape_text(r["shape"]), "mode": r["mode"],
                           "fused_ms": _median_ms(r), "unfused_ms": _median_ms(u),
                           "fused_temp": fused_mem.get("temp_bytes"), "unfused_temp": unfused_mem.get("temp_bytes")})
    return summary, recipes, linear, names


def render_tables(doc: Mapping) -> tuple[str, str]:
    """``(latex, markdown)`` of ``tables/bench.{tex,md}`` from a ``lsbench.bench/1`` results document."""
    summary, recipes, linear, names = _bench_rows(doc)
    floors = list(doc["floors"])
    env = doc["environment"]
    load = env.get("loadavg_start")
    caption = (f"Machine {doc['machine']} ({env['cpu_model']}, {env['cores']} cores, JAX {env['packages'].get('jax')} "
               f"on {env['jax_backend']}); medians of single calls; load average at start "
               f"{'--' if not load else f'{load[0]:.1f}'}.")
    settings = doc.get("settings") or {}
    if "noise_bound" in settings:  # interleaved timing: say how noisy (older files: the caption as it was)
        end = env.get("loadavg_end")
        noisy = [r["id"] for r in doc["results"] if r.get("noisy")]
        caption += (f" Load at end {'--' if not end else f'{end[0]:.1f}'}; timed in interleaved passes to a "
                    f"spread of at most {settings['noise_bound']:.0%}; {len(noisy)} noisy case(s)"
                    + (f" (e.g. {', '.join(noisy[:3])})." if noisy else "."))
    md = [f"# lsbench benchmarks: {doc['machine']}", "", caption, "",
          "## uniform: time and ratios to the floors and peers", "",
          "| dtype | shape | fwd ms | fwd / read | fwd+bwd ms | fwd+bwd / read+write | fwd+bwd / xla-write "
          "| optax / ours | torch / ours | extra mem / logits | chunked fwd+bwd ms | chunked donated mem / logits |",
          "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in summary:
        md.append(f"| {s['dtype']} | {s['shape']} | {_ms_cell(s['fwd_ms'])} | {_fixed(s['fwd_x_read'])} | "
                  f"{_ms_cell(s['fb_ms'])} | {_fixed(s['fb_x_rw'])} | {_fixed(s['fb_x_xlaw'])} | "
                  f"{_fixed(s['optax_speedup'])} | {_fixed(s['torch_speedup'])} | {_fixed(s['fb_mem'])} | "
                  f"{_ms_cell(s['chunked_fb_ms'])} | {_fixed(s['chunked_donated_mem'])} |")
    cols = [(n, m) for n in names for m in ("fwd", MODE)]
    md += ["", "## every recipe (ms, median)", "",
           "| dtype | shape | " + " | ".join(f"{n} {m}" for n, m in cols)
           + " | optax fwd | optax fwd+bwd | torch fwd | torch fwd+bwd | " + " | ".join(floors) + " |",
           "|---|---|" + "---:|" * (len(cols) + 4 + len(floors))]
    for row in recipes:
        cells = [_ms_cell(row[c]) for c in cols]
        cells += [_ms_cell(row[(p, m)]) for p, _ in PEERS for m in ("fwd", MODE)]
        cells += [_ms_cell(row[(f, "floor")]) for f in floors]
        md.append(f"| {row['dtype']} | {row['shape']} | " + " | ".join(cells) + " |")
    if linear:
        md += ["", "## fused linear + uniform (N×H×K)", "",
               "| dtype | shape | mode | fused ms | unfused ms | fused scratch MB | unfused scratch MB |",
               "|---|---|---|---:|---:|---:|---:|"]
        for r in linear:
            md.append(f"| {r['dtype']} | {r['shape']} | {r['mode']} | {_ms_cell(r['fused_ms'])} | "
                      f"{_ms_cell(r['unfused_ms'])} | {_mb_cell(r['fused_temp'])} | {_mb_cell(r['unfused_temp'])} |")
    if doc.get("targets") and not all("kind" in t for t in doc["targets"]):  # schema 1: the list, as it was
        md += ["", "## targets", "", "| target | value | limit | met |", "|---|---:|---:|---|"]
        for t in doc["targets"]:
            met = "--" if t["met"] is None else ("yes" if t["met"] else "**no**")
            md.append(f"| {t['name']} | {_fixed(t['value'])} | {t['op']} {t['limit']} | {met} |")
    elif doc.get("targets"):
        md += ["", "## targets: met / evaluated, by target and group", ""] + target_matrix_markdown(doc["targets"])
        missed = [t for t in doc["targets"] if t["met"] is False]
        md += ["", f"## targets missed ({len(missed)})", "", "| target | value | limit |", "|---|---:|---:|"]
        md += [f"| {t['name']} | {_fixed(t['value'])} | {t['op']} {t['limit']} |" for t in missed]
    md.append("")
    tex = [r"% generated by python -m lsbench bench from paper/results/bench-" + doc["machine"] + ".json",
           r"\begin{table}[t]", r"\centering", r"\small",
           r"\caption{" + latex_escape(caption) + r" Ratios are to the one-read floor (fwd), the NumPy read+write "
           r"floor and the XLA fresh-output floor (fwd+bwd); peers: speed-up of \texttt{uniform} over them.}",
           r"\label{tab:bench}",
           r"\begin{tabular}{llrrrrrrrr}", r"\toprule",
           r"dtype & shape & fwd ms & $\times$read & fwd+bwd ms & $\times$r+w & $\times$xla-w & "
           r"optax$/$ours & torch$/$ours & mem$/$logits \\", r"\midrule"]
    for s in summary:
        tex.append(f"{latex_escape(s['dtype'])} & {latex_escape(s['shape'].replace('x', '×'))} & "
                   f"{_ms_cell(s['fwd_ms'])} & {_fixed(s['fwd_x_read'])} & {_ms_cell(s['fb_ms'])} & "
                   f"{_fixed(s['fb_x_rw'])} & {_fixed(s['fb_x_xlaw'])} & {_fixed(s['optax_speedup'])} & "
                   f"{_fixed(s['torch_speedup'])} & {_fixed(s['fb_mem'])} \\\\")
    tex += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    tex += [r"\begin{table}[t]", r"\centering", r"\scriptsize",
            r"\caption{Every recipe, forward+backward, median ms (" + latex_escape(doc["machine"]) + r").}",
            r"\label{tab:bench-recipes}",
            r"\begin{tabular}{ll" + "r" * (len(names) + 3) + "}", r"\toprule",
            "dtype & shape & " + " & ".join(latex_escape(n) for n in names) + r" & optax & torch & r+w \\",
            r"\midrule"]
    for row in recipes:
        cells = [_ms_cell(row[(n, MODE)]) for n in names]
        cells += [_ms_cell(row[("optax", MODE)]), _ms_cell(row[("torch", MODE)]), _ms_cell(row[(FLOOR, "floor")])]
        tex.append(f"{latex_escape(row['dtype'])} & {latex_escape(row['shape'].replace('x', '×'))} & "
                   + " & ".join(cells) + r" \\")
    tex += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(tex), "\n".join(md)


def write_tables(doc: Mapping, out: str | Path) -> dict[str, Path]:
    """Write ``<out>/tables/bench.{tex,md}`` (atomically) from a results document."""
    tex, md = render_tables(doc)
    paths = {"tex": Path(out) / "tables" / "bench.tex", "md": Path(out) / "tables" / "bench.md"}
    atomic_write(paths["tex"], tex)
    atomic_write(paths["md"], md)
    return paths


# --------------------------------------------------------------------------- targets and before/after ratios


def target_matrix(targets: Sequence[Mapping]) -> tuple[list[str], list[str], dict[tuple[str, str], list[Mapping]]]:
    """``(kinds, groups, cells)``: the targets of a results file by what is asked (``kind``) and where
    (``group``, dtype/shape); files from before kinds existed use each target's name and group ``--``."""
    cells: dict[tuple[str, str], list[Mapping]] = {}
    for t in targets:
        cells.setdefault((t.get("kind") or t["name"], t.get("group") or DASH), []).append(t)
    kinds = list(dict.fromkeys(k for k, _ in cells))
    groups = list(dict.fromkeys(g for _, g in cells))
    return kinds, groups, cells


def _met_cell(ts: Sequence[Mapping] | None) -> str:
    """``3/4`` (met of evaluated), ``ok`` when all of one were met, ``--`` when none was evaluated."""
    if not ts:
        return ""
    evaluated = [t for t in ts if t["met"] is not None]
    if not evaluated:
        return "--"
    met = sum(bool(t["met"]) for t in evaluated)
    if len(evaluated) == 1:
        return "yes" if met else "no"
    return f"{met}/{len(evaluated)}"


def target_matrix_markdown(targets: Sequence[Mapping]) -> list[str]:
    """The compact table of which target is met where (Markdown lines)."""
    kinds, groups, cells = target_matrix(targets)
    lines = ["| target | " + " | ".join(groups) + " |", "|---|" + "---|" * len(groups)]
    for kind in kinds:
        lines.append(f"| {kind} | " + " | ".join(_met_cell(cells.get((kind, g))) for g in groups) + " |")
    return lines


def target_matrix_text(targets: Sequence[Mapping]) -> list[str]:
    """The same table as plain text, one line per target kind (for the terminal)."""
    kinds, groups, cells = target_matrix(targets)
    width = max([len(k) for k in kinds] + [6])
    cols = [max(len(g), 5) for g in groups]
    lines = [" " * width + "  " + "  ".join(g.rjust(c) for g, c in zip(groups, cols))]
    for kind in kinds:
        lines.append(kind.ljust(width) + "  " + "  ".join(_met_cell(cells.get((kind, g))).rjust(c)
                                                         for g, c in zip(groups, cols)))
    return lines


COMPARED = (("optax", "× optax"), ("torch", "× PyTorch"), (FLOOR, "× r+w"))


def ratio_comparison(before: Mapping, after: Mapping, mode: str = MODE) -> str:
    """Markdown: each recipe's ratios (to optax, PyTorch and the read+write floor) in two results documents.

    Rows are the ``(dtype, shape, recipe)`` of either file in ``mode``; ``--`` where a file has no such case.
    A ratio below 1 is faster than the reference. Schema ``lsbench.bench/1`` files divided distillation by
    the one-hot cross-entropy peers (marked ``*``), later ones by its KL peers.
    """
    def index(doc):
        return {(r["dtype"], tuple(r["shape"]), r["name"]): r for r in doc["results"]
                if r["impl"] == OURS and r["mode"] == mode and r["status"] == "ok"}

    old, new = index(before), index(after)
    order = {n: i for i, n in enumerate(_recipes(sorted({k[2] for k in (*old, *new)})))}
    keys = sorted(set(old) | set(new), key=lambda k: (
        DTYPE_ORDER.index(k[0]) if k[0] in DTYPE_ORDER else len(DTYPE_ORDER), _shape_key(k[1]), order[k[2]]))
    legacy = before.get("schema") == "lsbench.bench/1"

    def cell(doc_rows, key, ratio_key, is_before):
        r = doc_rows.get(key)
        v = None if r is None else r.get("ratios", {}).get(ratio_key)
        mark = "*" if (v is not None and is_before and legacy and key[2] == "distillation"
                       and ratio_key in ("optax", "torch")) else ""
        return _fixed(v) + mark

    head = " | ".join(f"{label} before | {label} after" for _, label in COMPARED)
    lines = [f"Ratios of {mode} medians: before = {before.get('machine')} at commit "
             f"{(before.get('git') or {}).get('commit') or '--'}, after = {after.get('machine')} at commit "
             f"{(after.get('git') or {}).get('commit') or '--'} (below 1: faster than the reference).", "",
             f"| dtype | shape | recipe | {head} |", "|---|---|---|" + "---:|" * (2 * len(COMPARED))]
    for key in keys:
        cells = [c for ratio_key, _ in COMPARED
                 for c in (cell(old, key, ratio_key, True), cell(new, key, ratio_key, False))]
        lines.append(f"| {key[0]} | {_shape_text(key[1])} | {key[2]} | " + " | ".join(cells) + " |")
    if legacy:
        lines += ["", "*: before, distillation was divided by the one-hot cross-entropy peers (not its peer); "
                      "after, by optax.kl_divergence and torch's kl_div on temperature-scaled softmax."]
    for doc, when in ((before, "before"), (after, "after")):
        bound = (doc.get("settings") or {}).get("noise_bound")
        noisy = sum(bool(r.get("noisy")) for r in doc["results"])
        load = (doc.get("environment") or {}).get("loadavg_start")
        lines.append(f"{when}: noise bound {'--' if bound is None else f'{bound:.0%}'}, {noisy} noisy case(s), "
                     f"load at start {'--' if not load else f'{load[0]:.2f}'}.")
    return "\n".join(lines) + "\n"
