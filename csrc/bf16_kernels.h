/* bf16_kernels.h: the bf16 GEMM's problem and per-set drivers (internal).
 *
 *   C (M×N, ldc) = act( op(A) (M×K) · op(B) (K×N) [+ bias] )
 *
 * with every entry of op(A) and op(B) rounded to bf16 while packing (round
 * to nearest even, NaN kept NaN: isa/vec_bf16.h), k taken in pairs
 * (2p, 2p+1) as VDPBF16PS reads them (an odd K gets a zero partner), and
 * one float32 accumulator per C entry that starts at +0 and takes the
 * pairs in order p = 0, 1, ... Blocking, tile shapes and threads never
 * change that sequence, so the result is a function of the inputs alone:
 * the emulating driver (generic set) and the VDPBF16PS driver (avx512 set,
 * CPUs with AVX512_BF16) give the same bits.
 *
 * The epilogue adds the bias in float32, then (relu) maps v to v > 0 ? v : 0,
 * then (mask) multiplies by [mask > 0] (the ReLU backward of the layers).
 * If ones_row is not NULL (op(B) not transposed only), it receives the
 * column sums of the float32 op(B), each 0 + b_0 + b_1 + ... in k order in
 * float32 (a pad k of an odd K adds +0), taken while packing B: the bias
 * gradient of a layer, never rounded to bf16. Every driver sums the same
 * sequence, so the routes agree on it bit for bit.
 * If nonfinite is not NULL it is set to 1 when a value before ReLU is NaN or
 * ±Inf (else 0), as in the float32 driver. */
#ifndef VF_BF16_KERNELS_H
#define VF_BF16_KERNELS_H

#include <stdint.h>

#include "gemm_kernels.h"
#include "platform.h" /* VF_BFMLAL_ROUTE: the AArch64 route is built */

typedef struct vf_bf16_problem {
    VF_GEMM_PROBLEM_FIELDS
    int nthreads;                             /* team size, >= 1 */
    int amx_order;                            /* 1: TDPBF16PS's sums (generic only) */
    const float *mask; int64_t ldm;           /* (M×N) or NULL, see above */
    float *ones_row;                          /* (N) or NULL, see above */
    /* The AMX route only (the others ignore them), but for packed_b, which
     * the VDPBF16PS driver takes too, in its own layout. emit_a, with a plain
     * op(B): op(B) is also written, as it is packed, in the packed op(A)
     * layout of a product whose op(A) is this op(B) (K rows, N deep: the
     * input gradient d·Wᵀ after the weight gradient xᵀ·d reads the same
     * d), and *emitted is set; packed_a: op(A) already in that layout
     * (an emit_a of an earlier product), not packed again; packed_b:
     * op(B) already packed in the driver's op(B) layout (a layer's weights,
     * packed by the optimizer step that wrote them: vae_packed_weights.c),
     * not with ones_row or emit_a. */
    uint32_t *emit_a; int *emitted;
    const uint32_t *packed_a, *packed_b;
} vf_bf16_problem;

/* The product of a valid problem p on route impl (VF_BF16_AUTO or a
 * route; VF_ERR_ISA if this CPU cannot run it): fills p->nthreads and
 * p->amx_order, then runs the route's driver (csrc/bf16.c). */
int vf_bf16_run(int impl, vf_bf16_problem *p);

/* VF_OK or VF_ERR_NOMEM. The avx512 driver needs AVX512_BF16. The generic
 * one with amx_order emulates the AMX driver (the same bits). */
int vf_gemm_bf16_generic(const vf_bf16_problem *p);
int vf_gemm_bf16_avx512(const vf_bf16_problem *p);
/* The neon driver needs FEAT_BF16 (VF_CPU_BF16); the same bits as the two above. */
int vf_gemm_bf16_neon(const vf_bf16_problem *p);
/* The same product on AMX tiles (isa/gemm_amx.c, the avx512 set): needs
 * VF_CPU_AMX_BF16. TDPBF16PS sums in another order than VDPBF16PS (per 32
 * k: even and odd products apart, then C + (E + O): docs/precision.md),
 * so its bits differ from the two drivers above. */
