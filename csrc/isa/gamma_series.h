/* gamma_series.h: lgamma and digamma of a double y >= 8 by their asymptotic
 * (Stirling) series (internal; the count kernels of one kernel set).
 *
 *   lgamma(y) = (y − ½)·log y − y + ½·log 2π + 1/(12y) − 1/(360y³) + 1/(1260y⁵) − 1/(1680y⁷)
 *   digamma(y) = log y − 1/(2y) − 1/(12y²) + 1/(120y⁴) − 1/(252y⁶) + 1/(240y⁸)
 *
 * For y >= 8 the first omitted terms are below 1e-11 (lgamma) and 1e-12
 * (digamma). Callers shift smaller arguments up with Γ(y+1) = yΓ(y),
 * ψ(y+1) = ψ(y) + 1/y. */
#ifndef VF_ISA_GAMMA_SERIES_H
#define VF_ISA_GAMMA_SERIES_H

#include <math.h>

#define VF_HALF_LOG_2PI_D 0.91893853320467274178

static inline void vf_stirling(double y, double *lg, double *dg)
{
    double r = 1.0 / y, r2 = r * r, ly = log(y);
    *lg = (y - 0.5) * ly - y + VF_HALF_LOG_2PI_D +
          r * (1.0 / 12 - r2 * (1.0 / 360 - r2 * (1.0 / 1260 - r2 / 1680)));
    *dg = ly - 0.5 * r - r2 * (1.0 / 12 - r2 * (1.0 / 120 - r2 * (1.0 / 252 - r2 / 240)));
}

#endif
