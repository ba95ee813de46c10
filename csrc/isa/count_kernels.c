/* count_kernels.c: the scVI-parameterised count losses (Poisson, NB, ZINB with
 * mean = library · softmax(rho)), loss and gradients fused, for one kernel set.
 *
 * Per row of N genes (rho: the decoder output, x: counts):
 *   A  m = max_j rho_j
 *   B  S = Σ_j exp(rho_j − m);  c = log L − log S, so log mu_j = (rho_j − m) + c
 *   C  every gene, VW at a time (stage by stage over VF_COUNT_LANES vectors,
 *      count_lane below): the terms that need no lgamma (all of a
 *      zero count's loss; the softplus / sigmoid parts of the rest), g_j =
 *      ∂loss/∂log mu_j into drho, G = Σ g_j, dpi, ∂/∂ρ, and the lgamma
 *      part of a count of 1 (log θ, no digamma part). The positions of
 *      counts 2–7 of a per-gene θ (a third of the non-zeros in single-cell
 *      data) are compressed into a list and their lgamma / digamma parts
 *      read VW at a time from the call's table (gathers, count_kernels.h);
 *      the rest (larger counts, a per-element θ: a few in a hundred
 *      non-zeros) get them one at a time in double (count_terms below).
 *   D  drho_j = scale·(g_j − p_j·G), p_j = exp(rho_j − m)/S (the exp kept
 *      from B in a row of scratch): the softmax's chain rule
 *      (∂log mu_k/∂rho_j = δ_kj − p_j).
 * Written once over the vector layer (isa/vec.h, vec_math.h); the generic
 * set runs it one lane at a time. Row sums accumulate in one float vector
 * (fixed lane order, vf_hsum) plus the double sum of the one-at-a-time terms, so
 * results differ between kernel sets in the last bits but never between
 * thread counts. */
#include <math.h>
#include <stdint.h>

#include "count_kernels.h"
#include "isa/gamma_series.h"
#include "isa/isa.h"
#include "isa/kernel_protos.h"
#include "isa/log_factorial.h"
#include "isa/vec_math.h"
#include "vaefast.h"

#define VF_COUNT_SHORT 16 /* counts up to this take the exact product / sum */
#define VF_COUNT_LIST 256 /* table-lane positions held before they are handled */
#define VF_COUNT_LANES 4  /* vectors whose stages of step C run side by side */

/* log(x!) for an integer count x >= 0 */
static inline double log_factorial(double x)
{
    if (x < VF_LOG_FACTORIAL_N)
        return vf_log_factorial_table[(int)x];
    double lg, dg;
    vf_stirling(x + 1.0, &lg, &dg);
    return lg;
}

/* For an integer count x > 0 and θ > 0:
 *   *d1 = lgamma(x + θ) − lgamma(θ) − lgamma(x + 1)
 *   *e  = x − θ·(ψ(x + θ) − ψ(θ)) = Σ_{k<x} k/(θ + k)
 * (e is formed without the cancellation of x against θ·Δψ when θ >> x).
 * The first VF_COUNT_SHORT factors exactly (Γ(y+1) = yΓ(y); the products
 * stay below 1e140 for θ <= e^20), the rest as a difference of Stirling
 * series at arguments >= 16, accurate in double (|lgamma| < 1e10 here). */
static void count_terms(double x, double theta, double *d1, double *e)
{
    const int n = x < VF_COUNT_SHORT ? (int)x : VF_COUNT_SHORT;
    /* prod = Π_{k<n} (θ + k); num/den = Σ_{0<k<n} k/(θ + k) over the common
     * denominator den = Π_{0<k<n} (θ + k): one division, not n */
    double den = 1.0, num = 0.0;
    for (int k = 1; k < n; ++k) {
        num = num * (theta + k) + k * den;
        den *= theta + k;
    }
    double lg = log(theta * den), sum = num / den;
    if (x > VF_COUNT_SHORT) {
        double lg1, dg1, lg0, dg0;
        vf_stirling(theta + x, &lg1, &dg1);
        vf_stirling(theta + VF_COUNT_SHORT, &lg0, &dg0);
        lg += lg1 - lg0;
        sum += (x - VF_COUNT_SHORT) - theta * (dg1 - dg0);
    }
    *d1 = lg - log_factorial(x);
    *e = sum;
}

