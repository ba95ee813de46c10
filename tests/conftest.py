import os

import numpy as np
import pytest

import vaefast

# Seeded, fast hypothesis runs; CI may raise the example count via profile.
try:
    from hypothesis import settings

    settings.register_profile("vaefast", max_examples=40, deadline=None)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "vaefast"))
except ImportError:  # hypothesis is in the test extra; tests needing it skip
    pass


def pytest_report_header(config):
    return (f"vaefast kernel set: {vaefast.isa()} "
            f"(supported: {', '.join(vaefast.supported_isas())}), "
            f"threads: {vaefast.get_num_threads()}")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