int vf_gemm_bf16_amx_avx512(const vf_bf16_problem *p);
/* A layer's weight gradient w and input gradient x on one team of
 * w->nthreads (x->nthreads 1): x as one unit, w as its column units, taken
 * by whoever is free; each product's bits are its own driver's. With
 * w->emit_a (x->packed_a the same buffer), w's op(B) is packed and
 * emitted by a team loop first, so x reads its op(A) from there.
 * VF_ERR_ISA (nothing done) when w is not one that packs its op(B) column
 * by column (a small op(A)). */
int vf_gemm_bf16_amx_pair_avx512(const vf_bf16_problem *w, const vf_bf16_problem *x);
/* The same through the process's route (csrc/bf16.c): VF_ERR_ISA unless it
 * is AMX. */
int vf_bf16_run_pair(vf_bf16_problem *w, vf_bf16_problem *x, int nthreads);
/* Rows 16g .. 16g + 15 of a layer's W (rows × cols) packed as the AMX
 * driver packs op(B) = W (fwd) and op(B) = Wᵀ (bwd, or NULL): isa/amx_weights.c;
 * vf_amx_packed_b_words: the uint32s of such an op(B) of K rows, N columns. */
int64_t vf_amx_packed_b_words_avx512(int64_t K, int64_t N);
void vf_amx_pack_weight_rows_avx512(const float *W, int64_t rows, int64_t cols, int64_t g,
                                    uint32_t *fwd, uint32_t *bwd);
/* The same for the VDPBF16PS driver (isa/gemm_bf16.c, CPUs with AVX512_BF16). */
int64_t vf_bf16_packed_b_words_avx512(int64_t K, int64_t N);
void vf_bf16_pack_weight_rows_avx512(const float *W, int64_t rows, int64_t cols, int64_t g,
                                     uint32_t *fwd, uint32_t *bwd);


/* out[i] = VDPBF16PS lane (acc[i], a[i], b[i]) for i < n: the instruction
 * (avx512), BFMLALT + BFMLALB (neon) or the emulation (generic), for the
 * bit-for-bit tests. */
void vf_bf16_dot2_lanes_generic(int64_t n, const float *acc, const uint32_t *a,
                                const uint32_t *b, float *out);
void vf_bf16_dot2_lanes_avx512(int64_t n, const float *acc, const uint32_t *a,
                               const uint32_t *b, float *out);
void vf_bf16_dot2_lanes_neon(int64_t n, const float *acc, const uint32_t *a,
                             const uint32_t *b, float *out);

/* A chain of dense layers on M rows (the bf16 encoder: csrc/vae_bf16_encode.c)
 *
 *   H_0 = X (M×in_0, ldx),  H_l+1 = act_l(H_l · W_l + b_l),  Y = H_n (M×out_n-1, ldy)
 *
 * W_l (in_l×out_l, contiguous), every product as a vf_bf16_problem's on the
 * AMX route (same packing, sums and epilogue), so Y has the bits of n
 * products run one after the other. It runs 32 rows at a time, each
 * hidden block going from a product's epilogue straight into the next
 * product's packed bf16 operand, never to memory in float32. */
#define VF_BF16_CHAIN_MAX 8
typedef struct vf_bf16_chain_layer {
    const float *W, *bias; /* bias: out floats, or NULL */
    int64_t in, out;
    int relu;
} vf_bf16_chain_layer;
typedef struct vf_bf16_chain {
    int64_t M;
    const float *X; int64_t ldx;
    int n;                                        /* 1 .. VF_BF16_CHAIN_MAX */
    vf_bf16_chain_layer layer[VF_BF16_CHAIN_MAX]; /* in_l+1 = out_l */
    float *Y; int64_t ldy;
    int nthreads;                                 /* team size (vf_bf16_chain_run) */
} vf_bf16_chain;

/* The chain c on the process's bf16 route (csrc/bf16.c): VF_OK;
 * VF_ERR_NONFINITE if X holds a NaN or ±Inf (checked while it is
 * converted; Y is then unspecified); VF_ERR_NOMEM; VF_ERR_ISA when the
 * route is not AMX (the caller then runs the layers one by one). */
int vf_bf16_chain_run(vf_bf16_chain *c);
int vf_bf16_chain_amx_avx512(const vf_bf16_chain *c);

#endif