static inline float clamp_rho(float r)
{
    return fminf(fmaxf(r, VF_LOG_THETA_MIN), VF_LOG_THETA_MAX);
}

/* One row's pointers and constants. */
typedef struct {
    const float *r, *x, *lt, *w, *th; /* th: θ per gene (or NULL: exp(ρ) here) */
    const float *ith;     /* 1/θ per gene (with th), else NULL */
    const float *tab;     /* the small-count table (with th), else NULL */
    const float *lfact;   /* log x! for x < VF_COUNT_TAB, float (with tab) */
    int64_t N;
    float *dr, *dlt, *dw; /* dlt: the row's per-element ∂/∂ρ or the block's gene_acc */
    float *e;             /* exp(rho − m) from step B (N; with dr or ith) */
    int acc_lt;           /* dlt accumulates (per-gene θ) rather than stores */
    vf m, c, scale;
    vf k_mu;              /* L/S: mu_j = k_mu · e_j */
} count_row;

/* u = e^a = mu/θ: from step B's e_j as k_mu·e_j/θ_j (a per-gene θ: no
 * exp), else exp(a); held at most 2^60 (only a library above ~2e9 reaches
 * it, θ >= e^-20), so 1 + u and its reciprocal stay normal, and
 * log(1 + u) there is log u = a to rounding. u may underflow to 0, where
 * softplus and σ are 0 too. A NaN passes. */
VF_INLINE vf mu_over_theta(const count_row *R, int64_t j, vm k, int full, vf a)
{
    const vf u = R->ith ? vf_mul(vf_mul(vf_load_if(R->e + j, k, full), R->k_mu),
                                 vf_load_if(R->ith + j, k, full))
                        : vf_exp(a);
    return vf_min(vf_set1(0x1p60f), u);
}

/* What rounding v = 1 + t lost: t − (v − 1), exact (for t >= 1, v − 1 is
 * exact and this is v's rounding error). */
VF_INLINE vf lost_in_one_plus(vf t, vf v) { return vf_sub(t, vf_sub(v, vf_set1(1.0f))); }

/* log(1 + t) for t >= 0 given v = 1 + t (rounded) and iv = 1/v: log v plus
 * what the rounding lost, over v, so small t come out as t. */
VF_INLINE vf log1p_given(vf t, vf v, vf iv)
{
    return vf_fma(lost_in_one_plus(t, v), iv, vf_log(v));
}

/* Step C on lanes [j, j+VW) under mask k (`full`: all lanes, compile-time),
 * in four stages whose values one count_lane carries. Each stage ends a
 * link of the chain exp -> log -> exp -> log of a zero count's ZINB terms;
 * count_group runs each stage over VF_COUNT_LANES vectors before the
 * next, so their chains overlap. One vector at a time, the chain set the
 * pace: about 190 cycles a vector at 1.25 instructions a cycle on Zen 4,
 * under half of what its multiply pipe could take (ZINB, gene θ, 128 ×
 * 2,000: 1.02 -> 0.86-0.91 ms; per-element θ 1.97 -> 1.34 ms; avx2 1.89
 * -> 1.45 ms).
 *   load:   the lanes' counts, log mu, the masks, u = mu/θ, 1/(1 + u)
 *   nb:     the NB terms without lgamma; ZINB: σ(w) from e^-|w|
 *   zero:   ZINB: e^-|d| and its reciprocal (d = w − log NB(0))
 *   finish: ZINB's zero-count terms; stores g, ∂/∂ρ, ∂/∂w
 * then lane_sum adds the lanes' loss to *acc and their g to *G (a count
 * of 1: all of it), and lane_rest takes the larger counts, vector after
 * vector in the order of the genes: the sums are those of one vector at a
 * time. tl: the lanes of counts 2..VF_COUNT_TAB−1 when
 * R->tab is there (their table part is still to come); nz: the other lanes
 * with x > 1 or a non-integer x > 0 (count_sparse's); ok: 0 if any lane's
 * count is negative or NaN. */
