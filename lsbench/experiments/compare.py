"""Fresh runs against the recorded reference: run by run, with a tolerance rule fixed in code.

**Tolerance rule** (:func:`tolerances`): for run name ``n`` and metric ``m``, a fresh value agrees
with the reference value of the same (name, seed) when ``|fresh − reference| ≤ tol[n][m]``, where
``tol[n][m]`` is the reference's 95 % CI half-width of ``m`` over the seeds of ``n`` (Student t,
:func:`lsbench.metrics.summarize`, as the results file's aggregates record it) -- the spread the
reference itself shows between seeds -- and at least :data:`ABSOLUTE_FLOOR` (used alone when the
reference has a single seed). A run is

* ``bit-identical`` -- every metric equal to the reference's float for float;
* ``within tolerance`` -- every metric inside its tolerance;
* ``different`` -- some metric outside it (listed);
* ``config differs`` -- the reference was made with another configuration or loss: its numbers are
  shown but not judged;
* ``no reference`` -- the reference has no run of that name and seed.

The comparison also lists the provenance fields in which the two invocations differ (CPU model,
family/model/ISA extensions, usable cores, backend, package versions, XLA flags, commit, code hash,
input arrays) and ends with a one-line
verdict (:func:`verdict`).

>>> ref = [{"name": "ce", "seed": 0, "test": {"error": 0.1}}, {"name": "ce", "seed": 1, "test": {"error": 0.2}}]
>>> c = compare_runs([{"name": "ce", "seed": 0, "test": {"error": 0.1}}], ref, ["error"])
>>> c["runs"][0]["status"], c["counts"]["bit-identical"]
('bit-identical', 1)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from lsbench.experiments.records import text_table

__all__ = ["ABSOLUTE_FLOOR", "STATUSES", "tolerances", "config_differences", "provenance_differences",
           "compare_runs", "verdict", "format_comparison", "agrees", "reference_provenance", "publish"]

#: Metrics printed in percent.
PERCENT = {"error": 100, "ece": 100, "ece_ts": 100}

#: Smallest tolerance per metric (fractions for error/ECE, nats for NLL, Brier units, T).
ABSOLUTE_FLOOR = {"error": 1e-3, "ece": 1e-3, "ece_ts": 1e-3, "nll": 1e-3, "nll_ts": 1e-3,
                  "brier": 1e-3, "brier_ts": 1e-3, "temperature": 1e-2}
DEFAULT_FLOOR = 1e-3
STATUSES = ("bit-identical", "within tolerance", "different", "config differs", "no reference")
#: Provenance fields compared, as (label, path in lsbench.provenance.collect's dict).
PROVENANCE_FIELDS = (("input arrays", ("inputs_sha256",)), ("CPU family/model/ISA", ("cpu_identity",)),
                     ("CPU model", ("cpu", "model")), ("usable cores", ("cpu", "usable_cores")),
                     ("backend", ("jax", "backend")), ("device", ("jax", "device_kind")),
                     ("XLA flags", ("runtime", "XLA_FLAGS")), ("code hash", ("code_sha256",)),
                     ("commit", ("git", "commit")), ("dirty", ("git", "dirty")), ("python", ("python",)))


def _metric(run: Mapping, m: str) -> float | None:
    v = (run.get("test") or {}).get(m, run.get(m))
    return None if v is None else float(v)


def tolerances(reference_runs: Sequence[Mapping], metrics: Sequence[str],
               floor: Mapping[str, float] = ABSOLUTE_FLOOR) -> dict[str, dict[str, float]]:
    """``{name: {metric: tolerance}}`` by the module's rule, from the reference's runs."""
    from lsbench.metrics import summarize

    by_name: dict[str, list[Mapping]] = {}
    for r in reference_runs:
        by_name.setdefault(r["name"], []).append(r)
    out = {}
    for name, rs in by_name.items():
        out[name] = {}
        for m in metrics:
            vals = [v for v in (_metric(r, m) for r in rs) if v is not None]
            ci = summarize(vals)["ci"] if len(vals) >= 2 else None
            out[name][m] = max(ci or 0.0, floor.get(m, DEFAULT_FLOOR))
    return out


def config_differences(fresh: Mapping | None, reference: Mapping | None, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two configuration trees (descending into dicts)."""
    fresh, reference = fresh or {}, reference or {}
    out = []
    for k in sorted(set(fresh) | set(reference), key=str):
        a, b = fresh.get(k), reference.get(k)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += config_differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}")
    return out


