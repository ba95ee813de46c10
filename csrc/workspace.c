#include "workspace.h"

#include <stdint.h>
#include <stdlib.h>

#include "platform.h"

typedef struct {
    float *data[VF_WORKSPACE_SLOTS];
    size_t capacity[VF_WORKSPACE_SLOTS]; /* floats */
} vf_workspace;

static vf_os_tls vf_workspace_key;
static vf_os_once vf_workspace_once = VF_OS_ONCE_INIT;

static void vf_workspace_free(void *ptr)
{
    vf_workspace *ws = ptr;
    for (int i = 0; i < VF_WORKSPACE_SLOTS; ++i)
        vf_os_aligned_free(ws->data[i]);
    free(ws);
}

static void vf_workspace_make_key(void)
{
    (void)vf_os_tls_create(&vf_workspace_key, vf_workspace_free);
}

float *vf_workspace_get_slot(int slot, size_t n_floats)
{
    if (slot < 0 || slot >= VF_WORKSPACE_SLOTS)
        return NULL;
    if (n_floats == 0)
        n_floats = 1;
    if (n_floats > (SIZE_MAX - 63) / sizeof(float))
        return NULL;
    vf_os_once_run(&vf_workspace_once, vf_workspace_make_key);
    vf_workspace *ws = vf_os_tls_get(vf_workspace_key);
    if (!ws) {
        ws = calloc(1, sizeof *ws);
        if (!ws || vf_os_tls_set(vf_workspace_key, ws) != 0) {
            free(ws);
            return NULL;
        }
    }
    if (ws->capacity[slot] < n_floats) {
        size_t bytes = (n_floats * sizeof(float) + 63) / 64 * 64; /* what the block holds */
        float *fresh = vf_os_aligned_alloc(64, bytes);
        if (!fresh)
            return NULL;
        vf_os_aligned_free(ws->data[slot]);
        ws->data[slot] = fresh;
        ws->capacity[slot] = bytes / sizeof(float);
    }
    return ws->data[slot];
}
