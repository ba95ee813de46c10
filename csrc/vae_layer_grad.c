/* vae_layer_grad.c: a layer's backward products (weight gradient, input
 * gradient, the condition and covariate parts) and the thread-count-free
 * column sums a training step needs. */
#include <math.h>
#include <stdint.h>

#include "check.h"
#include "gemm_kernels.h"
#include "vae_internal.h"
#include "workspace.h"

/* The backward products of layer L for output gradient d (B×out):
 *   dW (in×out) = x (B×in)ᵀ · d,  db (out) = column sums of d   (overwrite)
 *   dx (B×in)   = (d · Wᵀ) ⊙ [mask > 0]                         (if dx != NULL)
 * VF_ERR_NONFINITE (after both are written) if any entry of dW or db is
 * NaN/Inf, found in the GEMM epilogue at no extra pass.
 * The two are independent. With exactly two threads they run side by side,
 * one thread each, instead of each being split across both: two fork/joins
 * and their barriers become one, and the small products of the head and the
 * latent layer, too small to split, still get a thread each. (With more
 * threads, splitting each product across all of them wins.) In bf16 on
 * the AMX route the weight gradient is also cut into its column units, so
 * the thread that finishes the input gradient first helps with it
 * (backward_mixed). Each product is computed by the same code whatever its
 * thread count, so the bits do not change. */

/* dW (in×out) = xᵀ (in×B) · d (B×out) and db = column sums of d, overwritten */
static vf_gemm_problem weight_grad_problem(int64_t B, int64_t in, int64_t out, const float *x,
                                           int64_t ldx, const float *d, float *dW, float *db,
                                           int bf16)
{
    return (vf_gemm_problem){.M = in, .N = out, .K = B, .A = x, .lda = ldx, .trans_a = 1,
                             .B = d, .ldb = out, .C = dW, .ldc = out, .ones_row = db,
                             .bf16 = bf16};
}

/* dx (B×in) = (d (B×out) · Wᵀ) ⊙ [mask > 0], mask (B×in) or NULL; w_packed
 * (or NULL): Wᵀ packed as op(B) by the last optimizer step. */
static vf_gemm_problem input_grad_problem(const vf_vae_layer *L, int64_t B, const float *d,
                                          const float *W, const uint32_t *w_packed,
                                          const float *mask, float *dx, int bf16)
{
    return (vf_gemm_problem){.M = B, .N = L->in, .K = L->out, .A = d, .lda = L->out,
                             .B = W, .ldb = L->out, .trans_b = 1, .C = dx, .ldc = L->in,
                             .mask = mask, .ldm = L->in, .bf16 = bf16, .packed_b = w_packed};
}

/* The weight gradient, VF_ERR_NONFINITE if any of dW or db is NaN/Inf
 * (checked: the step's gradient check). emit_a (or NULL): d also written
 * as the packed op(A) of the input gradient, *emitted set if it was (the
 * AMX route; vf_bf16_problem). */
static int weight_grad_emit(int64_t B, int64_t in, int64_t out, const float *x, int64_t ldx,
                            const float *d, float *dW, float *db, int bf16, uint32_t *emit_a,
                            int *emitted)
{
    vf_gemm_problem p = weight_grad_problem(B, in, out, x, ldx, d, dW, db, bf16);
    p.emit_a = emit_a, p.emitted = emitted;
    return vf_gemm_run_checked(&p);
}

static int weight_grad(int64_t B, int64_t in, int64_t out, const float *x, int64_t ldx,
                       const float *d, float *dW, float *db, int bf16)
{
    return weight_grad_emit(B, in, out, x, ldx, d, dW, db, bf16, NULL, NULL);
}

static int layer_weight_grad(const vf_vae_layer *L, int64_t B, const float *x,
                             int64_t ldx, const float *d, float *dW, float *db, int bf16)
{
    return weight_grad(B, L->in, L->out, x, ldx, d, dW, db, bf16);
}

/* The input gradient; d_packed (or NULL): d already packed as op(A) by the
 * weight gradient. */
static int input_grad_packed(const vf_vae_layer *L, int64_t B, const float *d,
                             const float *W, const float *mask, float *dx, int bf16,
                             const uint32_t *d_packed, const uint32_t *w_packed)
{
    vf_gemm_problem p = input_grad_problem(L, B, d, W, w_packed, mask, dx, bf16);
    p.packed_a = d_packed;
    return vf_gemm_run(&p);
}

