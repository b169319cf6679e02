r"""The proof certificate ``paper/results/proofs.json``: its contents, its source digests, its tables.

Shared by ``python -m lsbench verify`` (which writes it) and ``lsbench.report``
(which renders it), so that the report never imports the command.

Schema ``lsbench.proofs/1``::

    {
      "schema": "lsbench.proofs/1",
      "generated": "2025-01-01T12:00:00Z",    # UTC, ISO 8601
      "sympy": "1.14.0", "python": "3.12.3",
      "git": {"commit": "<40 hex>" | null, "dirty": true | false | null},
      "command": "python -m lsbench verify ...",
      "recipes": ["uniform", ...],            # the recipes that were run
      "complete": true,                       # all eight recipes were run
      "instance_ks": [2, 16],                 # the K range of the "instances" fallback
      "code_ks": [2, 5],                      # the K of the code theorems (absent: none run)
      "code_primitives": ["add", ...],         # the jaxpr primitives their traces reached
      "sources": {"lsbench/losses/recipes/uniform.py": "<sha256>", ...},   # what was verified
      "sources_sha256": "<sha256 of the sorted path:digest lines>",
      "totals": {"theorems": int, "proved": int, "failed": int, "symbolic": int,
                 "instances": int, "code": int, "findings": int, "seconds": float},
      "per_recipe": {"<recipe>": {... the same counts ...}},
      "theorems": [
        {"recipe": str, "name": str,
         "statement": str,                    # LaTeX, without $ delimiters
         "assumptions": str,                  # LaTeX
         "method": "symbolic" | "instances" | "code" | "none",   # "none" only when failed
         "status": "proved" | "failed",
         "seconds": float, "claims": int,     # claims checked (0 if the derivation failed)
         "finding": bool, "note": str,        # finding: a published-code discrepancy/hazard
         "detail": str}                       # why it failed ("" when proved)
      ]
    }

``method="symbolic"``: every claim proved for symbolic K (and all other
symbols); ``"instances"``: at least one claim only checked for every K from 2
to 16; ``"code"``: a code theorem (:mod:`proofs.code`), the traced program
checked against the spec for every K in ``code_ks``. Certificates recorded
before the code theorems have no ``code``/``sources`` fields; their tables
render exactly as before.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

SCHEMA = "lsbench.proofs/1"
REPO = Path(__file__).resolve().parents[1]
SOURCE_DIRS = ("lsbench/losses", "proofs")  #: the sources a certificate vouches for


def source_digests(root: Path = REPO) -> dict[str, str]:
    """``{relative path: sha256}`` of every ``.py`` file under :data:`SOURCE_DIRS`."""
    root = Path(root)
    out = {}
    for d in SOURCE_DIRS:
        for path in sorted((root / d).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            out[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return dict(sorted(out.items()))


def combined_digest(digests: dict[str, str]) -> str:
    text = "".join(f"{p}:{d}\n" for p, d in sorted(digests.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def stale_sources(cert: dict, root: Path = REPO) -> list[str] | None:
    """Paths whose digest differs from the certificate's (added/removed too); None if not recorded."""
    recorded = cert.get("sources")
    if not isinstance(recorded, dict):
        return None
    now = source_digests(root)
    return sorted(p for p in set(recorded) | set(now) if recorded.get(p) != now.get(p))


def counts(rows) -> dict:
    """Counts of theorem rows (dicts); ``code`` only when a code theorem is present."""
    out = {
        "theorems": len(rows),
        "proved": sum(r["status"] == "proved" for r in rows),
        "failed": sum(r["status"] != "proved" for r in rows),
        "symbolic": sum(r["status"] == "proved" and r["method"] == "symbolic" for r in rows),
        "instances": sum(r["status"] == "proved" and r["method"] == "instances" for r in rows),
        "findings": sum(bool(r["finding"]) for r in rows),
    }
    code = sum(r["status"] == "proved" and r["method"] == "code" for r in rows)
    if code or any(r["method"] == "code" for r in rows):
        out["code"] = code
    return out


def _tex_escape(text: str) -> str:
    return text.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("&", r"\&").replace("%", r"\%")


def _code_summary(cert: dict, md: bool) -> str:
    t = cert["totals"]
    if "code" not in t:
        return ""
    ks = cert.get("code_ks") or ["?", "?"]
    return (f", {t['code']} code theorems (the traced JAX program = the spec, exactly, for K = {ks[0]}..{ks[1]})"
            if md else f", {t['code']} code (K = {ks[0]}..{ks[1]})")


def _commit(cert: dict, quote: str = "") -> str:
    git = cert["git"]
    return f"{quote}{(git['commit'] or 'unknown')[:12]}{quote}" + (" (dirty)" if git["dirty"] else "")


def latex_table(cert: dict) -> str:
    t = cert["totals"]
    lines = [
        "% Generated by `python -m lsbench verify`; do not edit.",
        f"% {t['proved']}/{t['theorems']} proved ({t['symbolic']} symbolic, {t['instances']} instances"
        f"{_code_summary(cert, False)}), "
        f"SymPy {cert['sympy']}, commit {_commit(cert)}.",
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
        "<!-- Generated by `python -m lsbench verify`; do not edit. -->",
        f"**{t['proved']}/{t['theorems']} theorems proved** ({t['symbolic']} for symbolic K, "
        f"{t['instances']} by instances K = {cert['instance_ks'][0]}..{cert['instance_ks'][1]}"
        f"{_code_summary(cert, True)}), "
        f"SymPy {cert['sympy']}, commit {_commit(cert, '`')}, {cert['generated']}.",
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
