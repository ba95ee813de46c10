/* vae_bf16_encode.c: bf16 encode of dense rows. X is checked for NaN/±Inf
 * here (the Python layer leaves that scan to this pass), and a plain
 * encoder (no conditions, covariates, normalisation or input map) runs as
 * one chain of AMX products 32 rows at a time (csrc/isa/amx_encoder.c),
 * with the bits of the layer-by-layer run. */
#include <stdint.h>
#include <string.h>

#include "bf16_kernels.h"
#include "vae_internal.h"

/* 1 if X (B×D, ldx) holds a NaN or ±Inf: an exponent of all ones */
static int rows_nonfinite(int64_t B, int64_t D, const float *X, int64_t ldx)
{
    for (int64_t i = 0; i < B; ++i) {
        const float *x = X + i * ldx;
        uint32_t any = 0;
        for (int64_t j = 0; j < D; ++j) { /* branch-free: vectorises */
            uint32_t u;
            memcpy(&u, x + j, sizeof u);
            any |= (u & 0x7F800000u) == 0x7F800000u;
        }
        if (any)
            return 1;
    }
    return 0;
}

/* The chain of m's encoder layers, or 0 if one of them is not a plain
 * product (bias, ReLU) of its input, or there are too many. */
static int encoder_chain(const vf_vae *m, vf_bf16_chain *c)
{
    if (m->lik->input_row || m->n_enc + 1 > VF_BF16_CHAIN_MAX)
        return 0;
    c->n = m->n_enc + 1;
    for (int l = 0; l < c->n; ++l) {
        const vf_vae_layer *L = &m->layers[l];
        if (L->cond || L->cov || L->norm)
            return 0;
        c->layer[l] = (vf_bf16_chain_layer){.W = m->params + L->w, .bias = m->params + L->b,
                                            .in = L->in, .out = L->out, .relu = L->relu};
    }
    return 1;
}

int vae_bf16_encode(const vf_vae *m, int64_t B, const float *X, int64_t ldx, float *H,
                    int *done)
{
    *done = 0;
    vf_bf16_chain c = {.M = B, .X = X, .ldx = ldx, .Y = H, .ldy = 2 * m->Z};
    if (encoder_chain(m, &c)) {
        const int st = vf_bf16_chain_run(&c);
        if (st != VF_ERR_ISA) { /* else not the AMX route: layer by layer */
            *done = st == VF_OK;
            return st;
        }
    }
    return rows_nonfinite(B, m->D, X, ldx) ? VF_ERR_NONFINITE : VF_OK;
}
