#include "workspace.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct {
    float *data[VF_WORKSPACE_SLOTS];
    size_t capacity[VF_WORKSPACE_SLOTS]; /* floats */
} vf_workspace;

static pthread_key_t vf_workspace_key;
static pthread_once_t vf_workspace_once = PTHREAD_ONCE_INIT;

static void vf_workspace_free(void *ptr)
{
    vf_workspace *ws = ptr;
    for (int i = 0; i < VF_WORKSPACE_SLOTS; ++i)
        free(ws->data[i]);
    free(ws);
}

static void vf_workspace_make_key(void)
{
    (void)pthread_key_create(&vf_workspace_key, vf_workspace_free);
}

float *vf_workspace_get_slot(int slot, size_t n_floats)
{
    if (slot < 0 || slot >= VF_WORKSPACE_SLOTS)
        return NULL;
    if (n_floats == 0)
        n_floats = 1;
    if (n_floats > (SIZE_MAX - 63) / sizeof(float))
        return NULL;
    pthread_once(&vf_workspace_once, vf_workspace_make_key);
    vf_workspace *ws = pthread_getspecific(vf_workspace_key);
    if (!ws) {
        ws = calloc(1, sizeof *ws);
        if (!ws || pthread_setspecific(vf_workspace_key, ws) != 0) {
            free(ws);
            return NULL;
        }
    }
    if (ws->capacity[slot] < n_floats) {
        /* aligned_alloc wants the size to be a multiple of the alignment */
        size_t bytes = (n_floats * sizeof(float) + 63) / 64 * 64;
        float *fresh = aligned_alloc(64, bytes);
        if (!fresh)
            return NULL;
        free(ws->data[slot]);
        ws->data[slot] = fresh;
        ws->capacity[slot] = bytes / sizeof(float);
    }
    return ws->data[slot];
}
