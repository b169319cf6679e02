"""Run records shared by the experiments (``reproduce pets``, ``reproduce muller``).

One finished run is one JSON file, written atomically (:func:`lsbench.provenance.atomic_write_json`)
and identified by its ``run_key``: the digest of everything that determines it (the experiment's
whole configuration, the run's loss and seed). An invocation

1. plans: a run whose recorded ``run_key`` matches is skipped (resume); a recorded run with
   another key stops the command before anything is trained, with :func:`describe_mismatch`
   saying what differs, unless ``--force``;
2. trains what is missing, saving each record with :func:`save_record` (a differing old record
   is first copied to ``replaced/`` beside it, by :func:`keep_replaced`);
3. aggregates the records with :func:`seed_values`, :func:`summary` and :func:`paired` and
   rewrites its results file after every run, so an interrupt loses at most the run in progress.

Also here: the terminal formatting both experiments print with (:func:`fmt_pm`, :func:`text_table`)
and the short provenance stamp of a record (:func:`provenance_brief`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from lsbench import provenance as prov

__all__ = [
    "read_record",
    "strip_bins",
    "describe_mismatch",
    "mismatch_message",
    "keep_replaced",
    "save_record",
    "provenance_brief",
    "seed_values",
    "summary",
    "paired",
    "fmt_pm",
    "text_table",
]


def read_record(path: Path) -> dict | None:
    """The JSON object in ``path``, or ``None`` when it is missing, unreadable or not an object."""
    try:
        rec = prov.read_json(path)
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def strip_bins(test: Mapping | None) -> dict | None:
    """A record's test metrics without the reliability bins (compared when a run is redone)."""
    if test is None:
        return None
    return {k: v for k, v in test.items() if not k.startswith("reliability")}


def describe_mismatch(rec: Mapping, common: Mapping, loss: Any = None) -> str:
    """What differs between a recorded run and the run this invocation would make.

    ``common`` is the configuration shared by the invocation's runs; ``loss`` (optional) the
    run's loss, compared with the record's ``"loss"``.
    """
    diffs = []
    if loss is not None and rec.get("loss") != loss:
        diffs.append(f"loss {rec.get('loss')} != {loss}")
    old = rec.get("config") or {}
    diffs += [f"config[{k!r}] differs" for k in sorted(set(old) | set(common)) if old.get(k) != common.get(k)]
    return "; ".join(diffs) or "different run_key"


def mismatch_message(command: str, runs_dir: Path, problems: Sequence[str], out_flag: str) -> str:
    """Why an invocation stops before training: recorded runs in ``runs_dir`` with another configuration."""
    return (f"lsbench reproduce {command}: recorded runs in {runs_dir} were made with a different "
            "configuration:\n  " + "\n  ".join(problems)
            + "\nNothing was changed. Rerun with --force to redo them (the old records are kept under "
              f"replaced/), or pick another {out_flag}.")


def keep_replaced(path: Path, log: Callable[[str], None], why: str = "  previous record",
                  into: Path | None = None) -> Path:
    """Copy ``path`` to ``<into>/<stem>-<UTC stamp>.json`` (default ``into``: ``replaced/``
    beside ``path``) before it is overwritten."""
    stamp = prov.utc_now().replace(":", "").replace("-", "")
    folder = into if into is not None else path.parent / "replaced"
    keep, n = folder / f"{path.stem}-{stamp}.json", 1
    while keep.exists():  # two replacements within one second keep both
        n += 1
        keep = folder / f"{path.stem}-{stamp}-{n}.json"
    prov.atomic_write_bytes(keep, path.read_bytes())
    log(f"{why} kept as {keep}")
    return keep


def save_record(path: Path, record: Mapping, log: Callable[[str], None]) -> None:
    """Write ``record`` atomically to ``path``; an old record there with another ``run_key`` or
    other test metrics is kept under ``replaced/`` first (:func:`keep_replaced`)."""
    if path.exists():
        old = read_record(path)
        same = (old is not None and old.get("run_key") == record["run_key"]
                and strip_bins(old.get("test")) == strip_bins(record["test"]))
        if not same:
            keep_replaced(path, log)
    prov.atomic_write_json(path, record)


def provenance_brief(provenance: Mapping) -> dict:
    """The provenance fields every run record carries (from :func:`lsbench.provenance.collect`)."""
    p = provenance
    return {"git_commit": p["git"]["commit"], "git_dirty": p["git"]["dirty"], "backend": p["jax"]["backend"],
            "device": p["jax"]["device_kind"], "cpu": p["cpu"]["model"]}


# --------------------------------------------------------------------------- aggregation


def seed_values(records: Iterable[Mapping], get: Callable[[Mapping], float]) -> dict[int, float]:
    """``{seed: get(record)}`` over run records."""
    return {int(r["seed"]): float(get(r)) for r in records}


def summary(values: Mapping[int, float]) -> dict | None:
    """:func:`lsbench.metrics.summarize` over the seeds' values (``None`` without any)."""
    from lsbench.metrics import summarize

    return summarize(list(values.values())) if values else None


def paired(values: Mapping[int, float], base: Mapping[int, float]) -> dict | None:
    """:func:`lsbench.metrics.paired_difference` ``values − base`` on the shared seeds
    (``None`` if either is empty)."""
    from lsbench.metrics import paired_difference

    return paired_difference(values, base) if values and base else None


# --------------------------------------------------------------------------- terminal output


def fmt_pm(s: Mapping | None, scale: float = 1.0, digits: int = 2, sign: bool = False) -> str:
    """``"mean ± ci"`` of a summary, both times ``scale`` (``"-"`` for none; no ``±`` without a CI).

    >>> fmt_pm({"mean": 0.1234, "ci": 0.01}, 100)
    '12.34 ± 1.00'
    >>> fmt_pm({"mean": 0.5, "ci": None}, sign=True)
    '+0.50'
    """
    if not s:
        return "-"
    m = s["mean"] * scale
    f = f"{m:+.{digits}f}" if sign else f"{m:.{digits}f}"
    return f if s.get("ci") is None else f"{f} ± {s['ci'] * scale:.{digits}f}"


def text_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A left-aligned plain-text table with a dashed rule under the header."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)
