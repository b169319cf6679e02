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
      "packages": {"numpy": "2.1.0", "jax": "0.10.2", "jaxlib": ..., "optax": ..., "flax": ...,
                   "scipy": ..., "Pillow": ..., "scikit-learn": ..., "mlxtend": ...,
                   "matplotlib": ..., "sympy": ..., "lsbench": ...},   # None: not installed
      "python": "3.12.3", "platform": "Linux-...-x86_64",
      "argv": [...],                     # absolute paths replaced (portable_text)
      "jax": {"backend": "cpu", "devices": ["TFRT_CPU_0 (cpu)"], "device_kind": "cpu",
              "platform": "cpu", "x64": false},
      "runtime": {"XLA_FLAGS": "..." | None, "JAX_PLATFORMS": ..., "OMP_NUM_THREADS": ..., ...},
      "cpu": {"model": "AMD EPYC 7B13 64-Core Processor", "logical_cores": 2, "usable_cores": 2,
              "load_avg_1m": 1.2},
      "gpu": {"model": "NVIDIA H100 ..."} | None,
      "files": {"<label>": {"path": "<relative or base name>", "sha256": "...", "bytes": 123}, ...},
      ...extra keys passed to collect(...)
    }

No hostname and no absolute path is recorded: file paths are made relative to
a root (:func:`portable_path`), absolute paths inside strings are replaced
(:func:`portable_text`), and :func:`assert_no_absolute_paths` is the check a
writer runs on its document before writing it. :func:`require_clean_tree` is
the gate of a recorder that writes reference results ("commit first").
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path, PureWindowsPath
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
    "NUMERIC_PACKAGES",
    "RUNTIME_ENV",
    "OUTPUT_PATHS",
    "runtime_env",
    "portable_path",
    "portable_text",
    "find_absolute_paths",
    "assert_no_absolute_paths",
    "DirtyTreeError",
    "dirty_paths",
    "require_clean_tree",
    "check_writable",
    "sha256_file",
    "file_record",
    "digest",
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_json",
    "read_json",
    "utc_now",
]

#: Every distribution whose version can shape a recorded number or figure.
NUMERIC_PACKAGES = ("numpy", "jax", "jaxlib", "optax", "flax", "scipy", "Pillow", "scikit-learn", "mlxtend",
                    "matplotlib", "sympy", "lsbench")
DEFAULT_PACKAGES = NUMERIC_PACKAGES
#: Environment variables that change what XLA compiles or how many threads it (and BLAS/OpenMP) uses.
RUNTIME_ENV = ("XLA_FLAGS", "JAX_PLATFORMS", "JAX_ENABLE_X64", "JAX_DEFAULT_MATMUL_PRECISION",
               "JAX_TRACEBACK_FILTERING", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
               "TF_CPP_MIN_LOG_LEVEL", "CUDA_VISIBLE_DEVICES", "MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_",
               "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")
#: Generated outputs, not code: a change there does not make the tree dirty for :func:`require_clean_tree`.
OUTPUT_PATHS = ("paper/results/", "paper/tables/", "paper/figures/")
REPO_ROOT = Path(__file__).resolve().parents[1]


def utc_now() -> str:
    """The current UTC time as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _git(args: list[str], cwd: Path, strip: bool = True) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() if strip else out.stdout


def dirty_paths(root: str | os.PathLike | None = None, ignore: Iterable[str] = ()) -> list[str] | None:
    """Paths ``git status --porcelain`` lists (changed, staged or untracked and not ignored), relative to
    the checkout's top, minus those under a prefix in ``ignore``; ``None`` outside a git checkout."""
    root = Path(root) if root is not None else REPO_ROOT
    top = _git(["rev-parse", "--show-toplevel"], root)
    status = None if top is None else _git(["status", "--porcelain", "-z", "--untracked-files=all"], Path(top),
                                           strip=False)
    if status is None:
        return None
    entries = status.split("\0")
    paths, i = [], 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if len(entry) < 4:
            continue
        paths.append(entry[3:])
        if entry[0] in "RC":  # a rename or copy is followed by its source path
            paths.append(entries[i])
            i += 1
    prefixes = tuple(ignore)
    return [p for p in paths if not (prefixes and p.startswith(prefixes))]


