# A C buffer of a VAECore as a writable ndarray without a copy
# (VAECore.buffer_array: the data-parallel exchange reduces the gradient and
# gathers the moments in place).


cdef class _FloatView:
    """A writable float32 buffer over memory owned by a VAECore, which it
    keeps alive (so the pointer cannot dangle)."""

    cdef object owner
    cdef float *ptr
    cdef Py_ssize_t shape[1]
    cdef Py_ssize_t strides[1]

    def __cinit__(self, owner, size_t address, Py_ssize_t n):
        self.owner = owner
        self.ptr = <float *>address
        self.shape[0] = n
        self.strides[0] = sizeof(float)

    def __getbuffer__(self, Py_buffer *buf, int flags):
        buf.buf = self.ptr
        buf.obj = self
        buf.len = self.shape[0] * sizeof(float)
        buf.readonly = 0
        buf.itemsize = sizeof(float)
        buf.format = b"f"
        buf.ndim = 1
        buf.shape = self.shape
        buf.strides = self.strides
        buf.suboffsets = NULL
        buf.internal = NULL

    def __releasebuffer__(self, Py_buffer *buf):
        pass
