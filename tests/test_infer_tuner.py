"""The inference calls' thread tuner (csrc/threads.c, vf_sized_tuner; used
by encode, decode and elbo in csrc/vae_infer.c).

Its choices depend on timings, but its first moves do not: a size class's
first two calls run on the setting (the first untimed: it starts threads,
fills caches), its third tries one thread (the other choice, untimed so far); a call under VF_TUNE_MIN_UNITS of work (64M
multiply-adds) is never tuned. The team's counters (vf_team_stats) show
which ran. Whatever it picks, the results are the same bits."""

import ctypes
import json

import numpy as np
import pytest

import vaefast

_FIRST_CALLS = """
import ctypes, json
import numpy as np
import vaefast
lib = ctypes.CDLL(vaefast._core.__file__)
def team_loops():
    out = (ctypes.c_int64 * 10)()
    lib.vf_team_stats(out, 10)
    # loops that asked for the team: run by it, or by the caller alone during
    # a back-off or while the workers slept (team.c); a capped call asks for none
    return out[0] + out[5] + out[9]
vaefast.set_num_threads(2)
m = vaefast.VAE(784, hidden=(400,), latent_dim=20, seed=0)
X = np.random.default_rng(0).random((2048, 784), dtype=np.float32)
loops = []
# 784-400-20: 651,200 multiply-adds a row, so 2,048 rows are tuned, 60 rows not
for rows in (2048, 2048, 2048, 60, 60):
    before = team_loops()
    m.encode(X[:rows])
    loops.append(team_loops() - before)
print(json.dumps(loops))
"""


@pytest.mark.parametrize("tune", ["default", "off"])
def test_first_calls_on_the_setting_third_tries_one_thread(run_python, tune):
    if not hasattr(ctypes.CDLL(vaefast._core.__file__), "vf_team_stats"):
        pytest.skip("this build does not export vf_team_stats")
    env = {"VAEFAST_TUNE_THREADS": "0" if tune == "off" else None}
    proc = run_python(_FIRST_CALLS, **env)
    assert proc.returncode == 0, proc.stderr
    big1, big2, big3, small1, small2 = json.loads(proc.stdout.strip().splitlines()[-1])
    assert big1 > 0 and big2 > 0, "the first two 2,048-row encodes run on the setting"
    if tune == "off":
        assert big3 > 0, "with the tuner off every call runs on the setting"
    else:
        assert big3 == 0, "the third call of a size class tries one thread"
    assert small1 > 0 and small2 > 0, "a call under 64M multiply-adds runs on the setting"


def test_bits_whatever_the_tuner_picks(rng, threads_setting):
    """Calls of several sizes, repeated so that the tuner switches between
    one thread and two: every result equals the one-thread result."""
    m = vaefast.VAE(784, hidden=(400,), latent_dim=20, seed=3)
    X = rng.random((1500, 784), dtype=np.float32)
    eps = rng.standard_normal((1500, 20), dtype=np.float32)
    vaefast.set_num_threads(1)
    want = [(m.encode(X[:n]), m.decode(eps[:n]), m.elbo(X[:n], seed=7)) for n in (1500, 300, 40)]
    vaefast.set_num_threads(2)
    for _ in range(4):  # the setting twice, one thread, then the tuner's pick
        for (mu_lv, dec, elbo), n in zip(want, (1500, 300, 40)):
            got = m.encode(X[:n])
            assert all(np.array_equal(a, b) for a, b in zip(got, mu_lv))
            assert np.array_equal(m.decode(eps[:n]), dec)
            assert np.array_equal(m.elbo(X[:n], seed=7), elbo)