typedef struct count_lane {
    vm k, pos, x1, nz, tl;
    int ok;
    vf x, lm, loss, g, lg1;                   /* lg1: a count of 1's lgamma part */
    vf theta, a, u, v, iv, sp, sig, tsd, drho; /* NB, ZINB */
    vf w, ew, ww, iw, sgw, l0, d, ed, wd, id;  /* ZINB */
} count_lane;

VF_INLINE void lane_load(const count_row *R, const int lik, int64_t j, vm k, int full,
                         count_lane *L)
{
    const vf zero = vf_zero(), one = vf_set1(1.0f);
    const vf x = vf_load_if(R->x + j, k, full);
    const vf lm = vf_add(vf_sub(vf_load_if(R->r + j, k, full), R->m), R->c); /* log mu */
    const vm pos = vf_gt(x, zero), x1 = vf_eq(x, one);
    L->k = k, L->x = x, L->lm = lm, L->pos = pos, L->x1 = x1;
    L->ok = vm_count(pos) + vm_count(vf_eq(x, zero)) == VW;
    L->nz = vm_andnot(x1, pos);
    L->tl = vm_first(0);
    if (R->tab) { /* integer counts below VF_COUNT_TAB (the rounding trick is exact there) */
        const vf magic = vf_set1(VF_ROUND_MAGIC);
        const vm small = vm_and(vf_lt(x, vf_set1((float)VF_COUNT_TAB)),
                                vf_eq(vf_sub(vf_add(x, magic), magic), x));
        L->tl = vm_and(small, L->nz);
        L->nz = vm_andnot(small, L->nz);
    }
    L->lg1 = zero; /* Poisson: log 1! = 0 */
    if (lik == VF_COUNT_POISSON) {
        const vf mu = vf_exp(lm);
        L->loss = vf_fnma(x, lm, mu); /* mu − x·log mu (+ log x! later) */
        L->g = vf_sub(mu, x);
        return;
    }
    const vf rho = vf_min(vf_set1(VF_LOG_THETA_MAX),
                          vf_max(vf_set1(VF_LOG_THETA_MIN), vf_load_if(R->lt + j, k, full)));
    L->theta = R->th ? vf_load_if(R->th + j, k, full) : vf_exp(rho);
    L->lg1 = vf_maskz(x1, rho); /* log θ */
    L->a = vf_sub(lm, rho);     /* log(mu/θ) */
    /* softplus(a) = log(1 + u) and σ(a) = u/(1 + u) from u = e^a, with
     * one reciprocal (vf_div_fast: the divider is the slowest unit) */
    L->u = mu_over_theta(R, j, k, full, L->a);
    L->v = vf_add(one, L->u);
    L->iv = vf_div_fast(one, L->v); /* 1 − σ(a) */
}

VF_INLINE void lane_nb(const count_row *R, const int lik, int64_t j, int full, count_lane *L)
{
    const vf zero = vf_zero(), one = vf_set1(1.0f);
    const vf x = L->x, theta = L->theta;
    const vf sp = log1p_given(L->u, L->v, L->iv);
    const vf sig = vf_mul(L->u, L->iv);
    /* NB without its lgamma terms: θ·sp(a) + x·sp(−a); g = (x+θ)σ − x;
     * ∂/∂ρ = θ(sp − σ) − xσ (+ Σ_{k<x} k/(θ+k) later) */
    L->loss = vf_fma(x, vf_sub(sp, L->a), vf_mul(theta, sp));
    L->g = vf_fnma(x, L->iv, vf_mul(theta, sig));
    L->tsd = vf_mul(theta, vf_sub(sp, sig));
    L->drho = vf_fnma(x, sig, L->tsd);
    L->sp = sp, L->sig = sig;
    if (lik == VF_COUNT_ZINB) {
        /* w: the zero-inflation logit, π = σ(w); ew = e^-|w| */
        const vf w = vf_load_if(R->w + j, L->k, full);
        L->w = w;
        L->ew = vf_exp_nonpos(vf_neg_abs(w));
        L->ww = vf_add(one, L->ew);
        L->iw = vf_div_fast(one, L->ww);
        L->sgw = vf_select(vf_lt(w, zero), vf_mul(L->ew, L->iw), L->iw);
    }
}

