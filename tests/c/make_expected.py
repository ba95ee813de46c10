"""Write tests/c/expected.h: the values tests/c/test_capi.c checks, from the NumPy twin.

    python tests/c/make_expected.py > tests/c/expected.h

Everything is computed in float64 by vaefast.reference (the model's NumPy
twin, which never calls the C core: the noise eps(seed, step, row, col) is its
own Philox twin), from inputs that are exact in float32 (multiples of 1/2048,
small integers), so the only difference from the C program is the C core's
float32 arithmetic. The inputs are made by the same integer hash as in
test_capi.c (`hashed`).
"""

import numpy as np

from vaefast import reference as ref
from vaefast._spec import densities

# --- the problem, as test_capi.c sets it up (keep the two in step)
D, H, Z, B, N_ROWS = 12, 16, 4, 8, 24
SEED, KL_WEIGHT, BETA = 7, 1.0, 1.0
SGD = dict(lr=0.05, momentum=0.9, weight_decay=0.01)
ADAM = dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-3, weight_decay=0.0)
ORDER = [(5 * i + 3) % N_ROWS for i in range(N_ROWS)]  # a permutation (gcd(5, 24) = 1)
C_COND = 2                                               # the Poisson model's conditions


def hashed(i, salt):
    """The integer hash of test_capi.c: (i·2654435761 + salt·40503) mod 2³², >> 8."""
    return (((i * 2654435761) + salt * 40503) & 0xFFFFFFFF) >> 8


def params_init(n, salt=1):
    """Parameter i = (hash mod 513 − 256) / 2048: exact in float32, |p| <= 1/8."""
    return np.array([(hashed(i, salt) % 513 - 256) / 2048.0 for i in range(n)])


def layers(widths):
    """(in, out, w offset, b offset) per layer, in buffer order."""
    out, off = [], 0
    for n_in, n_out in widths:
        out.append((n_in, n_out, off, off + n_in * n_out))
        off += n_in * n_out + n_out
    return out, off


def to_params(flat, lay):
    pairs = [(flat[w:w + i * o].reshape(i, o), flat[b:b + o]) for i, o, w, b in lay]
    return {"encoder": pairs[:1], "head": pairs[1], "decoder": pairs[2:3], "output": pairs[3]}


def to_flat(params):
    return np.concatenate([a.ravel() for a in ref.flatten(params)])


def bernoulli_data():
    return np.array([[hashed(i * D + j, 2) >> 7 & 1 for j in range(D)]
                     for i in range(N_ROWS)], dtype=np.float64)


def eps(step, rows):
    return ref.reparam_eps(SEED, step, 0, rows, Z)


def bernoulli_model():
    lay, n = layers([(D, H), (H, 2 * Z), (Z, H), (H, D)])
    X = bernoulli_data()
    p0 = to_params(params_init(n), lay)
    out = {"N_PARAMS_A": n}

    # loss_and_grad on rows 0..B-1, eps of (SEED, step 0)
    cache = ref.forward(p0, X[:B], eps(0, B))
    _, recon, kl = ref.per_sample_loss(cache, X[:B], "bernoulli", BETA)
    loss, grads = ref.loss_and_grad(p0, X[:B], eps(0, B), "bernoulli", BETA)
    out.update(LG_LOSS=[loss], LG_RECON=recon, LG_KL=kl, LG_GRADS=to_flat(grads))

    # encode rows 0..B-1, decode z = mu to the mean (sigmoid of the logits)
    _, mu, lv, _ = ref.encode(p0, X[:B])
    _, logits = ref.decode(p0, mu)
    out.update(ENC_MU=mu.ravel(), ENC_LOGVAR=lv.ravel(), DEC_MEAN=ref.sigmoid(logits).ravel())

    # vf_vae_train_steps: 2 calls × 3 steps of SGD over ORDER, batch B
    params, opt, sums = p0, ref.SGD(p0, **SGD), np.zeros(3)
    for step in range(6):
        rows = ORDER[(step % 3) * B:(step % 3 + 1) * B]
        cache = ref.forward(params, X[rows], eps(step, B))
        total, recon, kl = ref.per_sample_loss(cache, X[rows], "bernoulli", BETA)
        sums += [total.sum(), recon.sum(), kl.sum()]
        params, _ = ref.train_step(params, opt, X[rows], eps(step, B), "bernoulli", BETA)
    out.update(SGD_PARAMS=to_flat(params), SGD_SUMS=sums)

    # vf_vae_train_step: one Adam step on rows 0..B-1, step counter 0
    cache = ref.forward(p0, X[:B], eps(0, B))
    total, recon, kl = ref.per_sample_loss(cache, X[:B], "bernoulli", BETA)
    opt = ref.Adam(p0, **ADAM)
    params, _ = ref.train_step(p0, opt, X[:B], eps(0, B), "bernoulli", BETA)
    out.update(ADAM_PARAMS=to_flat(params), ADAM_OUT3=[total.mean(), recon.mean(), kl.mean()])
    return out


