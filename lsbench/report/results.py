"""Finding, reading and checking the recorded results under ``paper/results/``.

Only the top level of the results directory is read (``runs/`` holds the
per-run records the experiments aggregate themselves). Files by name:

* ``proofs.json``           -- :mod:`lsbench.commands.verify` (``"schema": "lsbench.proofs/1"``);
* ``bench-<machine>.json``  -- ``python -m lsbench bench``;
* ``pets-<profile>.json``   -- :mod:`lsbench.experiments.pets` (``"lsbench/pets-results/1"``);
* ``muller-<name>.json``    -- ``python -m lsbench reproduce muller``.

A file that is missing is simply absent from :class:`Results` (the tables
built from it become "not yet recorded" placeholders). A file that exists but
cannot be parsed, or lacks what the report needs, raises
:class:`ResultsError`, whose message starts with the file's path.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from lsbench.report.tables import Source, short_hash

__all__ = ["ResultsError", "ResultFile", "Results", "discover", "read_json", "need", "objects", "members",
           "check_schema", "dirty_commits"]

PROOFS_SCHEMA = "lsbench.proofs/1"
PETS_SCHEMA = "lsbench/pets-results/1"

_STEM = re.compile(r"^(bench|pets|muller)-([A-Za-z0-9][A-Za-z0-9._+-]*)$")


class ResultsError(ValueError):
    """A results file that exists but is not what the report can use."""

    def __init__(self, path: Path | str, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclasses.dataclass(frozen=True)
class ResultFile:
    """One parsed results file: its path, the short hash cited in captions, and its JSON."""

    path: Path
    digest: str
    data: Any

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def source(self) -> Source:
        """``(file name, short hash, dirty commits)``, what :class:`lsbench.report.tables.Table` cites."""
        return Source(self.name, self.digest, self.dirty_at)

    @functools.cached_property
    def dirty_at(self) -> tuple[str, ...]:
        """:func:`dirty_commits` of this file (read once)."""
        return dirty_commits(self)

    @property
    def suffix(self) -> str:
        """``frozen`` for ``pets-frozen.json``; the machine for ``bench-<machine>.json``."""
        m = _STEM.match(self.path.stem)
        return m.group(2) if m else self.path.stem


@dataclasses.dataclass
class Results:
    """What :func:`discover` found: paths only; nothing is parsed until asked for."""

    root: Path
    proofs: Path | None = None
    bench: dict[str, Path] = dataclasses.field(default_factory=dict)   # machine -> path
    pets: dict[str, Path] = dataclasses.field(default_factory=dict)    # profile -> path
    muller: dict[str, Path] = dataclasses.field(default_factory=dict)  # name -> path
    other: list[Path] = dataclasses.field(default_factory=list)        # *.json the report does not know


def discover(results_dir: Path | str) -> Results:
    """The results files in ``results_dir`` (sorted, top level only); a missing directory is empty."""
    root = Path(results_dir)
    res = Results(root=root)
    if not root.is_dir():
        return res
    for path in sorted(root.glob("*.json")):
        if not path.is_file() or path.name.startswith("."):
            continue
        if path.name == "proofs.json":
            res.proofs = path
            continue
        m = _STEM.match(path.stem)
        if m is None:
            res.other.append(path)
            continue
        getattr(res, m.group(1))[m.group(2)] = path
    return res


class _NonFinite:
    """Where ``json`` met ``NaN``, ``Infinity`` or ``-Infinity`` (found again by :func:`_non_finite`)."""

    def __init__(self, text: str):
        self.text = text


def _non_finite(obj: Any, where: str = "") -> tuple[str, str] | None:
    """``(JSON path, constant)`` of the first non-finite constant in parsed JSON, else None."""
    if isinstance(obj, _NonFinite):
        return where or "top level", obj.text
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for key, value in items:
        found = _non_finite(value, f"{where}.{key}" if isinstance(key, str) and where else
                            str(key) if isinstance(key, str) else f"{where}[{key}]")
        if found:
            return found
    return None


def read_json(path: Path | str) -> ResultFile:
    """Parse ``path`` (strict JSON: ``NaN``/``Infinity`` are refused, naming their key path) into a
    :class:`ResultFile`."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ResultsError(path, f"cannot be read ({exc.strerror or exc})") from exc
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_NonFinite)
    except UnicodeDecodeError as exc:
        raise ResultsError(path, f"is not UTF-8 text ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise ResultsError(path, f"is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    found = _non_finite(data)
    if found:
        raise ResultsError(path, f"{found[0]}: {found[1]} is not a number a table can report (results files "
                                 "hold finite numbers; record a missing value as null)")
    if not isinstance(data, dict):
        raise ResultsError(path, f"must hold a JSON object, found {type(data).__name__}")
    return ResultFile(path=path, digest=short_hash(path), data=data)


def _short_commit(commit: Any) -> str:
    return commit[:7] if isinstance(commit, str) and commit else "unknown"


def _run_provenance(rf: ResultFile, run: Mapping) -> Any:
    """A run's ``provenance``: held in the results file (pets), or in the run record its ``file``
    names relative to the results directory (Müller); None when neither is there to read."""
    if "provenance" in run:
        return run["provenance"]
    file = run.get("file")
    if not isinstance(file, str):
        return None
    try:
        record = json.loads((rf.path.parent / file).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # a missing or unreadable record is not evidence either way
        return None
    return record.get("provenance") if isinstance(record, Mapping) else None


def dirty_commits(rf: ResultFile) -> tuple[str, ...]:
    """The short commits (``"unknown"`` where none was recorded) of the dirty trees ``rf`` was recorded
    from: its git provenance (``git`` or ``provenance.git``) with ``dirty: true``, and each of its
    ``runs`` whose provenance says ``git_dirty: true``. Empty for a clean recording; only an explicit
    ``true`` counts (``null``, "not a git checkout", is not marked)."""
    data = rf.data
    provenance = data.get("provenance")
    git = data.get("git", provenance.get("git") if isinstance(provenance, Mapping) else None)
    found = []
    if isinstance(git, Mapping) and git.get("dirty") is True:
        found.append(_short_commit(git.get("commit")))
    runs = data.get("runs")
    for run in runs if isinstance(runs, list) else ():
        p = _run_provenance(rf, run) if isinstance(run, Mapping) else None
        if isinstance(p, Mapping) and p.get("git_dirty") is True:
            found.append(_short_commit(p.get("git_commit")))
    return tuple(dict.fromkeys(found))


_TYPES = {
    dict: "an object",
    list: "a list",
    str: "a string",
    bool: "true/false",
    (int, float): "a number",
    int: "an integer",
    float: "a number",
}


def need(rf: ResultFile, obj: Any, key: str | int, kind: Any = None, where: str = "",
         optional: bool = False) -> Any:
    """``obj[key]``, checked to exist (unless ``optional``) and to be of ``kind``.

    Raises :class:`ResultsError` naming the file and the JSON path, e.g.
    ``paper/results/pets-frozen.json: aggregates.ce.metrics: missing key 'error'``.
    """
    where = where or "top level"
    try:
        value = obj[key]
    except (KeyError, IndexError, TypeError):
        if optional:
            return None
        raise ResultsError(rf.path, f"{where}: missing key {key!r}") from None
    if value is None and optional:
        return None
    if kind is not None:
        ok = isinstance(value, kind) and not (kind in (int, float, (int, float)) and isinstance(value, bool))
        if ok and kind in (float, (int, float)) and isinstance(value, float) and not math.isfinite(value):
            ok = True  # NaN/inf are numbers; the formatter prints them as such
        if not ok:
            label = _TYPES.get(kind, getattr(kind, "__name__", str(kind)))
            raise ResultsError(rf.path, f"{where}.{key}: expected {label}, found {type(value).__name__}")
    return value


def objects(rf: ResultFile, items: list, name: str) -> Iterator[tuple[str, Mapping]]:
    """``(where, item)`` for each item of the JSON list ``name`` (``where`` is ``"name[i]"``), each checked
    to be an object; raises :class:`ResultsError` naming the first that is not."""
    for i, item in enumerate(items):
        where = f"{name}[{i}]"
        if not isinstance(item, Mapping):
            raise ResultsError(rf.path, f"{where}: expected an object, found {type(item).__name__}")
        yield where, item


def members(rf: ResultFile, mapping: Mapping, name: str) -> Iterator[tuple[str, str, Mapping]]:
    """``(key, where, value)`` for each member of the JSON object ``name`` (``where`` is ``"name.key"``),
    each value checked to be an object; raises :class:`ResultsError` naming the first that is not."""
    for key, value in mapping.items():
        where = f"{name}.{key}"
        if not isinstance(value, Mapping):
            raise ResultsError(rf.path, f"{where}: expected an object, found {type(value).__name__}")
        yield key, where, value


def check_schema(rf: ResultFile, expected: str | Iterable[str]) -> str:
    schema = rf.data.get("schema")
    allowed = (expected,) if isinstance(expected, str) else tuple(expected)
    if schema not in allowed:
        raise ResultsError(rf.path, f"schema is {schema!r}, expected {' or '.join(map(repr, allowed))}")
    return schema
