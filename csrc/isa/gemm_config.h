/* gemm_config.h: the GEMM's configuration, one block per kernel set.
 *
 *   VF_MR × VF_NR   the full register tile (rows of A × columns of B)
 *   VF_KC, VF_MC    K and M cache blocks: a KC×NR panel of B stays in L1,
 *                   an MC×KC block of A in L2
 *   VF_B_IN_PLACE_ROWS  products of at most this many rows read B in place
 *                   (too little reuse to repay packing it)
 *   VF_A_IN_PLACE   1: narrow products read A's rows in place (no packing);
 *                   0: A is always packed (the tiles have no in-place copy)
 *   VF_EDGE_ROWS    edge kernels exist for every multiple of this up to MR
 *                   (rows are a compile-time constant of a kernel)
 *   VF_WIDE(X)      shape-specific whole-row kernels, one X(...) per entry:
 *                   X(n_lo, n_hi, nv, nh, rows) = products with n_lo < N <=
 *                   n_hi run `rows` rows at a time across all N columns
 *                   with nv vectors and nh half vectors per row (instead of
 *                   a full tile plus a narrow edge tile that reads A again)
 *
 * The SIMD sets' tiles are nv vectors + nh half vectors wide (isa/gemm_ukernel.h);
 * NR must be 2·VW or 3·VW. The generic set has its own scalar reference kernel. */
#ifndef VF_ISA_GEMM_CONFIG_H
#define VF_ISA_GEMM_CONFIG_H

#include "isa/isa.h"

#if VF_SIMD_AVX512
/* 12×32: 24 zmm accumulators + 2 for B + 1 broadcast of 32 registers */
#define VF_MR 12
#define VF_NR 32
#define VF_KC 512
#define VF_MC 384
/* 128: on Zen 4, 64-128-row products ran 5-9 % faster than with B packed
 * (48), at 1 and 2 threads, and a 64-row encode after a 10 ms idle gap
 * 16 % faster (packing read a cold W, strided); 160-256 rows gained little */
#define VF_B_IN_PLACE_ROWS 128
#define VF_A_IN_PLACE 1
#define VF_EDGE_ROWS 4
#define VF_FOR_EDGE_ROWS(X) X(4) X(8) X(12)
/* N = 40 (the encoder head, 2·latent): 2 zmm + 1 ymm per row, 8 rows
 * (24 + 3 + 1 registers); on Zen 4 a zmm FMA issues as two ymm halves, so
 * every issued lane is a useful one */
#define VF_WIDE(X) X(32, 40, 2, 1, 8)

#elif VF_SIMD_AVX2
/* 6×16: 12 ymm accumulators + 2 for B + 1 broadcast of 16 registers */
#define VF_MR 6
#define VF_NR 16
#define VF_KC 384 /* 784 = 3 × 264; 2-3% faster than 256 at the VAE's shapes */
#define VF_MC 144
#define VF_B_IN_PLACE_ROWS 48 /* batch 32: 0.80 -> 1.0× OpenBLAS */
#define VF_A_IN_PLACE 1
#define VF_EDGE_ROWS 1
#define VF_FOR_EDGE_ROWS(X) X(1) X(2) X(3) X(4) X(5) X(6)
#define VF_WIDE(X)

#elif VF_SIMD_NEON
/* 8×12: 24 q accumulators + 3 for B + 2 for A (8 rows, FMA by lane) of 32
 * registers. KC·NR of B (12 KiB) and KC·MR of A (8 KiB) share a 32 KiB L1
 * (Cortex-A72; 64 KiB on Neoverse N1/V1). Not tuned on hardware. */
#define VF_MR 8
#define VF_NR 12
#define VF_KC 256
#define VF_MC 192
#define VF_NC 4080 /* a multiple of 12 */
#define VF_B_IN_PLACE_ROWS 48
/* A in place would be gathered 4 rows lda apart into one vector per k: 8
 * scalar loads beside 24 accumulators and 3 B vectors spilled (24 FMAs in
 * 46 instructions, 6-8 stack accesses). Packed, the k loop has 24 FMAs in
 * 31 and no spill (.ci/fma_density.py) */
#define VF_A_IN_PLACE 0
#define VF_EDGE_ROWS 4 /* = the 4 rows of A one lane-FMA group reads */
#define VF_FOR_EDGE_ROWS(X) X(4) X(8)
#define VF_WIDE(X)

#else
/* scalar reference: 4×16, the j loop vectorised by the compiler */
#define VF_MR 4
#define VF_NR 16
#define VF_KC 256
#define VF_MC 128
#define VF_B_IN_PLACE_ROWS (4 * VF_MR)
#define VF_A_IN_PLACE 1
#endif

#ifndef VF_NC
#define VF_NC 4096 /* columns per outer block: a multiple of NR */
#endif
_Static_assert(VF_NC % VF_NR == 0, "NC must hold whole NR-wide panels");

#endif
