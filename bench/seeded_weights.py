"""Seeded-fit fingerprints: check that a refactor leaves training bit-identical.

    python bench/seeded_weights.py save BEFORE.npz     # on the old code
    python bench/seeded_weights.py save AFTER.npz      # on the new code
    python bench/seeded_weights.py compare BEFORE.npz AFTER.npz

`save` trains Bernoulli and unit-Gaussian VAEs of three shapes (2 epochs on
500 digits, seed 3) and stores their final parameter buffers, ELBOs and IWAE
estimates (and, where the model family exists, of Poisson, negative binomial,
learned-variance and conditional models); `compare` lists every entry of the
first file that is not bit-identical in the second. Run each
kernel set separately (VAEFAST_ISA=generic|avx2|avx512): results are only
comparable within one set.
"""

import sys

import numpy as np


def save(path):
    import vaefast
    from vaefast.datasets import load_digits

    X = load_digits()
    res = {}
    for lik in ("bernoulli", "gaussian"):
        for hid, dec in (((32,), None), ((24, 16), (12,)), ((), ())):
            m = vaefast.VAE(64, hidden=hid, latent_dim=5, likelihood=lik, seed=3,
                            decoder_hidden=dec)
            m.fit(X[:500], epochs=2, batch_size=64, progress=False)
            key = f"{lik}-{hid}-{dec}"
            res[key] = m._core.get_buffer(0)
            res[key + "-elbo"] = m.elbo(X[:50], seed=1)
            res[key + "-ll"] = m.log_likelihood(X[:20], n_samples=10, seed=1)
    if hasattr(vaefast.VAE(2), "n_conditions"):  # the model family (format 2) on
        counts = np.round(X * 16)  # digits' pixel values are counts 0..16
        c = np.eye(3, dtype=np.float32)[np.arange(500) % 3]
        for key, kw, data, fit_kw in (
                ("poisson", dict(likelihood="poisson"), counts, {}),
                ("negbin", dict(likelihood="negative_binomial"), counts, {}),
                ("gauss-feature", dict(likelihood="gaussian", variance="feature"), X, {}),
                ("gauss-sample", dict(likelihood="gaussian", variance="sample"), X, {}),
                ("conditional", dict(n_conditions=3), X, dict(c=c))):
            m = vaefast.VAE(64, hidden=(24,), latent_dim=5, seed=3, **kw)
            m.fit(data[:500], epochs=2, batch_size=64, progress=False, **fit_kw)
            res[key] = m._core.get_buffer(0)
            res[key + "-elbo"] = m.elbo(data[:50], seed=1, **{k: v[:50] for k, v in fit_kw.items()})
    np.savez(path, **res)
    print(f"{vaefast.isa()}: {len(res)} entries -> {path}")


def compare(a_path, b_path):
    a, b = np.load(a_path), np.load(b_path)
    bad = [k for k in a.files if k not in b.files or not np.array_equal(a[k], b[k])]
    print("bit-identical" if not bad else f"DIFFER: {bad}", f"({len(a.files)} entries)")
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "save":
        save(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        sys.exit(compare(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(__doc__)
