"""Seeded-fit fingerprints: check that a refactor leaves training bit-identical.

    python bench/seeded_weights.py save BEFORE.npz     # on the old code
    python bench/seeded_weights.py save AFTER.npz      # on the new code
    python bench/seeded_weights.py compare BEFORE.npz AFTER.npz

`save` trains Bernoulli and unit-Gaussian VAEs of three shapes (2 epochs on
500 digits, seed 3) and stores their final parameter buffers, ELBOs and IWAE
estimates; `compare` lists every entry that is not bit-identical. Run each
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