/* x = 0: −log p = sp(w) − logaddexp(w, l0), l0 = −θ·sp(a) = log NB(0);
 * with d = w − l0 and ed = e^-|d|:
 *   sp(w) = max(w, 0) + log1p(ew),
 *   logaddexp(w, l0) = max(w, l0) + log1p(ed),
 * and the two log1p's of a zero count taken as one log of
 * (1 + ew)/(1 + ed) (both in [1, 2]: no cancellation) plus the
 * rounding terms of log1p_given */
VF_INLINE void lane_zero(count_lane *L)
{
    L->l0 = vf_mul(vf_set1(-1.0f), vf_mul(L->theta, L->sp));
    L->d = vf_sub(L->w, L->l0);
    L->ed = vf_exp_nonpos(vf_neg_abs(L->d));
    L->wd = vf_add(vf_set1(1.0f), L->ed);
    L->id = vf_div_fast(vf_set1(1.0f), L->wd);
}

VF_INLINE void lane_finish(const count_row *R, const int lik, int64_t j, int full,
                           count_lane *L)
{
    const vm k = L->k;
    if (lik == VF_COUNT_ZINB) {
        const vf zero = vf_zero(), w = L->w, id = L->id, ed = L->ed, l0 = L->l0;
        const vm pos = L->pos;
        const vf cw = vf_mul(lost_in_one_plus(L->ew, L->ww), L->iw);
        const vf cd = vf_mul(lost_in_one_plus(ed, L->wd), id);
        const vf lg = vf_log(vf_select(pos, L->ww, vf_mul(L->ww, id)));
        const vf spw = vf_add(vf_add(vf_max(w, zero), lg), cw); /* zero count: less log1p(ed) */
        const vm dneg = vf_lt(L->d, zero);
        const vf post = vf_select(dneg, id, vf_mul(ed, id)); /* σ(l0 − w) */
        const vf sgd = vf_select(dneg, vf_mul(ed, id), id);  /* σ(w − l0) */
        L->loss = vf_select(pos, vf_add(spw, L->loss), vf_sub(spw, vf_add(vf_max(w, l0), cd)));
        L->g = vf_select(pos, L->g, vf_mul(post, vf_mul(L->theta, L->sig)));
        L->drho = vf_select(pos, L->drho, vf_mul(post, L->tsd));
        if (R->dw)
            vf_store_if(R->dw + j, vf_mul(R->scale, vf_select(pos, L->sgw, vf_sub(L->sgw, sgd))),
                        k, full);
    }
    if (lik != VF_COUNT_POISSON && R->dlt) {
        vf drho = L->drho;
        if (R->acc_lt)
            drho = vf_add(vf_load_if(R->dlt + j, k, full), drho);
        vf_store_if(R->dlt + j, drho, k, full);
    }
    if (R->dr) {
        L->g = vf_maskz(k, L->g);
        vf_store_if(R->dr + j, L->g, k, full);
    }
}

/* The lane's loss into *acc and g into *G; returns its ok. */
VF_INLINE int lane_sum(const count_row *R, const count_lane *L, vf *acc, vf *G)
{
    *acc = vf_add(*acc, vf_maskz(L->k, vf_sub(L->loss, L->lg1)));
    if (R->dr)
        *G = vf_add(*G, L->g);
    return L->ok;
}

/* Counts of a per-gene θ in 2..VF_COUNT_TAB−1 at the n genes pos[0..n)
 * (pos has room for n rounded up to VW; padded here with pos[0]): their
 * lgamma parts x·log θ + Σ log(1 + k/θ) − log x! subtracted from acc, VW
 * at a time from the table, and their Σ k/(θ + k) added to dlt. */