def git_info(root: str | os.PathLike | None = None, ignore: Iterable[str] = ()) -> dict:
    """``{"commit", "dirty", "describe"}`` of the git checkout at ``root`` (read-only git calls).

    The one definition of "dirty" every results file uses: true when ``git
    status --porcelain`` lists any tracked change or untracked, non-ignored
    file (an untracked source file can change a result as much as an edit),
    other than those under a prefix in ``ignore`` (e.g. :data:`OUTPUT_PATHS`).
    All ``None`` outside a git checkout.
    """
    root = Path(root) if root is not None else REPO_ROOT
    commit = _git(["rev-parse", "HEAD"], root)
    if commit is None:
        return {"commit": None, "dirty": None, "describe": None}
    paths = dirty_paths(root, ignore)
    dirty = None if paths is None else bool(paths)
    describe = _git(["describe", "--always", "--tags"], root)
    if describe is not None and dirty:  # not git's --dirty, which ignores untracked files
        describe += "-dirty"
    return {"commit": commit, "dirty": dirty, "describe": describe}


class DirtyTreeError(RuntimeError):
    """Reference results would be recorded from code that is not committed."""


def require_clean_tree(allow_dirty: bool = False, *, root: str | os.PathLike | None = None,
                       ignore: Iterable[str] = OUTPUT_PATHS, what: str = "reference results") -> dict:
    """:func:`git_info` (with ``ignore``) of the checkout, or :class:`DirtyTreeError` if it is dirty.

    A results file must name a commit that contains the code that made it, so
    recording one from uncommitted changes (or outside a git checkout) is
    refused with a message listing a few of the offending paths, unless
    ``allow_dirty`` -- then the file records ``dirty: true``. Changes under a
    prefix in ``ignore`` (the generated outputs) do not count.
    """
    info = git_info(root, ignore)
    if allow_dirty or info["dirty"] is False:
        return info
    if info["commit"] is None or info["dirty"] is None:
        raise DirtyTreeError(f"cannot record {what}: {Path(root or REPO_ROOT)} is not a git checkout with a "
                             "readable status, so no commit would name the code; run from a clone, or pass "
                             "--allow-dirty to record anyway")
    paths = dirty_paths(root, ignore) or []
    shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
    raise DirtyTreeError(f"cannot record {what} from a dirty tree ({shown} not committed): commit first, "
                         "or pass --allow-dirty to record anyway (the file will say dirty: true)")


def check_writable(*directories: str | os.PathLike) -> None:
    """Create each directory if needed and check a file can be made in it; ``OSError`` naming it if not.

    Run before any long work, so that a read-only or missing output location is
    an error at the start rather than a traceback after the work is done.
    """
    for directory in directories:
        d = Path(directory)
        try:
            d.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".lsbench-write-test.", dir=d)
            os.close(fd)
            os.unlink(tmp)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot write to {d}: {exc.strerror or exc}") from exc


# An absolute POSIX path (``/x/...`` at the start of the text or after a space, ``=``,
# a quote, ``(``, ``[`` or ``,`` -- so ``a/b``, ``(K-1)/K``, ``http://`` and
# ``uniform]/fwd`` are not matched), a home-relative path (``~/x``) or a Windows
# drive path (``C:\x``).
_ABSOLUTE = re.compile(r"(?:^|(?<=[\s='\"(\[,]))(?:/|~/)[A-Za-z_.][^\s/:;,'\"()=]*(?:/[^\s/:;,'\"()=]*)*"
                       r"|(?:^|(?<=[\s='\"(\[,]))[A-Za-z]:[\\/][^\s'\"]*")


def portable_path(path: str | os.PathLike, root: str | os.PathLike | None = None) -> str:
    """``path`` as a name that holds no absolute path: relative (POSIX) to ``root`` when inside it,
    else relative to the repository when inside that, else its base name.

    >>> portable_path("/data/pets/images/a.jpg", root="/data/pets")
    'images/a.jpg'
    >>> portable_path("/elsewhere/cache/features.npz")
    'features.npz'
    """
    text = os.fspath(path)
    if re.match(r"[A-Za-z]:[\\/]", text):  # a Windows drive path, seen from anywhere
        return PureWindowsPath(text).name
    p = Path(os.path.abspath(os.path.expanduser(text)))
    for base in ([root] if root is not None else []) + [REPO_ROOT]:
        try:
            return p.relative_to(os.path.abspath(os.path.expanduser(os.fspath(base)))).as_posix() or "."
        except ValueError:
            continue
    return p.name