def _get(tree: Mapping | None, path: Sequence[str]) -> Any:
    for p in path:
        if not isinstance(tree, Mapping):
            return None
        tree = tree.get(p)
    return tree


def provenance_differences(fresh: Mapping | None, reference: Mapping | None) -> list[dict]:
    """``[{"field", "fresh", "reference"}]`` for the fields of :data:`PROVENANCE_FIELDS`, each package
    version and the code hash (``code_sha256`` at the top of either mapping) that differ."""
    fresh, reference = fresh or {}, reference or {}
    fields = list(PROVENANCE_FIELDS)
    packages = sorted(set(fresh.get("packages") or {}) | set(reference.get("packages") or {}))
    fields += [(f"package {p}", ("packages", p)) for p in packages]
    out = []
    for label, path in fields:
        a, b = _get(fresh, path), _get(reference, path)
        if a != b:
            out.append({"field": label, "fresh": a, "reference": b})
    return out


def compare_runs(fresh_runs: Sequence[Mapping], reference_runs: Sequence[Mapping], metrics: Sequence[str], *,
                 fresh_config: Mapping | None = None, reference_config: Mapping | None = None,
                 fresh_provenance: Mapping | None = None, reference_provenance: Mapping | None = None,
                 floor: Mapping[str, float] = ABSOLUTE_FLOOR) -> dict:
    """The comparison document (JSON-able): per run status and differences, the largest difference
    per metric over the judged runs, counts, provenance differences and the verdict line."""
    tol = tolerances(reference_runs, metrics, floor)
    ref = {(r["name"], int(r["seed"])): r for r in reference_runs}
    config_diff = config_differences(fresh_config, reference_config)
    rows, largest = [], {}
    for run in fresh_runs:
        key = (run["name"], int(run["seed"]))
        row: dict[str, Any] = {"name": key[0], "seed": key[1]}
        r = ref.get(key)
        if r is None:
            rows.append({**row, "status": "no reference"})
            continue
        diffs = {m: None if _metric(run, m) is None or _metric(r, m) is None else _metric(run, m) - _metric(r, m)
                 for m in metrics}
        row["difference"] = diffs
        why = list(config_diff) + (["loss"] if run.get("loss") != r.get("loss") else [])
        if "config" in run and "config" in r:  # runs that carry their own configuration (Müller)
            why += [k for k in config_differences(run["config"], r["config"]) if k not in why]
        if why:
            rows.append({**row, "status": "config differs", "config_differs": why})
            continue
        beyond = [m for m, d in diffs.items() if d is None or abs(d) > tol[key[0]][m]]
        if all(d == 0 for d in diffs.values()):
            status = "bit-identical"
        else:
            status = "different" if beyond else "within tolerance"
        for m, d in diffs.items():
            if d is not None and (m not in largest or abs(d) > abs(largest[m]["difference"])):
                largest[m] = {"difference": d, "run": f"{key[0]} seed {key[1]}", "tolerance": tol[key[0]][m]}
        rows.append({**row, "status": status, "beyond_tolerance": beyond,
                     "tolerance": {m: tol[key[0]][m] for m in metrics}})
    counts = {s: sum(r["status"] == s for r in rows) for s in STATUSES}
    prov_diff = provenance_differences(fresh_provenance, reference_provenance)
    doc = {"rule": "per metric: |fresh − reference| ≤ max(reference 95% CI half-width over seeds, floor)",
           "floor": dict(floor), "metrics": list(metrics), "runs": rows, "counts": counts,
           "largest_difference": largest, "config_differs": config_diff, "provenance_differs": prov_diff,
           "reference": {"cpu": _get(reference_provenance, ("cpu", "model")),
                         "commit": _get(reference_provenance, ("git", "commit"))}}
    doc["verdict"] = verdict(doc)
    return doc


