/* vae_packed_weights.c: a bf16 training call's large weight matrices,
 * packed for the AMX or VDPBF16PS route by the optimizer step that writes
 * them.
 *
 * On the AMX route a bf16 product converts its op(B) from float32 to tiles
 * each time, so every step read and converted a layer's W twice: for the
 * forward x·W and for the input gradient d·Wᵀ. For scVI's 128×4000
 * decoder output on one thread that was 127 of the forward's 292 us and
 * 106 of the input gradient's 227. Inside a training call the optimizer
 * step is the only writer of the weights, so it packs them instead: a unit
 * of its pass updates 16 rows of W (Adam, the same kernel and bits as the
 * flat pass) and at once packs those rows in both layouts while they are
 * in the core's cache (isa/amx_weights.c: the driver's own packers, so the
 * same bytes). The next step's products take them as packed_b.
 *
 * They are used only while provably current: every acquisition of the
 * model's write lock is counted (vae_lock_write), and the packed forms
 * hold the count the next step's acquisition will have if no other writer
 * comes between. A training call turns packing on for its own steps only
 * (vae_packed_begin / vae_packed_end), all under the write lock. */
#include <stdlib.h>

#include "bf16_kernels.h"
#include "kernels.h"
#include "platform.h"
#include "threads.h"
#include "vae_internal.h"

#define VAE_PACKED_MIN 65536 /* W entries: a smaller layer packs itself, a few us */
#define VAE_PACKED_CHUNK 16384 /* floats per unit of the rest of the buffers (as optim.c) */
#define VAE_PACKED_PAR_MIN 65536 /* parameters: below this the pass stays on the caller */
#define VAE_LAYER_SLOTS (2 * VF_VAE_MAX_LAYERS + 2)

/* One unit of the optimizer pass: parameters [lo, hi), and when layer >= 0
 * they are rows 16g .. of that layer's W, packed after their update. */
typedef struct packed_unit {
    int64_t lo, hi, g;
    int layer;
} packed_unit;

struct vae_packed {
    uint32_t *buf; /* every packed layer's two layouts */
    size_t cap;    /* uint32s in buf */
    int64_t fwd[VAE_LAYER_SLOTS], bwd[VAE_LAYER_SLOTS]; /* offsets in buf, -1: none */
    int on;          /* this training call's optimizer packs */
    const struct packed_layout *layout; /* whose driver's layout */
    uint64_t stamp;  /* the write-lock count under which they are current; 0: never */
    packed_unit *units; /* the pass's units, planned by vae_packed_begin */
    int64_t units_cap, n_units;
};

/* A bf16 route whose products take packed weights: the size of its
 * driver's packed op(B) and the packer of a unit's rows, both from the
 * driver's own files, so each layout is stated once. */
typedef struct packed_layout {
    int route; /* vf_bf16_auto_impl() */
    int64_t (*words)(int64_t K, int64_t N);
    void (*pack_rows)(const float *W, int64_t rows, int64_t cols, int64_t g, uint32_t *fwd,
                      uint32_t *bwd);
} packed_layout;

/* AMX and VDPBF16PS (x86-64; AArch64's BFMLAL driver packs for itself) */
static const packed_layout LAYOUTS[] = {
#if defined(__x86_64__)
    {VF_BF16_AMX, vf_amx_packed_b_words_avx512, vf_amx_pack_weight_rows_avx512},
    {VF_BF16_NATIVE, vf_bf16_packed_b_words_avx512, vf_bf16_pack_weight_rows_avx512},
#endif
    {0, NULL, NULL},
};

/* The layout of the process's bf16 route, NULL when it packs for itself. */
static const packed_layout *packing_layout(void)
{
    const int route = vf_bf16_auto_impl();
    for (const packed_layout *l = LAYOUTS; l->words; ++l)
        if (l->route == route)
            return l;
    return NULL;
}

/* 1 if layer l's products run through vae_layer_forward / backward_layer
 * with its whole W as op(B) and it is large enough to be worth packing. */
static int packable(const vf_vae *m, int l, int first_sparse)
{
    const vf_vae_layer *L = &m->layers[l];
    return !(l == 0 && first_sparse) && !L->cond && L->in * L->out >= VAE_PACKED_MIN;
}

/* The pass's units: each packed layer's 16-row groups first (the larger
 * ones, so the team's last units are short), then the rest of the buffer
 * in chunks, into p->units. VF_ERR_NOMEM if out of memory. */
static int plan_units(vf_vae *m)
{
    vae_packed *p = m->packed;
    int64_t n = 0, rest = m->n_params;
    for (int l = 0; l < m->n_layers; ++l)
        if (p->fwd[l] >= 0) {
            n += (m->layers[l].in + 15) / 16;
            rest -= m->layers[l].in * m->layers[l].out;
        }
    n += rest / VAE_PACKED_CHUNK + m->n_layers + 1; /* a short chunk before each W and at the end */
    if (n > p->units_cap) {
        packed_unit *u = realloc(p->units, (size_t)n * sizeof *u);
        if (!u)
            return VF_ERR_NOMEM;
        p->units = u, p->units_cap = n;
    }
    packed_unit *u = p->units;
    int64_t k = 0;
    for (int l = 0; l < m->n_layers; ++l) {
        const vf_vae_layer *L = &m->layers[l];
        for (int64_t g = 0; p->fwd[l] >= 0 && 16 * g < L->in; ++g) {
            const int64_t r1 = 16 * g + 16 < L->in ? 16 * g + 16 : L->in;
            u[k++] = (packed_unit){L->w + 16 * g * L->out, L->w + r1 * L->out, g, l};
        }
    }
    int64_t at = 0; /* the gaps between packed Ws, in buffer order */
    for (;;) {
        int64_t next = m->n_params, skip = m->n_params;
        for (int l = 0; l < m->n_layers; ++l)
            if (p->fwd[l] >= 0 && m->layers[l].w >= at && m->layers[l].w < next)
                next = m->layers[l].w, skip = next + m->layers[l].in * m->layers[l].out;
        for (int64_t i = at; i < next; i += VAE_PACKED_CHUNK)
            u[k++] = (packed_unit){i, next - i < VAE_PACKED_CHUNK ? next : i + VAE_PACKED_CHUNK,
                                   0, -1};
        if (next == m->n_params)
            break;
        at = skip;
    }
    p->n_units = k;
    return VF_OK;
}