VF_INLINE vf count_table_lanes(const count_row *R, uint32_t *pos, int n, vf acc)
{
    for (int q = n; q % VW; ++q)
        pos[q] = pos[0];
    const vf magic = vf_set1(VF_ROUND_MAGIC);
    const vf lo = vf_set1(VF_LOG_THETA_MIN), hi = vf_set1(VF_LOG_THETA_MAX);
    for (int q = 0; q < n; q += VW) {
        const vm k = vm_first(n - q);
        const vu p = vu_load(pos + q);
        const vf x = vf_gather(R->x, p);
        const vf rc = vf_min(hi, vf_max(lo, vf_gather(R->lt, p)));
        const vu xi = vu_sub(vf_bits(vf_add(x, magic)), vf_bits(magic)); /* x as an integer */
        const vu ti = vu_add(vu_slli(p, 4), vu_sub(xi, vu_set1(2)));      /* STRIDE·j + x − 2 */
        const vf t = vf_gather(R->tab, ti);
        const vf d1 = vf_fma(x, rc, vf_sub(t, vf_gather(R->lfact, xi)));
        acc = vf_sub(acc, vf_maskz(k, d1));
        if (R->dlt) { /* distinct genes: an add per lane */
            float el[VW];
            vf_store(el, vf_gather(R->tab + VF_COUNT_TAB_HALF, ti));
            for (int l = 0; l < VW && q + l < n; ++l)
                R->dlt[pos[q + l]] += el[l];
        }
    }
    return acc;
}

/* The other x > 1 lanes of a vector (bits of nz) at genes j..: the lgamma parts.
 * Returns the loss to add; adds to dlt; 0 in *ok for a non-integer count. */
static double count_sparse(const count_row *R, int lik, int64_t j, uint32_t bits, int *ok)
{
    double add = 0.0;
    while (bits) {
        const int l = __builtin_ctz(bits);
        bits &= bits - 1;
        const float xf = R->x[j + l];
        if (!(xf <= VF_COUNT_MAX) || xf != floorf(xf)) {
            *ok = 0;
            continue;
        }
        if (lik == VF_COUNT_POISSON) {
            add += log_factorial(xf);
            continue;
        }
        const float rc = clamp_rho(R->lt[j + l]);
        double d1, e;
        count_terms(xf, R->th ? (double)R->th[j + l] : exp((double)rc), &d1, &e);
        add -= d1;
        if (R->dlt)
            R->dlt[j + l] += (float)e;
    }
    return add;
}

/* After a vector's sums: its counts above 1 that are not table lanes
 * (count_sparse: their loss into *extra, 0 in *ok for a non-integer
 * count), and the positions of its table lanes into list (handled into
 * *acc when the list is full). */
VF_INLINE void lane_rest(const count_row *R, const int lik, int64_t j, const count_lane *L,
                         uint32_t *list, int *nl, vf *acc, double *extra, int *ok)
{
    if (vm_any(L->nz))
        *extra += count_sparse(R, lik, j, vm_bits(L->nz), ok);
    if (R->tab && vm_any(L->tl)) {
        *nl += vm_positions(list + *nl, L->tl, (uint32_t)j);
        if (*nl > VF_COUNT_LIST - VW) {
            *acc = count_table_lanes(R, list, *nl, *acc);
            *nl = 0;
        }
    }
}

/* Step C on nv vectors from gene j (nv a constant after inlining:
 * VF_COUNT_LANES in a row's body, 1 at its end), each stage over all of
 * them before the next; the last vector under mask k (`full`: all lanes,
 * compile-time). Then the sums, vector after vector in the order of the
 * genes. 0 in *ok for a bad count. */
VF_INLINE void count_group(const count_row *R, const int lik, const int nv, int64_t j, vm k,
                           int full, vf *acc, vf *G, uint32_t *list, int *nl, double *extra,
                           int *ok)
{
    count_lane L[VF_COUNT_LANES];
#pragma GCC unroll 4
    for (int q = 0; q < nv; ++q) { /* only the last vector may be partial */
        const int f = q < nv - 1 || full;
        lane_load(R, lik, j + q * VW, f ? vm_first(VW) : k, f, &L[q]);
    }
    if (lik != VF_COUNT_POISSON) {
#pragma GCC unroll 4
        for (int q = 0; q < nv; ++q)
            lane_nb(R, lik, j + q * VW, q < nv - 1 || full, &L[q]);
    }
    if (lik == VF_COUNT_ZINB) {
#pragma GCC unroll 4
        for (int q = 0; q < nv; ++q)
            lane_zero(&L[q]);
    }
#pragma GCC unroll 4
    for (int q = 0; q < nv; ++q)
        lane_finish(R, lik, j + q * VW, q < nv - 1 || full, &L[q]);
    for (int q = 0; q < nv; ++q) {
        *ok &= lane_sum(R, &L[q], acc, G);
        lane_rest(R, lik, j + q * VW, &L[q], list, nl, acc, extra, ok);
    }
}