def poisson_model():
    """A conditional Poisson model (C = 2, size factors): ELBO and decoded mean."""
    lay, n = layers([(D + C_COND, H), (H, 2 * Z), (Z + C_COND, H), (H, D)])
    flat = params_init(n, salt=3)
    (W0, b0), (Wh, bh), (W1, b1), (Wo, bo) = [
        (flat[w:w + i * o].reshape(i, o), flat[b:b + o]) for i, o, w, b in lay]
    X = np.array([[hashed(i * D + j, 4) % 7 for j in range(D)] for i in range(B)], float)
    c = np.array([[(hashed(i * C_COND + k, 5) % 257 - 128) / 256.0 for k in range(C_COND)]
                  for i in range(B)])
    s = np.array([0.5 + (hashed(i, 6) % 4) / 4.0 for i in range(B)])
    e = np.array([[(hashed(i * Z + k, 7) % 2049 - 1024) / 512.0 for k in range(Z)]
                  for i in range(B)])
    h = ref.linear_forward(np.hstack([np.log1p(X), c]), W0, b0, "relu")
    mu, lv = ref.split_head(ref.linear_forward(h, Wh, bh))
    z = ref.reparam_forward(mu, lv, e)
    out = ref.linear_forward(ref.linear_forward(np.hstack([z, c]), W1, b1, "relu"), Wo, bo)
    recon, _ = ref.poisson_loss(out, X, s)
    elbo = -(recon + BETA * ref.kl_normal(mu, lv))
    mean_out = ref.linear_forward(ref.linear_forward(np.hstack([mu, c]), W1, b1, "relu"), Wo, bo)
    return {"N_PARAMS_P": n, "POIS_ELBO": elbo,
            "POIS_MEAN": (s[:, None] * np.exp(np.minimum(mean_out, 30.0))).ravel()}


def zinb_model():
    """An unconditional ZINB model (scVI's mean, observed library): ELBO with
    given eps, encodings, and the decoded mean library·softmax(rho) with size
    factors as the library. Log θ is the buffer's last D entries."""
    lay, n_layers = layers([(D, H), (H, 2 * Z), (Z, H), (H, 2 * D)])
    n = n_layers + D
    flat = params_init(n, salt=9)
    (W0, b0), (Wh, bh), (W1, b1), (Wo, bo) = [
        (flat[w:w + i * o].reshape(i, o), flat[b:b + o]) for i, o, w, b in lay]
    log_theta = flat[n_layers:]
    X = np.array([[hashed(i * D + j, 8) % 5 + (j == 0) for j in range(D)] for i in range(B)],
                 float)  # column 0 >= 1: no empty cell (its library would be 0)
    s = np.array([0.5 + (hashed(i, 6) % 4) / 4.0 for i in range(B)])
    e = np.array([[(hashed(i * Z + k, 7) % 2049 - 1024) / 512.0 for k in range(Z)]
                  for i in range(B)])
    h = ref.linear_forward(np.log1p(X), W0, b0, "relu")
    mu, lv = ref.split_head(ref.linear_forward(h, Wh, bh))
    z = ref.reparam_forward(mu, lv, e)
    out = ref.linear_forward(ref.linear_forward(z, W1, b1, "relu"), Wo, bo)
    log_px = densities.zinb_log_px(out, X, log_theta, None, "unit")
    elbo = log_px - BETA * ref.kl_normal(mu, lv)
    mean_out = ref.linear_forward(ref.linear_forward(mu, W1, b1, "relu"), Wo, bo)
    return {"N_PARAMS_Z": n, "ZINB_ELBO": elbo, "ZINB_MU": mu.ravel(),
            "ZINB_MEAN": densities.softmax_mean(mean_out, D, s).ravel()}


def emit(values):
    print("/* expected.h: written by tests/c/make_expected.py (the float64 NumPy twin,")
    print(" * vaefast.reference); do not edit. */")
    for name, v in values.items():
        if isinstance(v, int):
            print(f"#define {name} {v}")
            continue
        v = np.asarray(v, dtype=np.float64).ravel()
        print(f"static const double {name}[{v.size}] = {{")
        for k in range(0, v.size, 4):
            print("    " + ", ".join(f"{x:.17g}" for x in v[k:k + 4]) + ",")
        print("};")


if __name__ == "__main__":
    emit({**bernoulli_model(), **poisson_model(), **zinb_model()})