def agrees(comparison: Mapping) -> bool:
    """Every fresh run judged and none beyond tolerance (what ``--check`` requires)."""
    c = comparison["counts"]
    return bool(comparison["runs"]) and c["different"] == 0 and c["config differs"] == 0 and c["no reference"] == 0


def verdict(comparison: Mapping) -> str:
    """One line: e.g. ``24/24 runs bit-identical to the reference recorded on AMD EPYC at commit 1a2b3c4``."""
    c, n = comparison["counts"], len(comparison["runs"])
    ref = comparison["reference"]
    where = f"the reference recorded on {ref['cpu'] or 'an unknown CPU'} at commit {(ref['commit'] or '?')[:7]}"
    judged = c["bit-identical"] + c["within tolerance"] + c["different"]
    if n and c["bit-identical"] == n:
        return f"{n}/{n} runs bit-identical to {where}"
    tail = []
    if c["config differs"]:
        keys = ", ".join(comparison["config_differs"][:4]) or "loss"
        tail.append(f"{c['config differs']} not comparable (configuration differs: {keys})")
    if c["no reference"]:
        tail.append(f"{c['no reference']} without a reference run")
    if not judged:
        return f"0/{n} runs comparable with {where}" + (f": {'; '.join(tail)}" if tail else "")
    fields = ", ".join(d["field"] for d in comparison["provenance_differs"][:6]) or "no provenance field"
    head = (f"{c['bit-identical'] + c['within tolerance']}/{judged} within the reference's tolerance "
            f"(95% CI half-width over seeds); {c['bit-identical']} bit-identical; {c['different']} different "
            f"[vs {where}; differs: {fields}]")
    return head + (f"; {'; '.join(tail)}" if tail else "")


def format_comparison(comparison: Mapping, scale: Mapping[str, float] | None = None) -> str:
    """The printed comparison: a table of runs, the largest difference per metric, provenance, verdict."""
    scale = scale or {}
    metrics = comparison["metrics"]
    head = ("run", "status", *(f"Δ {m}" for m in metrics))
    rows = []
    for r in comparison["runs"]:
        d = r.get("difference") or {}
        cells = ["-" if d.get(m) is None else f"{d[m] * scale.get(m, 1.0):+.3g}" for m in metrics]
        rows.append((f"{r['name']} seed {r['seed']}", r["status"], *cells))
    lines = ["Comparison with the recorded reference (Δ = fresh − reference"
             + (f"; {', '.join(f'{m} ×{s:g}' for m, s in scale.items() if m in metrics)}" if scale else "") + ")",
             text_table(head, rows), "", "largest difference per metric:"]
    for m, d in comparison["largest_difference"].items():
        lines.append(f"  {m:<12} {d['difference']:+.3g} ({d['run']}; tolerance {d['tolerance']:.3g})")
    if comparison["config_differs"]:
        lines.append("configuration differs from the reference in: " + ", ".join(comparison["config_differs"]))
    if comparison["provenance_differs"]:
        lines.append("provenance that differs (fresh vs reference):")
        lines += [f"  {d['field']}: {d['fresh']!r} vs {d['reference']!r}" for d in comparison["provenance_differs"]]
    lines += [f"tolerance rule: {comparison['rule']}", "", "verdict: " + comparison["verdict"]]
    return "\n".join(lines)


def reference_provenance(results: Mapping | None) -> dict:
    """A reference results file's provenance with its top-level ``code_sha256`` (as :func:`compare_runs` takes it)."""
    results = results or {}
    return {**(results.get("provenance") or {}), "code_sha256": results.get("code_sha256")}


def publish(comparison: dict, workdir: Path, text: str | None = None) -> dict:
    """Print the comparison (``text``, default :func:`format_comparison`) and save it in ``workdir`` as
    ``comparison.json`` and ``comparison.txt`` (atomically, after checking it holds no absolute path)."""
    from lsbench import provenance as prov

    text = text if text is not None else format_comparison(comparison, scale=PERCENT)
    print("\n" + text)
    prov.assert_no_absolute_paths(comparison, "the comparison")
    prov.atomic_write_json(Path(workdir) / "comparison.json", comparison)
    prov.atomic_write_bytes(Path(workdir) / "comparison.txt", (text + "\n").encode())
    return comparison
