"""Issue 12 reproducers: one line per reproducer; runs on the old (766783f) and the new lsbench.

Usage: python tools/issue12_reproducers.py   (or PYTHONPATH=<old checkout> for the old code)
"""
import inspect
import jax, jax.numpy as jnp, numpy as np
from lsbench.losses import RECIPES, self_correction_loss, chunked
from lsbench.losses.linear import linear_smoothed_cross_entropy as lsce
np.set_printoptions(precision=4, linewidth=150)
new = "recipe" in inspect.signature(chunked.loss).parameters and list(inspect.signature(chunked.loss).parameters)[0] != "recipe"
def ch(z, y, **kw):
    return chunked.per_example(z, y, recipe="uniform", **kw) if new else chunked.per_example("uniform", z, y, **kw)
def show(tag, f):
    try:
        print(tag, "->", f())
    except Exception as e:  # noqa: BLE001
        print(tag, "-> raises", type(e).__name__ + ":", str(e).splitlines()[0][:150])
rng = np.random.default_rng(0)
z = jnp.asarray(rng.normal(size=(4, 5)), jnp.float32)
U = RECIPES["uniform"]
# 1
show("1 jit uniform labels [0,1,-3,2] rows", lambda: np.asarray(jax.jit(lambda a, b: U.per_example(a, b))(z, jnp.array([0, 1, -3, 2]))))
show("1   (label 2 of row 2 for comparison)", lambda: float(U.per_example(z, jnp.array([0, 1, 2, 2]))[2]))
show("1 jit grad row of label 5 (>=K) finite?", lambda: bool(np.isfinite(np.asarray(jax.jit(jax.grad(lambda a, b: U.loss(a, b)))(z, jnp.array([0, 1, 5, 2]))[2])).all()))
show("1 jit grad row of label -3 finite?", lambda: bool(np.isfinite(np.asarray(jax.jit(jax.grad(lambda a, b: U.loss(a, b)))(z, jnp.array([0, 1, -3, 2]))[2])).all()))
show("1 jit chunked labels [0,1,-3,2] rows", lambda: np.asarray(jax.jit(lambda a, b: ch(a, b, chunk_size=2))(z, jnp.array([0, 1, -3, 2]))))
show("1 jit self_correction_weights label -3", lambda: np.asarray(jax.jit(lambda p, b: __import__("lsbench.losses", fromlist=["x"]).self_correction_weights(p, b))(jax.nn.softmax(z), jnp.array([0, 1, -3, 2]))))
# 2
y = jnp.array([0, 1, -100, 2])
show("2 self_correction_loss ignore_index=-100", lambda: float(self_correction_loss(z, y, ignore_index=-100)))
y1 = jnp.array([0, 1, -1, 2])
show("2 self_correction_loss speech_transformer / value on kept rows", lambda: (float(self_correction_loss(z, y1, recipe="speech_transformer")), float(self_correction_loss(z[jnp.array([0, 1, 3])], y1[jnp.array([0, 1, 3])], recipe="speech_transformer"))))
# 3
zn = z.at[1].set(jnp.nan).at[2, 0].set(jnp.inf)
keep = jnp.array([True, False, False, True])
show("3 grad rows of masked NaN/inf rows (uniform where=)", lambda: np.asarray(jax.grad(lambda a: U.loss(a, jnp.array([0, 1, 2, 3]), where=keep))(zn))[1:3])
# 4
z4 = jnp.asarray([[3e38, -3e38, 0, 1, 2], [1.0, 2.0, 3.0, 4.0, 5.0]], jnp.float32)
y4 = jnp.array([0, 4])
with jax.enable_x64(True):
    ref4 = np.asarray(U.per_example(jnp.asarray(np.asarray(z4, np.float64)), y4))
