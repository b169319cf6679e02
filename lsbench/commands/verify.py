"""Run every SymPy theorem under ``proofs/`` and write the certificate.

``python -m lsbench verify [--recipe NAME ...] [--out-dir DIR] [--timeout S]``
checks the theorems of the selected recipes (all by default), prints a table
(recipe, theorem, method, status, seconds), and writes, atomically,

* ``DIR/results/proofs.json``: the certificate (schema below);
* ``DIR/tables/proofs.tex``: a booktabs ``longtable`` (``\\input`` it; needs the
  ``booktabs``, ``longtable`` and ``amsmath`` packages);
* ``DIR/tables/proofs.md``: the same table in Markdown.

``DIR`` defaults to the repository's ``paper/``. The exit status is 0 when
every theorem is proved and 1 otherwise.

The certificate's schema is documented in :mod:`proofs.certificate` (which also
renders its tables, for this command and for ``python -m lsbench paper``). It
records the sha256 of every ``lsbench/losses`` and ``proofs`` source it
verified, so the paper marks the verification table stale when they change.

Besides the symbolic theorems, every recipe gets code theorems
(:mod:`proofs.code`): the traced JAX program equals the spec exactly for
K = 2..5 (``--no-code`` skips them).
"""

from __future__ import annotations

import datetime as _dt
import importlib
import importlib.util
import json
import platform
import shlex
import sys
import time
from pathlib import Path

from lsbench.provenance import REPO_ROOT, atomic_write_bytes, git_info
from proofs.certificate import SCHEMA, combined_digest, counts, latex_table, markdown_table, source_digests

__all__ = ["SCHEMA", "add_arguments", "certificate", "latex_table", "markdown_table", "run"]

REPO = REPO_ROOT


def _proofs():
    """The ``proofs`` package (robust to an editable install made before it had an ``__init__``)."""
    pkg = importlib.import_module("proofs")
    if getattr(pkg, "__file__", None) is None or not hasattr(pkg, "MODULES"):
        init = REPO / "proofs" / "__init__.py"
        spec = importlib.util.spec_from_file_location("proofs", init,
                                                      submodule_search_locations=[str(init.parent)])
        pkg = importlib.util.module_from_spec(spec)
        sys.modules["proofs"] = pkg
        spec.loader.exec_module(pkg)
    return pkg


def add_arguments(parser):
    parser.add_argument("--recipe", action="append", metavar="NAME", default=None,
                        help="check only this recipe's theorems (repeatable; default: all)")
    parser.add_argument("--out-dir", type=Path, default=REPO / "paper",
                        help="where results/proofs.json and tables/proofs.{tex,md} go (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds allowed per theorem before it counts as failed (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--no-code", action="store_true",
                        help="skip the code theorems (the traced JAX programs against the spec)")


# --------------------------------------------------------------------------
# provenance and writing
# --------------------------------------------------------------------------


def git_state(repo: Path = REPO) -> dict:
    """``{"commit": sha or None, "dirty": bool or None}`` of the checkout (read-only git calls)."""
    info = git_info(repo)
    return {"commit": info["commit"], "dirty": info["dirty"]}


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) atomically: a temporary file beside ``path``, then a rename."""
    atomic_write_bytes(path, text.encode("utf-8"))


def certificate(results, recipes, seconds: float, argv=None, *, code: bool = True) -> dict:
    import sympy

    from proofs.code import KS as CODE_KS
    from proofs.kernel import INSTANCE_KS

    rows = [r.as_dict() for r in results]
    totals = counts(rows)
    totals["seconds"] = round(seconds, 3)
    all_recipes = list(_proofs().MODULES)
    digests = source_digests(REPO)
    cert = {
        "schema": SCHEMA,
        "generated": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "sympy": sympy.__version__,
        "python": platform.python_version(),
        "git": git_state(),
        "command": "python -m lsbench verify" + ("" if not argv else " " + " ".join(shlex.quote(a) for a in argv)),
        "recipes": list(recipes),
        "complete": set(recipes) >= set(all_recipes) and code,
        "instance_ks": [min(INSTANCE_KS), max(INSTANCE_KS)],
    }
    if code:
        from proofs.code import REACHED

        cert["code_ks"] = [min(CODE_KS), max(CODE_KS)]
        cert["code_primitives"] = sorted(REACHED)  # what the traces reached (proofs/jaxpr.py covers more)
    cert.update({
        "sources": digests,
        "sources_sha256": combined_digest(digests),
        "totals": totals,
        "per_recipe": {name: counts([r for r in rows if r["recipe"] == name]) for name in recipes},
        "theorems": rows,
    })
    return cert


def print_table(results, stream=sys.stdout) -> None:
    head = ("recipe", "theorem", "method", "status", "seconds")
    rows = [(r.recipe, r.name + (" *" if r.finding else ""), r.method, r.status, f"{r.seconds:.2f}")
            for r in results]
    widths = [max(len(x[i]) for x in [head, *rows]) for i in range(len(head))]
    fmt = lambda row: "  ".join(c.rjust(w) if i == 4 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
    print(fmt(head), file=stream)
    print("  ".join("-" * w for w in widths), file=stream)
    for row in rows:
        print(fmt(row).rstrip(), file=stream)


# --------------------------------------------------------------------------
# the command
# --------------------------------------------------------------------------


def run(args) -> int:
    from tqdm import tqdm

    proofs = _proofs()
    from proofs.kernel import check_theorem

    recipes = list(dict.fromkeys(args.recipe or proofs.MODULES))
    unknown = [r for r in recipes if r not in proofs.MODULES]
    if unknown:
        print(f"lsbench verify: unknown recipe(s) {', '.join(unknown)}; known: {', '.join(proofs.MODULES)}",
              file=sys.stderr)
        return 2

    t0 = time.perf_counter()
    code = not getattr(args, "no_code", False)
    theorems = proofs.all_theorems(recipes) + (proofs.code_theorems(recipes) if code else [])
    theorems.sort(key=lambda th: recipes.index(th.recipe))  # each recipe's code theorems after its maths
    results = []
    with tqdm(total=len(theorems), desc="verify", unit="thm", file=sys.stderr,
              disable=getattr(args, "quiet", False), leave=False) as bar:
        for th in theorems:
            bar.set_postfix_str(f"{th.recipe}.{th.name}", refresh=False)
            res = check_theorem(th, timeout=args.timeout)
            results.append(res)
            bar.update(1)
    seconds = time.perf_counter() - t0

    print_table(results)
    argv = []
    for r in args.recipe or []:
        argv += ["--recipe", r]
    if not code:
        argv.append("--no-code")
    cert = certificate(results, recipes, seconds, argv, code=code)
    t = cert["totals"]
    print(f"\n{t['proved']}/{t['theorems']} proved ({t['symbolic']} symbolic, {t['instances']} instances, "
          f"{t.get('code', 0)} code), "
          f"{t['failed']} failed, {t['findings']} findings (*), {seconds:.1f} s")
    for r in results:
        if r.status != "proved":
            print(f"FAILED {r.recipe}.{r.name}: {r.detail}", file=sys.stderr)

    out = Path(args.out_dir)
    write_atomic(out / "results" / "proofs.json", json.dumps(cert, indent=2, ensure_ascii=False) + "\n")
    write_atomic(out / "tables" / "proofs.tex", latex_table(cert))
    write_atomic(out / "tables" / "proofs.md", markdown_table(cert))
    print(f"wrote {out / 'results' / 'proofs.json'}, {out / 'tables' / 'proofs.tex'}, {out / 'tables' / 'proofs.md'}")
    return 0 if t["failed"] == 0 else 1