static int layer_input_grad(const vf_vae_layer *L, int64_t B, const float *d,
                            const float *W, const uint32_t *w_packed, const float *mask,
                            float *dx, int bf16)
{
    return input_grad_packed(L, B, d, W, mask, dx, bf16, NULL, w_packed);
}

/* This thread's buffer for d (B×out) packed as op(A) (16-row groups, an
 * even number, × 32-deep steps), or NULL. */
static uint32_t *d_as_a_buffer(int64_t B, int64_t out)
{
    const int64_t rows = (B + 31) / 32 * 32, steps = (out + 31) / 32;
    if ((size_t)rows * (size_t)steps >= SIZE_MAX / 4096)
        return NULL;
    return (uint32_t *)vf_workspace_get_slot(4, (size_t)(rows * steps * 16));
}

/* Both products one after the other. With bf16, d is converted once: the
 * weight gradient (d its op(B)) also writes it as the input gradient's
 * packed op(A) where the AMX route runs it (the same bytes the input
 * gradient's own packing would write: the bits do not change); scVI's
 * decoder output, one thread: that packing was 105 of the input
 * gradient's 353 us. */
static int weight_then_input_grad(const vf_vae_layer *L, int64_t B, const float *x,
                                  int64_t ldx, const float *d, const float *W,
                                  const uint32_t *w_packed, float *dW, float *db,
                                  const float *mask, float *dx, int bf16)
{
    uint32_t *d_packed = bf16 && dx ? d_as_a_buffer(B, L->out) : NULL;
    int emitted = 0;
    int st = weight_grad_emit(B, L->in, L->out, x, ldx, d, dW, db, bf16, d_packed, &emitted);
    if (st == VF_OK && dx)
        st = input_grad_packed(L, B, d, W, mask, dx, bf16, emitted ? d_packed : NULL, w_packed);
    return st;
}

/* The two independent products of a layer's backward pass as the two
 * units of one team loop (threads.h): side by side on two threads, or one
 * after the other on the caller when the other thread is late. */
typedef struct backward_pair {
    const vf_vae_layer *L;
    int64_t B, ldx;
    const float *x, *d, *W, *mask;
    const uint32_t *w_packed;
    float *dW, *db, *dx;
    int *st; /* [weight gradient, input gradient] */
    int bf16;
} backward_pair;

static int64_t backward_pair_units(const void *ctx, int64_t lo, int64_t hi)
{
    const backward_pair *p = ctx;
    for (int64_t u = lo; u < hi; ++u)
        p->st[u] = u == 0 ? layer_weight_grad(p->L, p->B, p->x, p->ldx, p->d, p->dW, p->db,
                                              p->bf16)
                          : layer_input_grad(p->L, p->B, p->d, p->W, p->w_packed, p->mask,
                                             p->dx, p->bf16);
    return 0;
}

/* Both bf16 products on two threads of the AMX route: d packed first as
 * the weight gradient's op(B) and the input gradient's op(A) at once, by
 * column blocks on both threads; then one team loop with the input
 * gradient as one unit and the weight gradient as its column units, so
 * the thread done with the first helps with the second. scVI's decoder
 * output, 128 x 128 x 4000 each: the input gradient takes about 215 us on
 * one thread, the weight gradient 313; side by side 340-380 us a step for
 * the decoder's backward, mixed 330-338; with d read once instead of once
 * per product, 311-366 (median 326) against 342-366 (median 349), seven
 * alternating runs. VF_ERR_ISA if the route cannot. */
static int backward_mixed(const vf_vae_layer *L, int64_t B, const float *x, int64_t ldx,
                          const float *d, const float *W, const uint32_t *w_packed, float *dW,
                          float *db, const float *mask, float *dx)
{
    int nonfinite = 0;
    vf_gemm_problem pw = weight_grad_problem(B, L->in, L->out, x, ldx, d, dW, db, 1);
    pw.nonfinite = &nonfinite;
    vf_gemm_problem px = input_grad_problem(L, B, d, W, w_packed, mask, dx, 1);
    uint32_t *d_packed = d_as_a_buffer(B, L->out); /* NULL: each product packs d itself */
    pw.emit_a = d_packed;
    px.packed_a = d_packed;
    VF_TRY(vf_gemm_run_bf16_pair(&pw, &px, 2));
    return nonfinite ? VF_ERR_NONFINITE : VF_OK;
}

