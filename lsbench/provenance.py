"""Provenance for any recorded result: what code, on what machine, from what inputs.

Generic (no experiment-specific knowledge); experiments call :func:`collect`
once per invocation and add their own keys. Also the small I/O helpers every
recorder needs: :func:`sha256_file`, :func:`digest` (a stable hash of
JSON-able config), :func:`atomic_open` / :func:`atomic_write_bytes` /
:func:`atomic_write_json` (temp file in the same directory + ``fsync`` +
``os.replace``, so a reader or an interrupt never sees a half-written file) and
:func:`read_json`; and the machine facts results files record
(:func:`git_info`, :func:`package_versions`, :func:`cpu_model`,
:func:`usable_cores`, :func:`load_average`, ...). Every results file of the
project (proofs, bench, pets, Müller) takes these from here.

:func:`collect` returns (all values JSON-able; ``None`` where unknown)::

    {
      "created_utc": "2025-01-01T12:00:00Z",
      "git": {"commit": "<40 hex>" | None, "dirty": bool | None, "describe": str | None},
      "packages": {"jax": "0.10.2", "jaxlib": ..., "flax": ..., "optax": ...,
                   "numpy": ..., "scipy": ..., "lsbench": ...},
      "python": "3.12.3", "platform": "Linux-...-x86_64", "hostname": "...",
      "jax": {"backend": "cpu", "devices": ["TFRT_CPU_0 (cpu)"], "device_kind": "cpu",
              "x64": false},
      "cpu": {"model": "AMD EPYC ...", "logical_cores": 2, "load_avg_1m": 1.2},
      "gpu": {"model": "NVIDIA H100 ..."} | None,
      "files": {"<label>": {"path": "...", "sha256": "...", "bytes": 123}, ...},
      ...extra keys passed to collect(...)
    }
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator, Mapping

__all__ = [
    "DEFAULT_PACKAGES",
    "collect",
    "git_info",
    "package_versions",
    "jax_info",
    "cpu_info",
    "cpu_model",
    "usable_cores",
    "load_average",
    "gpu_info",
    "sha256_file",
    "file_record",
    "digest",
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_json",
    "read_json",
    "utc_now",
]

DEFAULT_PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "scipy", "lsbench")
REPO_ROOT = Path(__file__).resolve().parents[1]


def utc_now() -> str:
    """The current UTC time as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_info(root: str | os.PathLike | None = None) -> dict:
    """``{"commit", "dirty", "describe"}`` of the git checkout at ``root`` (read-only git calls).

    The one definition of "dirty" every results file uses: true when ``git
    status --porcelain`` lists any tracked change or untracked, non-ignored
    file (an untracked source file can change a result as much as an edit).
    All ``None`` outside a git checkout.
    """
    root = Path(root) if root is not None else REPO_ROOT
    commit = _git(["rev-parse", "HEAD"], root)
    if commit is None:
        return {"commit": None, "dirty": None, "describe": None}
    status = _git(["status", "--porcelain"], root)
    dirty = None if status is None else bool(status)
    describe = _git(["describe", "--always", "--tags"], root)
    if describe is not None and dirty:  # not git's --dirty, which ignores untracked files
        describe += "-dirty"
    return {"commit": commit, "dirty": dirty, "describe": describe}


def package_versions(names: Iterable[str] = DEFAULT_PACKAGES) -> dict:
    """Installed distribution versions (``importlib.metadata``); ``None`` if not installed."""
    from importlib import metadata

    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def jax_info() -> dict:
    """JAX's default backend, its devices and whether x64 is on."""
    try:
        import jax
    except ImportError:
        return {"backend": None, "devices": [], "device_kind": None, "x64": None}
    devices = jax.devices()
    return {
        "backend": jax.default_backend(),
        "devices": [f"{d} ({d.platform})" for d in devices],
        "device_kind": devices[0].device_kind if devices else None,
        "x64": bool(jax.config.jax_enable_x64),
    }


def cpu_model() -> str | None:
    """The CPU's model name from ``/proc/cpuinfo``, else ``platform.processor()``; ``None`` if neither says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip() or None
    except OSError:
        pass
    return platform.processor() or None


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one, else ``os.cpu_count()``)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def load_average() -> list[float] | None:
    """``[1 min, 5 min, 15 min]`` load averages, or ``None`` where the OS does not report them."""
    try:
        return list(os.getloadavg())
    except (OSError, AttributeError):
        return None


def cpu_info() -> dict:
    """CPU model name (:func:`cpu_model`), logical core count, 1-min load."""
    load = load_average()
    return {"model": cpu_model(), "logical_cores": os.cpu_count(),
            "load_avg_1m": None if load is None else round(load[0], 2)}


def gpu_info() -> dict | None:
    """The accelerator's model from JAX (``device_kind``) when the backend is not CPU, else ``None``."""
    try:
        import jax
    except ImportError:
        return None
    if jax.default_backend() == "cpu":
        return None
    devices = jax.devices()
    return {"model": devices[0].device_kind, "count": len(devices), "platform": devices[0].platform}


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_record(path: str | os.PathLike) -> dict:
    """``{"path", "sha256", "bytes"}`` of a file (``sha256``/``bytes`` ``None`` if it is missing)."""
    p = Path(path)
    if not p.is_file():
        return {"path": str(p), "sha256": None, "bytes": None}
    return {"path": str(p), "sha256": sha256_file(p), "bytes": p.stat().st_size}


def _canonical(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # NumPy scalars
        return obj.item()
    return obj


def digest(obj: Any, length: int = 16) -> str:
    """A stable hex hash (sha256, first ``length`` chars) of JSON-able ``obj``.

    Keys are sorted and tuples become lists, so equal configs hash equally
    across runs and processes.
    """
    text = json.dumps(_canonical(obj), sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file that becomes ``path`` only when the ``with`` block succeeds.

    The file is a temporary one beside ``path``, fsynced and moved into place
    with ``os.replace``; on any error it is removed and ``path`` is untouched,
    so a reader or an interrupt never sees a half-written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (:func:`atomic_open`)."""
    with atomic_open(path) as f:
        f.write(data)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 1) -> Path:
    """``json.dumps(obj)`` (strict: NaN/inf are an error) written atomically, with a final newline."""
    text = json.dumps(obj, indent=indent, allow_nan=False, ensure_ascii=False)
    return atomic_write_bytes(path, (text + "\n").encode("utf-8"))


def read_json(path: str | os.PathLike) -> Any:
    """``json.load`` of a UTF-8 file."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def collect(*, files: Mapping[str, str | os.PathLike] | None = None,
            packages: Iterable[str] = DEFAULT_PACKAGES, root: str | os.PathLike | None = None,
            **extra: Any) -> dict:
    """Everything in the module docstring's schema; ``files`` maps a label to a path to hash;
    ``extra`` keys are added as they are (they must be JSON-able)."""
    out = {
        "created_utc": utc_now(),
        "git": git_info(root),
        "packages": package_versions(packages),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "argv": list(sys.argv),
        "jax": jax_info(),
        "cpu": cpu_info(),
        "gpu": gpu_info(),
        "files": {label: file_record(p) for label, p in (files or {}).items()},
    }
    out.update(extra)
    return out
