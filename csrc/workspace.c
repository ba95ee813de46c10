#include "workspace.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct {
    float *data;
    size_t capacity; /* floats */
} vf_workspace;

static pthread_key_t vf_workspace_key;
static pthread_once_t vf_workspace_once = PTHREAD_ONCE_INIT;

static void vf_workspace_free(void *ptr)
{
    vf_workspace *ws = ptr;
    free(ws->data);
    free(ws);
}

static void vf_workspace_make_key(void)
{
    (void)pthread_key_create(&vf_workspace_key, vf_workspace_free);
}

float *vf_workspace_get(size_t n_floats)
{
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
    if (ws->capacity < n_floats) {
        /* aligned_alloc wants the size to be a multiple of the alignment */
        size_t bytes = (n_floats * sizeof(float) + 63) / 64 * 64;
        float *fresh = aligned_alloc(64, bytes);
        if (!fresh)
            return NULL;
        free(ws->data);
        ws->data = fresh;
        ws->capacity = bytes / sizeof(float);
    }
    return ws->data;
}
