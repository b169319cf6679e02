"""Reading the experiments' results files (``reproduce pets``/``reproduce muller``): the checks
:mod:`lsbench.report.pets` and :mod:`lsbench.report.muller_tables` share."""

from __future__ import annotations

from typing import Any, Iterator, Mapping

from lsbench.report.results import ResultFile, ResultsError, need

__all__ = ["entries", "recording_status"]


def entries(rf: ResultFile, obj: Any, key: str, kind: type = dict) -> Iterator[tuple[Any, Mapping, str]]:
    """``(name or index, entry, JSON path)`` of every entry of ``obj[key]`` (a ``dict`` or a ``list``),
    each checked to be an object; :class:`~lsbench.report.results.ResultsError` names the first that is not."""
    container = need(rf, obj, key, kind)
    items = container.items() if isinstance(container, dict) else enumerate(container)
    for name, value in items:
        where = f"{key}.{name}" if isinstance(container, dict) else f"{key}[{name}]"
        if not isinstance(value, Mapping):
            raise ResultsError(rf.path, f"{where}: expected an object, found {type(value).__name__}")
        yield name, value, where


def recording_status(rf: ResultFile) -> str | None:
    """``invocation.status`` of the file ("complete", "running", "interrupted"), if recorded."""
    inv = rf.data.get("invocation")
    status = inv.get("status") if isinstance(inv, Mapping) else None
    return status if isinstance(status, str) else None
