/* vae_layers.c: what inference and training both run: the layers, the
 * encoder's input, the head split, the side-input check. */
#include <string.h>

#include "check.h"
#include "gemm_kernels.h"
#include "vae_internal.h"
#include "vae_norm.h"

/* One vae_map_rows call; map_rows runs it on rows [lo, hi). */
typedef struct map_call {
    vae_row_fn row;
    int64_t D, ldi, ldo;
    const float *in, *s;
    float *out;
} map_call;

static int64_t map_rows(const void *ctx, int64_t lo, int64_t hi)
{
    const map_call *c = ctx;
    for (int64_t i = lo; i < hi; ++i)
        c->row(c->D, c->in + i * c->ldi, c->s ? c->s[i] : 1.0f, c->out + i * c->ldo);
    return 0;
}

/* out (B×D, ldo) <- row(D, in_i, s_i) for every row i of in (B×·, ldi),
 * size factors s (B) or NULL, split over threads. */
void vae_map_rows(vae_row_fn row, int64_t B, int64_t D, const float *in, int64_t ldi,
                  const float *s, float *out, int64_t ldo)
{
    const map_call c = {row, D, ldi, ldo, in, s, out};
    vf_split_range(B, vf_threads_for(B * D, 65536), map_rows, &c);
}

/* The encoder's input: the likelihood's transform of X (e.g. log(1 + X) for
 * counts; the decoder still models X itself) in buf (B×D), or X itself. */
const float *vae_encoder_input(const vf_vae *m, int64_t B, const float *X, int64_t ldx,
                               float *buf, int64_t *ld_out)
{
    *ld_out = ldx;
    if (!m->lik->input_row)
        return X;
    vae_map_rows(m->lik->input_row, B, m->D, X, ldx, NULL, buf, m->D);
    *ld_out = m->D;
    return buf;
}

/* Copy mu and clamp the raw logvar of a head output H (B×2Z, ldh). */
void vae_split_head(int64_t B, int64_t Z, const float *H, int64_t ldh,
                    float *mu, int64_t ldmu, float *lv, int64_t ldlv)
{
    for (int64_t i = 0; i < B; ++i) {
        const float *h = H + i * ldh;
        if (mu)
            memcpy(mu + i * ldmu, h, (size_t)Z * sizeof(float));
        for (int64_t j = 0; j < Z; ++j) {
            float v = h[Z + j];
            /* NaN passes through unchanged so the loss check sees it */
            lv[i * ldlv + j] = v < VF_LOGVAR_MIN ? VF_LOGVAR_MIN
                             : v > VF_LOGVAR_MAX ? VF_LOGVAR_MAX : v;
        }
    }
}

/* Y (B×out, ldy) = act(x·W + b) for layer L on x (B×in, ldx); a cond layer
 * reads [x | c] as two products into Y: c (B×C)·W[in−C:] first (K = C,
 * small), then x·W[:in−C] accumulated, bias and ReLU in its epilogue. A
 * layer with a covariate table adds its rows gathered by the codes
 * (csrc/covariates.c), the ReLU after them. */
int vae_layer_forward(const vf_vae *m, const vf_vae_layer *L, int64_t B,
                      const float *x, int64_t ldx, const vae_side *sd,
                      float *Y, int64_t ldy)
{
    const float *W = m->params + L->w;
    const int64_t kx = L->in - (L->cond ? m->C : 0);
    if (L->cond) {
        const vf_gemm_problem pc = {.M = B, .N = L->out, .K = m->C, .A = sd->c, .lda = sd->ldc,
                                    .B = W + kx * L->out, .ldb = L->out, .C = Y, .ldc = ldy,
                                    .bf16 = sd->bf16};
        VF_TRY(vf_gemm_run(&pc));
    }
    /* unchecked: a NaN reaches the loss, whose check reports it */
    const vf_gemm_problem px = {.M = B, .N = L->out, .K = kx, .A = x, .lda = ldx, .B = W,
                                .ldb = L->out, .C = Y, .ldc = ldy, .bias = m->params + L->b,
                                .relu = L->relu && !L->cov && !L->norm, .accumulate = L->cond,
                                .bf16 = sd->bf16, .packed_b = vae_packed_weights(m, L, 0)};
    int st = vf_gemm_run(&px);
    if (st == VF_OK && L->cov) /* a normalised layer's ReLU comes after its norm */
        st = vf_cov_gather_add(B, L->out, m->n_cat, sd->k, sd->ldk, m->cat_levels,
                               m->params + L->cov, L->out,
                               L->relu && !L->norm ? VF_ACT_RELU : VF_ACT_NONE, Y, ldy);
    return st == VF_ERR_NONFINITE ? VF_OK : st; /* as above: the loss reports it */
}

/* Run layers [first, last] on X (B×in, ldx), ping-ponging through bufA/bufB
 * (B×max_width each); the final layer writes into out (ldo) if out != NULL,
 * else into the next ping-pong buffer, returned in *res. sd: the rows'
 * conditions and codes. */
int vae_run_layers(const vf_vae *m, int first, int last, int64_t B,
                   const float *X, int64_t ldx, const vae_side *sd,
                   float *bufA, float *bufB, float *out, int64_t ldo, const float **res)
{
    const float *cur = X;
    int64_t ld = ldx;
    for (int l = first; l <= last; ++l) {
        const vf_vae_layer *L = &m->layers[l];
        float *dst = (l == last && out) ? out : ((l - first) % 2 == 0 ? bufA : bufB);
        int64_t ldd = (l == last && out) ? ldo : L->out;
        int st = vae_layer_forward(m, L, B, cur, ld, sd, dst, ldd);
        if (st != VF_OK)
            return st;
        vae_norm_infer(m, l, B, dst, ldd);
        cur = dst;
        ld = ldd;
    }
    if (res)
        *res = cur;
    return VF_OK;
}

/* The side inputs of rows row0.. of r (none for r NULL). */
vae_side vae_side_of(const vf_vae_rows *r, int64_t row0)
{
    vae_side sd = {.bf16 = vae_bf16(r)};
    if (r && r->c) {
        sd.c = r->c + row0 * r->ldc;
        sd.ldc = r->ldc;
    }
    if (r && r->codes) {
        sd.k = r->codes + row0 * r->ldk;
        sd.ldk = r->ldk;
    }
    return sd;
}

/* The side inputs r agree with the model: c given (ldc >= C) iff C > 0,
 * codes (ldk >= K) iff K > 0 (K = n_cat + side_codes), size factors only
 * if the likelihood takes them. */
int vae_check_rows(const vf_vae *m, const vf_vae_rows *r)
{
    const float *c = r ? r->c : NULL;
    const int32_t *k = r ? r->codes : NULL;
    if ((m->C > 0) != (c != NULL) || (c && r->ldc < m->C))
        return VF_ERR_ARG;
    const int64_t K = m->n_cat + m->side_codes;
    if ((K > 0) != (k != NULL) || (k && r->ldk < K))
        return VF_ERR_ARG;
    if (r && r->precision != VF_PRECISION_FP32 && r->precision != VF_PRECISION_BF16)
        return VF_ERR_ARG;
    if (r && r->size_factors && !m->lik->size_factors)
        return VF_ERR_ARG;
    return VF_OK;
}
