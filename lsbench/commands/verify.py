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

Certificate schema (``paper/results/proofs.json``, ``"schema": "lsbench.proofs/1"``)::

    {
      "schema": "lsbench.proofs/1",
      "generated": "2025-01-01T12:00:00Z",    # UTC, ISO 8601
      "sympy": "1.14.0", "python": "3.12.3",
      "git": {"commit": "<40 hex>" | null, "dirty": true | false | null},
      "command": "python -m lsbench verify ...",
      "recipes": ["uniform", ...],            # the recipes that were run
      "complete": true,                       # all eight recipes were run
      "instance_ks": [2, 16],                 # the K range of the "instances" fallback
      "totals": {"theorems": int, "proved": int, "failed": int,
                 "symbolic": int, "instances": int, "findings": int, "seconds": float},
      "per_recipe": {"<recipe>": {"theorems": int, "proved": int, "failed": int,
                                  "symbolic": int, "instances": int, "findings": int}},
      "theorems": [
        {"recipe": str, "name": str,
         "statement": str,                    # LaTeX, without $ delimiters
         "assumptions": str,                  # LaTeX
         "method": "symbolic" | "instances" | "none",   # "none" only when failed
         "status": "proved" | "failed",
         "seconds": float, "claims": int,     # claims checked (0 if the derivation failed)
         "finding": bool, "note": str,        # finding: a published-code discrepancy/hazard
         "detail": str}                       # why it failed ("" when proved)
      ]
    }

``method="symbolic"`` means every claim was proved for symbolic K (and all
other symbols); ``"instances"`` means at least one claim was only checked for
every K from 2 to 16.
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

from lsbench.provenance import atomic_write_bytes, git_info

REPO = Path(__file__).resolve().parents[2]
SCHEMA = "lsbench.proofs/1"


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


def _counts(rows) -> dict:
    return {
        "theorems": len(rows),
        "proved": sum(r["status"] == "proved" for r in rows),
        "failed": sum(r["status"] != "proved" for r in rows),
        "symbolic": sum(r["status"] == "proved" and r["method"] == "symbolic" for r in rows),
        "instances": sum(r["status"] == "proved" and r["method"] == "instances" for r in rows),
        "findings": sum(bool(r["finding"]) for r in rows),
    }


def certificate(results, recipes, seconds: float, argv=None) -> dict:
    import sympy

    from proofs.kernel import INSTANCE_KS

    rows = [r.as_dict() for r in results]
    totals = _counts(rows)
    totals["seconds"] = round(seconds, 3)
    all_recipes = list(_proofs().MODULES)
    return {
        "schema": SCHEMA,
        "generated": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "sympy": sympy.__version__,
        "python": platform.python_version(),
        "git": git_state(),
        "command": "python -m lsbench verify" + ("" if not argv else " " + " ".join(shlex.quote(a) for a in argv)),
        "recipes": list(recipes),
        "complete": set(recipes) >= set(all_recipes),
        "instance_ks": [min(INSTANCE_KS), max(INSTANCE_KS)],
        "totals": totals,
        "per_recipe": {name: _counts([r for r in rows if r["recipe"] == name]) for name in recipes},
        "theorems": rows,
    }


def _tex_escape(text: str) -> str:
    return text.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("&", r"\&").replace("%", r"\%")


def latex_table(cert: dict) -> str:
    t = cert["totals"]
    lines = [
        "% Generated by `python -m lsbench verify`; do not edit.",
        f"% {t['proved']}/{t['theorems']} proved ({t['symbolic']} symbolic, {t['instances']} instances), "
        f"SymPy {cert['sympy']}, commit {(cert['git']['commit'] or 'unknown')[:12]}"
        f"{' (dirty)' if cert['git']['dirty'] else ''}.",
        r"\begin{longtable}{@{}lp{0.44\linewidth}llr@{}}",
        r"\toprule",
        r"Theorem & Statement & Method & Status & s \\",
        r"\midrule",
        r"\endhead",
        r"\bottomrule",
        r"\endlastfoot",
    ]
    previous = None
    for r in cert["theorems"]:
        if r["recipe"] != previous:
            if previous is not None:
                lines.append(r"\addlinespace")
            lines.append(r"\multicolumn{5}{@{}l}{\textbf{\texttt{" + _tex_escape(r["recipe"]) + r"}}} \\")
            previous = r["recipe"]
        name = r"\quad\texttt{" + _tex_escape(r["name"]) + "}" + (r"$^\dagger$" if r["finding"] else "")
        lines.append(f"{name} & \\raggedright ${r['statement']}$ & {r['method']} & {r['status']} & "
                     f"{r['seconds']:.2f} \\\\")
    lines += [
        r"\end{longtable}",
        "% \\dagger: a finding about the published code (see paper/results/proofs.json).",
        "",
    ]
    return "\n".join(lines)


def markdown_table(cert: dict) -> str:
    t = cert["totals"]
    out = [
        f"<!-- Generated by `python -m lsbench verify`; do not edit. -->",
        f"**{t['proved']}/{t['theorems']} theorems proved** ({t['symbolic']} for symbolic K, "
        f"{t['instances']} by instances K = {cert['instance_ks'][0]}..{cert['instance_ks'][1]}), "
        f"SymPy {cert['sympy']}, commit `{(cert['git']['commit'] or 'unknown')[:12]}`"
        f"{' (dirty)' if cert['git']['dirty'] else ''}, {cert['generated']}.",
        "",
        "| recipe | theorem | statement | method | status | s |",
        "|---|---|---|---|---|---:|",
    ]
    for r in cert["theorems"]:
        stmt = r["statement"].replace("|", r"\|")
        name = f"`{r['name']}`" + (" †" if r["finding"] else "")
        out.append(f"| `{r['recipe']}` | {name} | ${stmt}$ | {r['method']} | {r['status']} | {r['seconds']:.2f} |")
    findings = [r for r in cert["theorems"] if r["finding"]]
    if findings:
        out += ["", "† Findings:", ""]
        out += [f"- `{r['recipe']}.{r['name']}`: {r['note']}" for r in findings]
    out.append("")
    return "\n".join(out)


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
    theorems = proofs.all_theorems(recipes)
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
    cert = certificate(results, recipes, seconds, argv)
    t = cert["totals"]
    print(f"\n{t['proved']}/{t['theorems']} proved ({t['symbolic']} symbolic, {t['instances']} instances), "
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
