# The per-layer "gradient final" callback of VAECore.shard_grads
# (vf_vae_set_grad_hook, csrc/vae_grad_hook.c): lets the MPI path start each
# bucket's Allreduce while the backward pass goes on (training/overlap.py).


cdef void _grad_ready(void *ctx, int layer) noexcept nogil:
    # called by the C backward on the calling thread, GIL released: take it
    with gil:
        (<_LayerHook>ctx).call(layer)


cdef class _LayerHook:
    """``with _LayerHook(core, on_layer):`` installs on_layer(l) as the
    core's grad hook for the block (nothing when on_layer is None). An
    exception from on_layer cannot cross the C frames: it is kept, the later
    calls are skipped, and it is raised when the block ends."""

    cdef VAECore core
    cdef object on_layer
    cdef object error

    def __cinit__(self, VAECore core, on_layer):
        self.core, self.on_layer, self.error = core, on_layer, None

    cdef int _set(self, vf_vae_grad_hook hook, void *ctx):
        # it waits for the model's writer lock: without the GIL, so that a
        # thread holding a read session (VAECore.reading) can finish it
        cdef vf_vae *m = self.core.m
        cdef int status
        with nogil:
            status = vf_vae_set_grad_hook(m, hook, ctx)
        return status

    cdef void call(self, int layer) noexcept:
        if self.error is not None:
            return
        try:
            self.on_layer(layer)
        except BaseException as exc:
            self.error = exc

    def __enter__(self):
        if self.on_layer is not None:
            check_status(self._set(_grad_ready, <void *>self), "set_grad_hook")
        return self

    def __exit__(self, *exc_info):
        if self.on_layer is not None:
            self._set(NULL, NULL)
            if self.error is not None and exc_info[0] is None:
                raise self.error
        return False