/* One row, likelihood lik (a constant after inlining). Returns 0 for a bad count. */
VF_INLINE int count_row_run(const count_row *R0, const int lik, int64_t N, float L,
                            float *loss)
{
    count_row R = *R0;
    const vf ninf = vf_set1(-INFINITY);
    /* A: the row maximum */
    vf mx = ninf;
    for (int64_t j = 0; j < N; j += VW) {
        const vm k = vm_first(N - j);
        mx = vf_max(vf_select(k, vf_load_mask(R.r + j, k), ninf), mx);
    }
    float lanes[VW], m = -INFINITY;
    vf_store(lanes, mx);
    for (int l = 0; l < VW; ++l)
        m = lanes[l] > m ? lanes[l] : m;
    R.m = vf_set1(m);
    /* B: S = Σ exp(rho − m) */
    vf s = vf_zero();
    for (int64_t j = 0; j < N; j += VW) {
        const vm k = vm_first(N - j);
        const vf e = vf_maskz(k, vf_exp(vf_sub(vf_load_mask(R.r + j, k), R.m)));
        if (R.e)
            vf_store_mask(R.e + j, e, k);
        s = vf_add(s, e);
    }
    const float S = vf_hsum(s);
    R.c = vf_set1((float)(log((double)L) - log((double)S)));
    R.k_mu = vf_set1((float)((double)L / (double)S));
    /* C (the table lanes' positions gathered in `list`, handled when it fills
     * and at the end), VF_COUNT_LANES vectors at a time, then one */
    vf acc = vf_zero(), G = vf_zero();
    double extra = 0.0;
    int ok = 1;
    int64_t j = 0;
    uint32_t list[VF_COUNT_LIST + VW];
    int nl = 0;
    const vm all = vm_first(VW);
    for (; j + VF_COUNT_LANES * VW <= N; j += VF_COUNT_LANES * VW)
        count_group(&R, lik, VF_COUNT_LANES, j, all, 1, &acc, &G, list, &nl, &extra, &ok);
    for (; j + VW <= N; j += VW)
        count_group(&R, lik, 1, j, all, 1, &acc, &G, list, &nl, &extra, &ok);
    if (j < N)
        count_group(&R, lik, 1, j, vm_first(N - j), 0, &acc, &G, list, &nl, &extra, &ok);
    if (nl > 0)
        acc = count_table_lanes(&R, list, nl, acc);
    if (loss)
        *loss = (float)((double)vf_hsum(acc) + extra);
    /* D */
    if (R.dr) {
        const vf gsum = vf_set1(vf_hsum(G)), inv_s = vf_set1(1.0f / S);
        for (j = 0; j < N; j += VW) {
            const vm k = vm_first(N - j);
            const vf p = vf_mul(vf_load_mask(R.e + j, k), inv_s);
            const vf gj = vf_load_mask(R.dr + j, k);
            vf_store_mask(R.dr + j, vf_mul(R.scale, vf_fnma(p, gsum, gj)), k);
        }
    }
    if (R.dlt && !R.acc_lt) { /* per element: the clamp rule, then scale */
        for (j = 0; j < N; j += VW) {
            const vm k = vm_first(N - j);
            const vf raw = vf_load_mask(R.lt + j, k), d = vf_load_mask(R.dlt + j, k);
            const vm out = vm_and(vf_lt(raw, vf_set1(VF_LOG_THETA_MIN)), vf_gt(d, vf_zero()));
            const vm out2 = vm_and(vf_gt(raw, vf_set1(VF_LOG_THETA_MAX)), vf_lt(d, vf_zero()));
            const vf kept = vf_select(out, vf_zero(), vf_select(out2, vf_zero(), d));
            vf_store_mask(R.dlt + j, vf_mul(R.scale, kept), k);
        }
    }
    return ok;
}

