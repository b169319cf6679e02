"""Mutation testing of the code theorems: every planted bug must be refused.

Each mutation is ``(file, exact old snippet, new snippet, theorems)``: the
snippet must occur exactly once in the current source (so a mutation that no
longer applies fails loudly instead of silently passing), and ``theorems``
names the code theorems (``recipe``, ``name``) expected to refuse it. One
subprocess copies ``lsbench/`` and ``proofs/`` once per mutation into a
temporary directory, applies the patch, imports the copy afresh and checks
those theorems for K ∈ {2, 3}; an unmutated copy is checked first as the
control (every selected theorem must be proved on it, so a refusal is the
mutation's doing). The refusal's message must name the recipe, the path and K.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: (id, file, old, new, [(recipe, theorem), ...]) -- the theorems that must refuse the mutation.
MUTATIONS = [
    ("off_target_eps_over_K", "lsbench/losses/recipes/off_target.py",
     "P.times(eps * (k / (k - 1)), stats.mean)", "P.times(eps, stats.mean)",
     [("off_target", "code_fused_float32")]),
    ("bf16_backward_half_label_term", "lsbench/losses/primitives.py",
     "base = base + jnp.where(iota == y[..., None], g_target[..., None], zero)",
     "base = base + jnp.where(iota == y[..., None], g_target[..., None] / 2, zero)",
     [("uniform", "code_fused_bfloat16")]),
    ("f32_backward_label_sign", "lsbench/losses/primitives.py",
     "value = scale * jnp.exp(target) + g_target", "value = scale * jnp.exp(target) - g_target",
     [("uniform", "code_fused_float32")]),
    ("dropped_mass_factor", "lsbench/losses/primitives.py",
     "scale = g_lse * jnp.exp(-lse)", "scale = jnp.exp(-lse)",
     [("speech_transformer", "code_fused_float32")]),
    ("ignored_row_counted", "lsbench/losses/primitives.py",
     "return jnp.sum(apply_mask(per_row, mask)) / jnp.maximum(count, 1)",
     "return jnp.sum(apply_mask(per_row, mask)) / per_row.size",
     [("uniform", "code_fused_float32")]),
    ("where_dropped_beside_ignore_index", "lsbench/losses/primitives.py",
     "mask = where if mask is None else (mask & where)", "mask = where if mask is None else mask",
     [("off_target", "code_fused_float32")]),
    ("weighted_mean_counts_masked_weights", "lsbench/losses/recipes/uniform.py",
     "P.weighted_mean(rows, P.apply_mask(norm, mask))", "P.weighted_mean(rows, norm)",
     [("uniform", "code_weight_fused_float32")]),
    ("torch_weight_gradient_sign", "lsbench/losses/primitives.py",
     "gw = jnp.sum(d.reshape(-1, k), axis=0)", "gw = -jnp.sum(d.reshape(-1, k), axis=0)",
     [("uniform", "code_torch_weight_fused_float32")]),
    ("fastreid_counts_zero_rows", "lsbench/losses/recipes/fastreid.py",
     "jnp.sum(rows != 0)", "jnp.sum(rows == rows)",
     [("fastreid", "code_fused_float32")]),
    ("fastreid_adaptive_without_no_grad", "lsbench/losses/recipes/fastreid.py",
     "p_y = jax.lax.stop_gradient(jnp.exp(stats.target - stats.lse))", "p_y = jnp.exp(stats.target - stats.lse)",
     [("fastreid", "code_adaptive_fused_float32")]),
    ("fastreid_adaptive_flag_ignored", "lsbench/losses/recipes/fastreid.py",
     "jnp.asarray(adaptive) | (eps < 0)", "(eps < 0)",
     [("fastreid", "code_adaptive_flag_fused_float32")]),
    ("tf_onehot_label_gradient_drops_mass", "lsbench/losses/recipes/tf_onehot.py",
     "gy = g_ce[..., None] * (lse[..., None] - d)", "gy = g_ce[..., None] * (-d)",
     [("tf_onehot", "code_fused_float32")]),
    ("self_correction_weights_carry_gradient", "lsbench/losses/self_correction.py",
     "w = jax.lax.stop_gradient(_weights_from_logits(logits, safe, alpha, clip, rows.dtype))",
     "w = _weights_from_logits(logits, safe, alpha, clip, rows.dtype)",
     [("self_correction", "code_fused_float32")]),
    ("self_correction_counts_ignored_rows", "lsbench/losses/self_correction.py",
     "mask = P.row_mask(labels, ignore_index=ignore_index, where=where)", "mask = P.row_mask(labels, where=where)",
     [("self_correction", "code_fused_float32")]),
    ("chunked_no_online_rescale", "lsbench/losses/blockwise.py",
     "sum_exp = sum_exp * scale + jnp.sum(", "sum_exp = sum_exp + jnp.sum(",
     [("uniform", "code_chunked_float32")]),
    ("chunked_ragged_block_counted_twice", "lsbench/losses/blockwise.py",
     "z_max, z_in = jnp.where(new, z, -jnp.inf), new", "z_max, z_in = jnp.where(new, z, -jnp.inf), None",
     [("off_target", "code_chunked_float32")]),
    ("vocab_mean_over_the_padded_K", "lsbench/parallel/vocab.py",
     "total, mean = P.finish_sums(acc, k_valid)", "total, mean = P.finish_sums(acc, k_total)",
     [("uniform", "code_vocab_float32")]),
    ("linear_hidden_gradient_sign", "lsbench/losses/linear.py",
     "dh = dh + lax.dot_general(dz, wc.astype(dt)", "dh = dh - lax.dot_general(dz, wc.astype(dt)",
     [("uniform", "code_linear_float32")]),
    ("distillation_teacher_gradient_sign", "lsbench/losses/recipes/distillation.py",
     "gt = (g * temp)[..., None] * q * b", "gt = -(g * temp)[..., None] * q * b",
     [("distillation", "code_fused_float32")]),
    ("flax_kl_without_the_1e-20_guard", "lsbench/losses/recipes/flax_kl.py",
     "eps * jnp.log(eps / (num_classes - 1) + GUARD)", "eps * jnp.log(eps / (num_classes - 1))",
     [("flax_kl", "code_fused_float32")]),
    ("opennmt_smooths_onto_pad", "lsbench/losses/recipes/opennmt.py",
     ".at[padding_idx].set(0)", ".at[padding_idx].set(1)",
     [("opennmt", "code_fused_float32")]),
    ("fairseq_with_the_old_eps_over_K", "lsbench/losses/recipes/fairseq.py",
     "return off_target.rows_from_stats(stats, num_classes, epsilon=epsilon)",
     "return off_target.rows_from_stats(stats, num_classes, epsilon=epsilon * (num_classes - 1) / num_classes)",
     [("fairseq", "code_fused_float32")]),
    # issue 17: the sigmoid recipes, Poly-1 and label relaxation
    ("timm_binary_off_over_k_minus_one", "lsbench/losses/recipes/timm_binary.py",
     "off = epsilon / num_classes", "off = epsilon / (num_classes - 1)",
     [("timm_binary", "code_fused_float32")]),
    ("softplus_shift_not_cancelled", "lsbench/losses/binary.py",
     "return m + jnp.log1p(jnp.expm1(-m) + jnp.exp(x - m))", "return m + jnp.log1p(jnp.exp(x - m))",
     [("mmpretrain_multilabel", "code_fused_float32")]),
    ("keras_binary_on_value_not_squeezed", "lsbench/losses/recipes/keras_binary.py",
     "return 1 - epsilon / 2, epsilon / 2", "return 1, epsilon / 2",
     [("keras_binary", "code_fused_float32")]),
    ("poly_pt_without_smoothing", "lsbench/losses/recipes/poly.py",
     "- (1 - eps) * p_y)", "- p_y)",
     [("poly", "code_fused_float32")]),
    ("label_relaxation_rest_counts_the_label", "lsbench/losses/recipes/label_relaxation.py",
     "return m, target, total - jnp.exp(target), jnp.log(total)",
     "return m, target, total, jnp.log(total)",
     [("label_relaxation", "code_fused_float32")]),
]

WORKER = textwrap.dedent(r'''
    import importlib, json, shutil, sys
    from pathlib import Path

    repo, tmp, spec = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])

    def run(tree, targets):
        for name in [m for m in sys.modules if m.split(".")[0] in ("lsbench", "proofs")]:
            del sys.modules[name]
        sys.path.insert(0, str(tree))
        try:
            import proofs
            from proofs.kernel import check_theorem
            assert Path(proofs.__file__).resolve().is_relative_to(tree.resolve()), proofs.__file__
            out = []
            for recipe, name in targets:
                ths = proofs.code_theorems([recipe], ks=(2, 3), names=[name])
                assert len(ths) == 1, (recipe, name, [t.name for t in ths])
                r = check_theorem(ths[0], timeout=120)
                out.append({"recipe": recipe, "name": name, "status": r.status, "detail": r.detail})
            return out
        finally:
            sys.path.remove(str(tree))

    def copy(dest):
        for d in ("lsbench", "proofs"):
            shutil.copytree(repo / d, dest / d, ignore=shutil.ignore_patterns("__pycache__"))
        return dest

    results = {}
    control = sorted({tuple(t) for m in spec for t in m["theorems"]})
    results["control"] = run(copy(tmp / "control"), control)
    for i, m in enumerate(spec):
        tree = copy(tmp / f"m{i}")
        path = tree / m["file"]
        text = path.read_text()
        n = text.count(m["old"])
        if n != 1:
            results[m["id"]] = {"applied": False, "count": n}
            continue
        path.write_text(text.replace(m["old"], m["new"]))
        results[m["id"]] = {"applied": True, "theorems": run(tree, [tuple(t) for t in m["theorems"]])}
    print("RESULT " + json.dumps(results))
''')


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mutations")
    spec = [{"id": i, "file": f, "old": o, "new": n, "theorems": t} for i, f, o, n, t in MUTATIONS]
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ""}
    proc = subprocess.run([sys.executable, "-c", WORKER, str(REPO), str(tmp), json.dumps(spec)],
                          capture_output=True, text=True, timeout=900, env=env, cwd=tmp)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"mutation worker failed (rc={proc.returncode}):\n{proc.stderr[-4000:]}"
    return json.loads(lines[-1][len("RESULT "):])


def test_there_are_at_least_seventeen_mutations():
    assert len(MUTATIONS) >= 17
    assert len({m[0] for m in MUTATIONS}) == len(MUTATIONS)


def test_control_copy_is_proved(outcome):
    bad = [r for r in outcome["control"] if r["status"] != "proved"]
    assert not bad, bad


@pytest.mark.parametrize("mid", [m[0] for m in MUTATIONS])
def test_code_theorems_refuse_the_mutation(outcome, mid):
    res = outcome[mid]
    assert res["applied"], f"mutation {mid} is stale: its snippet occurs {res['count']} times (must be once)"
    for r in res["theorems"]:
        assert r["status"] == "failed", f"{mid}: {r['recipe']}.{r['name']} still proved"
        path = r["name"].split("_")[1] if r["name"].count("_") >= 2 else r["name"]
        d = r["detail"]
        assert r["recipe"] in d and "K=" in d, f"{mid}: the refusal does not name the recipe and K: {d[:300]}"
        assert path in d or r["name"] in d, f"{mid}: the refusal does not name the path: {d[:300]}"
