/* amx_weights.c: a layer's weights packed for the AMX route's two products
 * that read them (csrc/vae_packed_weights.c), 16 rows at a time, by the
 * same packers the driver runs (isa/amx_tiles.h), so the bytes are the
 * ones the products would pack themselves. Compiled in the avx512 set
 * only, like gemm_amx.c. */
#include <stdint.h>

#include "bf16_kernels.h"
#include "isa/isa.h"
#include "vaefast.h"

#if VF_SIMD_AVX512 && VF_AMX_ROUTE
#include "isa/amx_tiles.h"

int64_t VF_FN(vf_amx_packed_b_words)(int64_t K, int64_t N)
{
    return (K + 31) / 32 * ((N + 15) / 16) * AMX_TILE; /* 16×16-pair tiles, K in 32s */
}

/* Rows 16g .. 16g + 15 of W (rows × cols, row-major; the layer's in × out)
 * into
 *   fwd: op(B) = W of the forward x·W (K = rows, N = cols), their pair-rows
 *        (the last group also the zero pair-rows after it, up to 32·nq);
 *   bwd: op(B) = Wᵀ of the input gradient d·Wᵀ (K = cols, N = rows), their
 *        16-column group g (NULL: not wanted).
 * Either layout covers all of W once every group g < ceil(rows/16) ran. */
void VF_FN(vf_amx_pack_weight_rows)(const float *W, int64_t rows, int64_t cols, int64_t g,
                                    uint32_t *fwd, uint32_t *bwd)
{
    const int cvt = vf_bf16_native_supported();
    const vf_bf16_problem plain = {.K = rows, .N = cols, .B = W, .ldb = cols};
    const int64_t nq = (rows + 31) / 32, last = (rows + 15) / 16 - 1;
    pack_b_rows(&plain, 16 * g, g == last ? 32 * nq : 16 * g + 16, nq, fwd, cvt);
    if (bwd) {
        const vf_bf16_problem trans = {.K = cols, .N = rows, .B = W, .ldb = cols, .trans_b = 1};
        const int64_t nqt = (cols + 31) / 32;
        pack_bt_group(&trans, g, nqt, bwd + g * nqt * AMX_TILE, cvt);
    }
}

#elif VF_SIMD_AVX512
/* A build without the AMX route: never called (vf_bf16_amx_supported is 0). */
int64_t VF_FN(vf_amx_packed_b_words)(int64_t K, int64_t N)
{
    (void)K, (void)N;
    return 0;
}

void VF_FN(vf_amx_pack_weight_rows)(const float *W, int64_t rows, int64_t cols, int64_t g,
                                    uint32_t *fwd, uint32_t *bwd)
{
    (void)W, (void)rows, (void)cols, (void)g, (void)fwd, (void)bwd;
}
#else
typedef int vf_amx_weights_unused; /* AMX: the avx512 set only */
#endif