show("4 uniform rows at ±3e38 (float64 value %s)" % ref4, lambda: np.asarray(U.per_example(z4, y4)))
# 5
s5 = jnp.asarray(rng.normal(size=(8, 10)) * 3, jnp.float32); t5 = jnp.asarray(rng.normal(size=(8, 10)) * 3, jnp.float32)
D = RECIPES["distillation"]
def rel5(T):
    with jax.enable_x64(True):
        ref = float(D.loss(jnp.asarray(np.asarray(s5, np.float64)), jnp.asarray(np.asarray(t5, np.float64)), temperature=T))
    got = float(D.loss(s5, t5, temperature=T))
    return f"{got:.6g} (float64 {ref:.6g}, rel err {abs(got - ref) / abs(ref):.2g})"
for T in (100.0, 1000.0, 1e4):
    show(f"5 distillation T={T:g}", lambda: rel5(T))
show("5 distillation T=1e-30", lambda: float(D.loss(s5, t5, temperature=1e-30)))
# 6
show("6 epsilon='a'", lambda: U.loss(z, jnp.array([0, 1, 2, 3]), epsilon="a"))
show("6 epsilon=None", lambda: U.loss(z, jnp.array([0, 1, 2, 3]), epsilon=None))
show("6 where shape (3,)", lambda: U.loss(z, jnp.array([0, 1, 2, 3]), where=jnp.ones(3, bool)))
h6 = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32); w6 = jnp.asarray(rng.normal(size=(3, 5)), jnp.float32)
show("6 linear traced ignore_index", lambda: float(jax.jit(lambda ii: lsce(h6, w6, jnp.array([0, 1, 2, 3]), ignore_index=ii))(-1)))
# 7
show("7 jit chunked label -1 rows", lambda: np.asarray(jax.jit(lambda a, b: ch(a, b, chunk_size=2))(z, jnp.array([0, -1, 2, 3]))))
show("7 jit linear label -1 rows", lambda: np.asarray(jax.jit(lambda b: lsce(h6, w6, b, reduction="none"))(jnp.array([0, -1, 2, 3]))))
# 8
z8 = jnp.array([[1e8, -jnp.inf, 1e8]])
show("8 uniform eps=0 [[1e8,-inf,1e8]] (log 2 = 0.6931)", lambda: np.asarray(U.per_example(z8, jnp.array([0]), epsilon=0.0)))
show("8 uniform eps=0.1 loss / grad", lambda: (np.asarray(U.per_example(z8, jnp.array([0]), epsilon=0.1)), np.asarray(jax.grad(lambda a: U.loss(a, jnp.array([0]), epsilon=0.1))(z8))))
# 9
z9 = jnp.arange(24, dtype=jnp.float32).reshape(6, 4) / 8; y9 = jnp.ones(6, jnp.int32)
g = lambda a, e: jax.grad(lambda x: U.per_example(x, y9, epsilon=e).sum())(a)
show("9 optax case: max |grad(z+1e6) - grad(z)| (optax tol 1e-7)", lambda: float(jnp.max(jnp.abs(g(z9 + 1e6, 0.0) - g(z9, 0.0)))))
show("9 eps=0.1: relative loss change at +1e6", lambda: float(abs(U.loss(z9 + 1e6, y9) - U.loss(z9, y9)) / U.loss(z9, y9)))
z64 = np.random.default_rng(1).normal(size=(64, 1000)).astype(np.float32); y64 = np.random.default_rng(2).integers(0, 1000, 64)
def gerr(off):
    zz = (z64 + np.float32(off)).astype(np.float32)
    got = np.asarray(jax.grad(lambda a: U.loss(a, jnp.asarray(y64)))(jnp.asarray(zz)), np.float64)
    with jax.enable_x64(True):
        ref = np.asarray(jax.grad(lambda a: U.loss(a, jnp.asarray(y64)))(jnp.asarray(zz.astype(np.float64))))
    return np.linalg.norm(got - ref) / np.linalg.norm(ref)
show("9 grad rel error 64x1000 vs float64 at offsets 0,1e2,1e3,1e4,1e5", lambda: " ".join(f"{gerr(o):.2g}" for o in (0, 1e2, 1e3, 1e4, 1e5)))