void vae_packed_begin(vf_vae *m, int bf16, int adam, int first_sparse)
{
    vae_packed *p = m->packed;
    if (p)
        p->on = 0, p->stamp = 0;
    const packed_layout *layout = packing_layout();
    if (!bf16 || !adam || !layout)
        return;
    if (!p) {
        if (!(p = calloc(1, sizeof *p)))
            return; /* the products pack themselves */
        m->packed = p;
    }
    p->layout = layout;
    int64_t need = 0;
    for (int l = 0; l < m->n_layers; ++l) {
        const vf_vae_layer *L = &m->layers[l];
        p->fwd[l] = p->bwd[l] = -1;
        if (!packable(m, l, first_sparse))
            continue;
        p->fwd[l] = need;
        need += layout->words(L->in, L->out);
        if (l > 0) { /* layer 0 has no input gradient */
            p->bwd[l] = need;
            need += layout->words(L->out, L->in);
        }
    }
    if (need == 0)
        return;
    if ((size_t)need > p->cap) {
        uint32_t *buf = vf_os_aligned_alloc(64, (size_t)need * sizeof(uint32_t));
        if (!buf)
            return;
        vf_os_aligned_free(p->buf);
        p->buf = buf, p->cap = (size_t)need;
    }
    p->on = plan_units(m) == VF_OK; /* the layout holds for the whole call */
}

void vae_packed_end(vf_vae *m)
{
    if (m->packed)
        m->packed->on = 0, m->packed->stamp = 0;
}

void vae_packed_free(vf_vae *m)
{
    if (!m->packed)
        return;
    vf_os_aligned_free(m->packed->buf);
    free(m->packed->units);
    free(m->packed);
    m->packed = NULL;
}

int vae_packed_on(const vf_vae *m)
{
    return m->packed && m->packed->on;
}

const uint32_t *vae_packed_weights(const vf_vae *m, const vf_vae_layer *L, int input_grad)
{
    const vae_packed *p = m->packed;
    /* m->bf16: a bf16 training step under the write lock (never inference) */
    if (!m->bf16 || !p || !p->on || p->stamp != m->write_locks)
        return NULL;
    for (int l = 0; l < m->n_layers; ++l)
        if (m->layers[l].w == L->w) {
            const int64_t off = input_grad ? p->bwd[l] : p->fwd[l];
            return off < 0 ? NULL : p->buf + off;
        }
    return NULL;
}

typedef struct packed_adam_call {
    vf_vae *m;
    const packed_unit *units;
    const vf_adam_consts *c;
    const vf_elementwise_kernels *k;
} packed_adam_call;

/* Unit u's rows of its layer's W in both layouts, from the weights as
 * stored (a held-back entry keeps its old value). */
static void pack_unit_rows(const vf_vae *m, const packed_unit *u)
{
    const vae_packed *p = m->packed;
    const vf_vae_layer *L = &m->layers[u->layer];
    uint32_t *fwd = p->buf + p->fwd[u->layer];
    uint32_t *bwd = p->bwd[u->layer] < 0 ? NULL : p->buf + p->bwd[u->layer];
    p->layout->pack_rows(m->params + L->w, L->in, L->out, u->g, fwd, bwd);
}

static int64_t packed_adam_units(const void *ctx, int64_t lo, int64_t hi)
{
    const packed_adam_call *c = ctx;
    vf_vae *m = c->m;
    int64_t held = 0;
    for (int64_t i = lo; i < hi; ++i) {
        const packed_unit *u = &c->units[i];
        held += c->k->adam_chunk(u->hi - u->lo, m->params + u->lo, m->grads + u->lo,
                                 m->m1 + u->lo, m->m2 + u->lo, c->c);
        if (u->layer >= 0)
            pack_unit_rows(m, u);
    }
    return held;
}

int vae_packed_adam(vf_vae *m, const vf_adam_consts *c)
{
    const vae_packed *p = m->packed;
    const packed_adam_call call = {m, p->units, c, vf_active()->elementwise};
    const int64_t held = vf_team_for(vf_threads_for(m->n_params, VAE_PACKED_PAR_MIN),
                                     p->n_units, 1, packed_adam_units, &call);
    m->packed->stamp = m->write_locks + 1; /* current until someone else writes */
    return held ? VF_ERR_NONFINITE : VF_OK;
}

int vae_packed_adam_part(vf_vae *m, const vf_adam_consts *c, int layer, int part)
{
    const vae_packed *p = m->packed;
    const packed_adam_call call = {m, p->units, c, vf_active()->elementwise};
    int64_t held = 0;
    for (int64_t i = 0; i < p->n_units; ++i)
        if ((p->units[i].layer == layer) == (part == 1))
            held += packed_adam_units(&call, i, i + 1);
    return held ? VF_ERR_NONFINITE : VF_OK;
}

void vae_packed_mark_current(vf_vae *m)
{
    if (vae_packed_on(m))
        m->packed->stamp = m->write_locks;
}