static int backward_layer(const vf_vae_layer *L, int64_t B, const float *x, int64_t ldx,
                          const float *d, const float *W, const uint32_t *w_packed, float *dW,
                          float *db, const float *mask, float *dx, int bf16)
{
    int st[2] = {VF_OK, VF_OK};
    if (dx && vf_threads_for(1, 0) == 2) { /* inside a unit: as the nested job */
        if (bf16) {
            const int mixed = backward_mixed(L, B, x, ldx, d, W, w_packed, dW, db, mask, dx);
            if (mixed != VF_ERR_ISA)
                return mixed;
        }
        const backward_pair p = {L, B, ldx, x, d, W, mask, w_packed, dW, db, dx, st, bf16};
        vf_team_for(2, 2, 1, backward_pair_units, &p);
        return st[0] != VF_OK ? st[0] : st[1];
    }
    return weight_then_input_grad(L, B, x, ldx, d, W, w_packed, dW, db, mask, dx, bf16);
}

/* backward_layer for a layer whose input may be [x | c]: x's part as usual
 * (dx is d·W[:in−C]ᵀ, the gradient w.r.t. c is not needed), then
 * dW[in−C:] (C×out) = cᵀ·d (overwrite); a covariate table's gradient is a
 * scatter-add of d (vae_covariates.c). */
int vae_backward_any_layer(const vf_vae *m, const vf_vae_layer *L, int64_t B,
                              const float *x, int64_t ldx, const vae_side *sd,
                              const float *d, const float *mask, float *dx)
{
    const float *W = m->params + L->w;
    float *dW = m->grads + L->w, *db = m->grads + L->b;
    vf_vae_layer Lx = *L;
    Lx.in = L->in - (L->cond ? m->C : 0);
    const uint32_t *w_packed = dx ? vae_packed_weights(m, L, 1) : NULL;
    int st = backward_layer(&Lx, B, x, ldx, d, W, w_packed, dW, db, mask, dx, m->bf16);
    if (st == VF_OK && L->cond)
        st = weight_grad(B, m->C, L->out, sd->c, sd->ldc, d, dW + Lx.in * L->out, NULL,
                         m->bf16);
    return st == VF_OK && L->cov ? vae_cov_backward(m, L, B, sd, d, m->grads) : st;
}

int vae_backward_input(const vf_vae *m, const vf_vae_layer *L, int64_t B, const float *d,
                       const float *mask, float *dx)
{
    vf_vae_layer Lx = *L;
    Lx.in = L->in - (L->cond ? m->C : 0);
    return layer_input_grad(&Lx, B, d, m->params + L->w, vae_packed_weights(m, L, 1), mask,
                            dx, m->bf16);
}

/* g (N) = column sums of d (B×N, contiguous), rows in order (thread-count
 * free: threads own blocks of 256 columns); VF_ERR_NONFINITE if any is NaN/Inf. */
typedef struct column_sums_call {
    int64_t B, N;
    const float *d;
    float *g;
} column_sums_call;

static int64_t column_sum_blocks(const void *ctx, int64_t lo, int64_t hi)
{
    const column_sums_call *c = ctx;
    int64_t bad = 0;
    for (int64_t j0 = lo * 256; j0 < hi * 256 && j0 < c->N; j0 += 256) {
        const int64_t j1 = c->N - j0 < 256 ? c->N : j0 + 256;
        for (int64_t j = j0; j < j1; ++j)
            c->g[j] = 0.0f;
        for (int64_t i = 0; i < c->B; ++i)
            for (int64_t j = j0; j < j1; ++j)
                c->g[j] += c->d[i * c->N + j];
        for (int64_t j = j0; j < j1; ++j)
            bad |= !isfinite(c->g[j]);
    }
    return bad;
}

int vae_column_sums(int64_t B, int64_t N, const float *d, float *g)
{
    const column_sums_call c = {B, N, d, g};
    const int64_t blocks = (N + 255) / 256;
    return vf_split_range(blocks, vf_threads_for(B * N, 262144), column_sum_blocks, &c)
               ? VF_ERR_NONFINITE : VF_OK;
}