def portable_text(text: str, root: str | os.PathLike | None = None) -> str:
    """``text`` with every absolute path in it replaced by :func:`portable_path`
    (e.g. ``--data-dir=/home/me/data`` → ``--data-dir=data``)."""
    return _ABSOLUTE.sub(lambda m: portable_path(m.group(0), root), text)


def find_absolute_paths(obj: Any, where: str = "") -> list[tuple[str, str]]:
    """``(key path, text)`` of every string (key or value) in ``obj`` that holds an absolute path,
    or that is a ``hostname`` entry or this machine's host name."""
    host = socket.gethostname()
    found = []
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            here = f"{where}.{k}" if where else str(k)
            if str(k) == "hostname" or (isinstance(k, str) and _ABSOLUTE.search(k)):
                found.append((here, str(k)))
            found += find_absolute_paths(v, here)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            found += find_absolute_paths(v, f"{where}[{i}]")
    elif isinstance(obj, (str, os.PathLike)):
        text = os.fspath(obj)
        if _ABSOLUTE.search(text) or (host and text == host):
            found.append((where or "top level", text))
    return found


def assert_no_absolute_paths(obj: Any, what: str = "results") -> None:
    """Raise ``ValueError`` naming the key path of the first absolute path or host name in ``obj``."""
    found = find_absolute_paths(obj)
    if found:
        where, text = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise ValueError(f"{what} would record an absolute path or host name at {where}: {text!r}{more}; "
                         "record a path relative to a root (lsbench.provenance.portable_path) instead")


def runtime_env() -> dict:
    """The value of each variable of :data:`RUNTIME_ENV` (``None`` when unset), absolute paths replaced."""
    return {k: None if os.environ.get(k) is None else portable_text(os.environ[k]) for k in RUNTIME_ENV}


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
        return {"backend": None, "devices": [], "device_kind": None, "platform": None, "x64": None}
    devices = jax.devices()
    return {
        "backend": jax.default_backend(),
        "devices": [f"{d} ({d.platform})" for d in devices],
        "device_kind": devices[0].device_kind if devices else None,
        "platform": devices[0].platform if devices else None,
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
    """CPU model name (:func:`cpu_model`, in full), logical and usable core counts, 1-min load."""
    load = load_average()
    return {"model": cpu_model(), "logical_cores": os.cpu_count(), "usable_cores": usable_cores(),
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


def file_record(path: str | os.PathLike, root: str | os.PathLike | None = None) -> dict:
    """``{"path", "sha256", "bytes"}`` of a file (``sha256``/``bytes`` ``None`` if it is missing);
    ``path`` is :func:`portable_path` (relative to ``root``, else to the repository, else the base name)."""
    p = Path(path)
    name = portable_path(p, root)
    if not p.is_file():
        return {"path": name, "sha256": None, "bytes": None}
    return {"path": name, "sha256": sha256_file(p), "bytes": p.stat().st_size}


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
            files_root: str | os.PathLike | None = None, git_ignore: Iterable[str] = OUTPUT_PATHS,
            **extra: Any) -> dict:
    """Everything in the module docstring's schema; ``files`` maps a label to a path to hash (recorded
    relative to ``files_root``, see :func:`file_record`); ``git_ignore``: see :func:`git_info`;
    ``extra`` keys are added as they are (they must be JSON-able)."""
    out = {
        "created_utc": utc_now(),
        "git": git_info(root, git_ignore),
        "packages": package_versions(packages),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "argv": [portable_text(a, files_root) for a in sys.argv],
        "jax": jax_info(),
        "runtime": runtime_env(),
        "cpu": cpu_info(),
        "gpu": gpu_info(),
        "files": {label: file_record(p, files_root) for label, p in (files or {}).items()},
    }
    out.update(extra)
    return out
