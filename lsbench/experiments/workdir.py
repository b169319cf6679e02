"""Where fresh runs go and how an invocation guards them: work directory, lock, signals, code hash.

A plain ``reproduce`` trains into a work directory (default ``./lsbench-runs/<experiment>/``,
:func:`default_workdir`) and never into the committed reference in ``paper/results/``; only
``--record`` writes there. Around the training an invocation

* holds :class:`WorkdirLock` (``<workdir>/.lock`` naming the owner's pid), so two invocations never
  write one work directory at once; a lock left by a process that no longer exists is taken over;
* runs under :func:`sigterm_as_interrupt`, so ``kill <pid>`` ends it like Ctrl-C (records
  ``status: "interrupted"``, never a file left saying ``"running"``);
* checks its output and cache directories with :func:`lsbench.provenance.check_writable` first;
* turns a full disk while saving into :class:`DiskFull` (a clear message; the atomic writers leave
  every file recorded before untouched);
* on an interrupt saves what is recorded so far (:func:`save_on_interrupt`) and says how to resume.

:func:`code_sha256` hashes the source that determines a run's numbers; it enters every run key, so
a record made by other code is retrained rather than reused.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import signal
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sized

__all__ = ["CODE_PATHS", "code_files", "code_sha256", "default_workdir", "LockHeld", "WorkdirLock",
           "sigterm_as_interrupt", "save_on_interrupt", "DiskFull", "disk_full_guard", "PACKAGE_ROOT", "cpu_identity", "ISA_FLAGS"]

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # the ``lsbench`` package directory

#: Sources (relative to the ``lsbench`` package) that determine every experiment's numbers; the
#: experiment's own package (``experiments/<name>/``) is added by :func:`code_files`.
CODE_PATHS = ("losses", "train.py", "train_config.py", "metrics.py", "models", "data",
              "experiments/records.py", "experiments/settings.py")


def code_files(experiment: str, root: str | os.PathLike = PACKAGE_ROOT,
               paths: Iterable[str] = CODE_PATHS) -> list[str]:
    """The ``.py`` files behind ``experiment``'s runs: POSIX paths relative to ``root``, sorted."""
    root = Path(root)
    found = set()
    for rel in (*paths, f"experiments/{experiment}"):
        p = root / rel
        if p.is_file():
            found.add(p.relative_to(root).as_posix())
        elif p.is_dir():
            found.update(f.relative_to(root).as_posix() for f in p.rglob("*.py") if "__pycache__" not in f.parts)
    if not found:
        raise ValueError(f"no source files for experiment {experiment!r} under {root}")
    return sorted(found)


def code_sha256(experiment: str, root: str | os.PathLike = PACKAGE_ROOT,
                paths: Iterable[str] = CODE_PATHS) -> str:
    """sha256 over :func:`code_files`: each file's relative path, a NUL, its bytes, a NUL, in order.

    Independent of where the checkout lives; any edit (or an added or removed file) changes it.
    """
    h = hashlib.sha256()
    for rel in code_files(experiment, root, paths):
        h.update(rel.encode() + b"\0" + (Path(root) / rel).read_bytes() + b"\0")
    return h.hexdigest()


#: The instruction-set extensions XLA:CPU may generate code for (``/proc/cpuinfo`` flag names).
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512_vnni",
             "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "asimd", "sve")


def cpu_identity() -> dict | None:
    """CPU vendor, family, model, stepping and the ISA extensions of :data:`ISA_FLAGS` present.

    Cloud machines often report a bare model name (``"AMD EPYC"``) for several generations whose
    vector units differ (AVX2 only, or AVX-512), and XLA:CPU compiles for the one it finds, so the
    model name alone cannot say whether two machines should agree bit for bit. ``None`` without
    ``/proc/cpuinfo``.
    """
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return None
    first = text.split("\n\n", 1)[0]
    fields = {}
    for line in first.splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    return {"vendor": fields.get("vendor_id") or fields.get("CPU implementer"), "family": fields.get("cpu family"),
            "model": fields.get("model") or fields.get("CPU part"), "stepping": fields.get("stepping"),
            "isa": [f for f in ISA_FLAGS if f in flags]}


def default_workdir(name: str) -> Path:
    """``./lsbench-runs/<name>/`` under the current directory."""
    return Path.cwd() / "lsbench-runs" / name


# --------------------------------------------------------------------------- the lock


class LockHeld(RuntimeError):
    """Another live process holds the work directory's lock."""

    def __init__(self, path: Path, pid: int | None):
        self.path, self.pid = path, pid
        super().__init__(f"{path.parent} is in use by another lsbench run (pid {pid}, lock file {path}); "
                         "wait for it, pass --wait to wait, or pick another --workdir")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _lock_owner(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class WorkdirLock:
    """``<workdir>/.lock`` held for the life of a ``with`` block (``O_CREAT | O_EXCL``, owner's pid inside).

    A lock whose pid no longer runs is stale and taken over; a live one raises :class:`LockHeld`,
    or with ``wait=True`` is polled every ``poll`` seconds until released.
    """

    def __init__(self, workdir: str | os.PathLike, wait: bool = False, poll: float = 1.0,
                 log=lambda msg: None):
        self.path = Path(workdir) / ".lock"
        self.wait, self.poll, self.log = wait, poll, log
        self.held = False

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        announced = False
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                pid = _lock_owner(self.path)
                if pid is None or pid == os.getpid() or not _pid_alive(pid):
                    self.log(f"taking over the stale lock {self.path} (pid {pid} is not running)")
                    with contextlib.suppress(FileNotFoundError):
                        self.path.unlink()
                    continue
                if not self.wait:
                    raise LockHeld(self.path, pid) from None
                if not announced:
                    self.log(f"waiting for pid {pid} to release {self.path} ...")
                    announced = True
                time.sleep(self.poll)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n")
            self.held = True
            return

    def release(self) -> None:
        if self.held and _lock_owner(self.path) == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        self.held = False

    def __enter__(self) -> "WorkdirLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


# --------------------------------------------------------------------------- signals and disk


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside the block SIGTERM raises ``KeyboardInterrupt`` (as SIGINT does); the old handler after."""
    def _term(signum, frame):
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, _term)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextlib.contextmanager
def save_on_interrupt(save_partial: Callable[[], object], log: Callable[[str], None], trained: Sized,
                      runs_dir: str | os.PathLike) -> Iterator[None]:
    """On ``KeyboardInterrupt`` inside the block: ``save_partial()``, tell how to resume, re-raise.

    ``save_partial`` writes the results with ``status: "interrupted"``; ``trained`` holds the runs
    recorded in this invocation (each already saved in ``runs_dir``, so a rerun resumes after them).
    """
    try:
        yield
    except KeyboardInterrupt:
        save_partial()
        log(f"\ninterrupted: {len(trained)} run(s) recorded in this invocation (in {runs_dir}); "
            "rerun the same command to resume.")
        raise


class DiskFull(OSError):
    """No space left while saving; what was recorded before is intact."""


@contextlib.contextmanager
def disk_full_guard(where: str | os.PathLike) -> Iterator[None]:
    """Re-raise ``OSError(ENOSPC)`` (or EDQUOT) inside the block as :class:`DiskFull` with a clear message."""
    try:
        yield
    except DiskFull:
        raise
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise DiskFull(exc.errno, f"no space left on the device while saving in {where}: the run in progress "
                                  "was not recorded; every run recorded before is intact. Free space "
                                  "and rerun the same command to resume") from exc
