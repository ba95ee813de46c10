/* adam_in_kernel.c: does Adam hide inside the weight-gradient product?
 *
 *   gcc -O2 -mavx512f -mfma -o /tmp/adam_in_kernel bench/adam_in_kernel.c -lm
 *   /tmp/adam_in_kernel BATCH ROUNDS FLUSH     (e.g. 32 200 0, then 32 200 1)
 *
 * A standalone AVX-512 microbenchmark (not part of the build) of the layer
 * 784 -> 400's weight gradient dW = xᵀ·dY (K = BATCH) with 12 × 32 register
 * tiles, followed by Adam on W (p, m, v), in four schedules:
 *   separate   the whole product, then one Adam pass over W (what the
 *              training step does: vae_update.c)
 *   epilogue   Adam on each tile's 24 vectors right after its K loop, the
 *              gradient taken from the accumulators
 *   prefetch   as epilogue, with the next tile's p, m, v prefetched before
 *              the K loop
 *   pipelined  Adam on the previous tile's vectors spread through this
 *              tile's K loop, one vector an iteration (so the core has
 *              independent work beside the FMAs)
 * and the product alone. FLUSH 1 reads 48 MiB between rounds, so W and the
 * moments start outside the caches (the training step's state at batch 32,
 * where the forward and backward products run between two updates);
 * FLUSH 0 leaves them warm. Prints the best and mean microseconds of each.
 *
 * Its product packs A with scalar loads and runs well under the production
 * kernel's rate, which leaves the FP pipes more room to hide Adam than the
 * production kernel would: a schedule that does not gain here will not gain
 * there. */
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MR 12
#define NR 32
#define IN 784
#define OUT 400

enum { SEPARATE, EPILOGUE, PREFETCH, PIPELINED, PRODUCT_ONLY, SCHEDULES };
static const char *NAMES[SCHEDULES] = {"separate", "epilogue", "prefetch", "pipelined",
                                       "product only"};

static double seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct {
    __m512 beta1, one_m_beta1, beta2, one_m_beta2, inv_sqrt_bc2, eps, step_size, decay;
} adam_consts;

/* One vector of Adam (the production kernel's formula, without its
 * finiteness hold-back) for gradient g at p, m, v. */
static inline void adam_vector(__m512 g, float *p, float *m, float *v, const adam_consts *c)
{
    const __m512 pd = _mm512_mul_ps(_mm512_loadu_ps(p), c->decay);
    const __m512 mn = _mm512_fmadd_ps(c->beta1, _mm512_loadu_ps(m), _mm512_mul_ps(c->one_m_beta1, g));
    const __m512 vn = _mm512_fmadd_ps(c->beta2, _mm512_loadu_ps(v),
                                      _mm512_mul_ps(c->one_m_beta2, _mm512_mul_ps(g, g)));
    const __m512 den = _mm512_fmadd_ps(_mm512_sqrt_ps(vn), c->inv_sqrt_bc2, c->eps);
    _mm512_storeu_ps(p, _mm512_fnmadd_ps(c->step_size, _mm512_div_ps(mn, den), pd));
    _mm512_storeu_ps(m, mn);
    _mm512_storeu_ps(v, vn);
}

/* Adam on vector q (0 .. 2·MR) of the tile at g (gradient), p, m, v, row stride OUT */
static inline void adam_tile_vector(int q, const float *g, float *p, float *m, float *v,
                                    const adam_consts *c)
{
    const int at = (q >> 1) * OUT + (q & 1) * 16;
    adam_vector(_mm512_loadu_ps(g + at), p + at, m + at, v + at, c);
}

/* C (MR×NR, row stride OUT) = apᵀ·b: ap holds the tile's MR rows of xᵀ
 * k-major (K×MR), b the tile's NR columns of dY (K rows, stride OUT);
 * with `epilogue`, Adam on the tile's vectors at p, m, v; with `prev` (the
 * pipelined schedule), Adam on the previous tile's vectors inside the K loop. */