int VF_FN(vf_count_rows)(const vf_count_problem *p, int64_t i0, int64_t rows,
                         float *gene_acc, float *row_e)
{
    const int64_t N = p->N;
    const int lik = p->likelihood;
    const int theta_per_gene = lik != VF_COUNT_POISSON && p->ldt == 0;
    if (gene_acc)
        for (int64_t j = 0; j < N; ++j)
            gene_acc[j] = 0.0f;
    int ok = 1;
    float lfact[VF_COUNT_TAB];
    for (int x = 0; x < VF_COUNT_TAB; ++x)
        lfact[x] = (float)vf_log_factorial_table[x];
    /* the table's gathers take int32 indices */
    const int use_tab = theta_per_gene && N <= INT32_MAX / VF_COUNT_TAB_STRIDE;
    float *xrow = p->xptr ? row_e + N : NULL; /* CSR counts: one row at a time */
    for (int64_t j = 0; xrow && j < N; ++j)
        xrow[j] = 0.0f;
    for (int64_t i = i0; i < i0 + rows; ++i) {
        const int64_t q0 = p->xptr ? p->xptr[i] : 0, q1 = p->xptr ? p->xptr[i + 1] : 0;
        for (int64_t q = q0; q < q1; ++q)
            xrow[p->xidx[q]] = p->xval[q];
        count_row R = {
            .r = p->rho + i * p->ldr,
            .x = xrow ? xrow : p->x + i * p->ldx,
            .lt = lik == VF_COUNT_POISSON ? NULL : p->log_theta + i * p->ldt,
            .w = lik == VF_COUNT_ZINB ? p->pi + i * p->ldp : NULL,
            .th = theta_per_gene ? p->theta_gene : NULL,
            .ith = theta_per_gene ? p->inv_theta_gene : NULL,
            .tab = use_tab ? p->tab : NULL,
            .lfact = lfact,
            .N = N,
            .dr = p->drho ? p->drho + i * p->lddr : NULL,
            .dlt = theta_per_gene ? gene_acc : (p->dlt ? p->dlt + i * p->lddt : NULL),
            .dw = p->dpi ? p->dpi + i * p->lddp : NULL,
            .e = p->drho || theta_per_gene ? row_e : NULL,
            .acc_lt = theta_per_gene,
            .scale = vf_set1(p->scale),
        };
        float *loss = p->loss ? p->loss + i : NULL;
        if (N == 0) {
            if (loss)
                *loss = 0.0f;
            continue;
        }
        const float L = p->library[i];
        if (lik == VF_COUNT_POISSON)
            ok &= count_row_run(&R, VF_COUNT_POISSON, N, L, loss);
        else if (lik == VF_COUNT_NB)
            ok &= count_row_run(&R, VF_COUNT_NB, N, L, loss);
        else
            ok &= count_row_run(&R, VF_COUNT_ZINB, N, L, loss);
        for (int64_t q = q0; q < q1; ++q)
            xrow[p->xidx[q]] = 0.0f;
    }
    return !ok;
}

void VF_FN(vf_count_table)(int64_t N, const float *inv_theta, float *tab)
{
    const vf one = vf_set1(1.0f);
    for (int64_t j = 0; j < N; j += VW) {
        const vm m = vm_first(N - j);
        const int nl = N - j < VW ? (int)(N - j) : VW;
        const vf it = vf_load_mask(inv_theta + j, m);
        vf t = vf_zero(), e = vf_zero();
        float tl[VW], el[VW];
        for (int x = 2; x < VF_COUNT_TAB; ++x) { /* adds k = x − 1 */
            const vf u = vf_mul(vf_set1((float)(x - 1)), it);
            const vf w = vf_add(one, u), inv = vf_div(one, w);
            t = vf_add(t, log1p_given(u, w, inv));
            e = vf_fma(u, inv, e);
            vf_store(tl, t);
            vf_store(el, e);
            for (int l = 0; l < nl; ++l) { /* gene-major: a gene's line */
                tab[(j + l) * VF_COUNT_TAB_STRIDE + x - 2] = tl[l];
                tab[(j + l) * VF_COUNT_TAB_STRIDE + VF_COUNT_TAB_HALF + x - 2] = el[l];
            }
        }
    }
}
