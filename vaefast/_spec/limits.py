"""The C core's clamps (csrc/vaefast.h), as plain numbers.

Stated here so that the NumPy maths, the exporters and the reference need
not import the compiled binding; tests/test_structure.py checks every value
against the binding's (_core.LIKELIHOOD_LIMITS, _core.LOGVAR_RANGE).
"""

# VF_POISSON_LOGRATE_MAX, VF_LOG_THETA_MIN, VF_LOG_THETA_MAX, VF_GAUSS_LOGVAR_MIN,
# VF_COUNT_MAX
LIMITS = {"poisson_lograte_max": 30.0, "log_theta_min": -20.0, "log_theta_max": 20.0,
          "gaussian_logvar_min": -10.0, "count_max": 16777216.0}
# VF_LOGVAR_MIN, VF_LOGVAR_MAX: the encoder's logvar head is clamped to this
# range, so exp never overflows in float32 (exp(30) ~ 1e13).
LOGVAR_RANGE = (-30.0, 30.0)