static void tile(int K, const float *ap, const float *b, float *c, int epilogue, int prefetch,
                 float *p, float *m, float *v, const float *prev_g, float *prev_p,
                 float *prev_m, float *prev_v, const adam_consts *ac)
{
    __m512 acc[MR][2];
    for (int r = 0; r < MR; r++)
        acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    if (prefetch)
        for (int r = 0; r < MR; r++)
            for (int h = 0; h < NR; h += 16) {
                _mm_prefetch((const char *)(p + r * OUT + NR + h), _MM_HINT_T0);
                _mm_prefetch((const char *)(m + r * OUT + NR + h), _MM_HINT_T0);
                _mm_prefetch((const char *)(v + r * OUT + NR + h), _MM_HINT_T0);
            }
    for (int k = 0; k < K; k++) {
        const __m512 b0 = _mm512_loadu_ps(b + k * OUT), b1 = _mm512_loadu_ps(b + k * OUT + 16);
        for (int r = 0; r < MR; r++) {
            const __m512 a = _mm512_set1_ps(ap[k * MR + r]);
            acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
        }
        if (prev_g && k < 2 * MR)
            adam_tile_vector(k, prev_g, prev_p, prev_m, prev_v, ac);
    }
    for (int q = K; prev_g && q < 2 * MR; q++) /* K < 24: the rest after the loop */
        adam_tile_vector(q, prev_g, prev_p, prev_m, prev_v, ac);
    for (int r = 0; r < MR; r++) {
        _mm512_storeu_ps(c + r * OUT, acc[r][0]);
        _mm512_storeu_ps(c + r * OUT + 16, acc[r][1]);
        if (epilogue) {
            adam_vector(acc[r][0], p + r * OUT, m + r * OUT, v + r * OUT, ac);
            adam_vector(acc[r][1], p + r * OUT + 16, m + r * OUT + 16, v + r * OUT + 16, ac);
        }
    }
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s BATCH ROUNDS FLUSH\n", argv[0]);
        return 2;
    }
    const int B = atoi(argv[1]), rounds = atoi(argv[2]), flush = atoi(argv[3]);
    const int M = IN / MR * MR; /* whole tiles only: 780 of the 784 rows */
    const size_t n = (size_t)IN * OUT;
    float *x = aligned_alloc(64, sizeof(float) * (size_t)B * IN);
    float *dy = aligned_alloc(64, sizeof(float) * (size_t)B * OUT);
    float *ap = aligned_alloc(64, sizeof(float) * (size_t)B * MR);
    float *g = aligned_alloc(64, 4 * n), *p = aligned_alloc(64, 4 * n);
    float *m = aligned_alloc(64, 4 * n), *v = aligned_alloc(64, 4 * n);
    srand(1);
    for (size_t i = 0; i < (size_t)B * IN; i++)
        x[i] = (float)(rand() % 1000) / 1000.f;
    for (size_t i = 0; i < (size_t)B * OUT; i++)
        dy[i] = (float)(rand() % 1000 - 500) / 1e5f;
    for (size_t i = 0; i < n; i++)
        p[i] = (float)(rand() % 1000 - 500) / 1e4f, m[i] = v[i] = 0.f;
    const size_t flush_bytes = (size_t)48 << 20;
    char *fb = malloc(flush_bytes);
    memset(fb, 1, flush_bytes);
    const adam_consts ac = {_mm512_set1_ps(.9f), _mm512_set1_ps(.1f), _mm512_set1_ps(.999f),
                            _mm512_set1_ps(.001f), _mm512_set1_ps(1.2f), _mm512_set1_ps(1e-8f),
                            _mm512_set1_ps(1e-3f), _mm512_set1_ps(1.f)};
    double best[SCHEDULES], total[SCHEDULES] = {0};
    for (int s = 0; s < SCHEDULES; s++)
        best[s] = 1e9;
    for (int round = 0; round < rounds; round++)
        for (int s = 0; s < SCHEDULES; s++) {
            if (flush) {
                volatile char sink = 0;
                for (size_t i = 0; i < flush_bytes; i += 64)
                    sink += fb[i];
                (void)sink;
            }
            const double t0 = seconds();
            for (int i0 = 0; i0 < M; i0 += MR) {
                for (int k = 0; k < B; k++)
                    for (int r = 0; r < MR; r++)
                        ap[k * MR + r] = x[k * IN + i0 + r];
                for (int j0 = 0; j0 < OUT; j0 += NR) {
                    const size_t at = (size_t)i0 * OUT + j0, before = at - NR;
                    const int prev = s == PIPELINED && j0 > 0;
                    tile(B, ap, dy + j0, g + at, s == EPILOGUE || s == PREFETCH, s == PREFETCH,
                         p + at, m + at, v + at, prev ? g + before : NULL, p + before,
                         m + before, v + before, &ac);
                }
                if (s == PIPELINED) /* the row panel's last tile */
                    for (int q = 0; q < 2 * MR; q++) {
                        const size_t at = (size_t)i0 * OUT + OUT - NR;
                        adam_tile_vector(q, g + at, p + at, m + at, v + at, &ac);
                    }
            }
            if (s == SEPARATE)
                for (size_t i = 0; i < (size_t)M * OUT; i += 16)
                    adam_vector(_mm512_load_ps(g + i), p + i, m + i, v + i, &ac);
            const double dt = seconds() - t0;
            best[s] = dt < best[s] ? dt : best[s];
            total[s] += dt;
        }
    printf("batch %d, %s caches, best / mean us:", B, flush ? "flushed" : "warm");
    for (int s = 0; s < SCHEDULES; s++)
        printf("  %s %.1f / %.1f", NAMES[s], best[s] * 1e6, total[s] / rounds * 1e6);
    printf("\n");
    return 0;
}
