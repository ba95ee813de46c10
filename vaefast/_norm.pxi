# Binding of batch and layer normalisation (csrc/norm.c). Arrays arrive
# validated, C-contiguous and non-empty from vaefast/ops/_norm.py.


def batch_norm_train_into(const float[:, ::1] y, const float[::1] gamma,
                          const float[::1] beta, float eps, float momentum, int act,
                          float[:, ::1] out, float[:, ::1] xhat, float[::1] inv_std,
                          float[::1] running_mean, float[::1] running_var):
    """out, xhat (M×N), inv_std (N) <- batch norm of y in training; the
    running statistics (N, or None) are updated in place."""
    cdef int64_t M = y.shape[0], N = y.shape[1]
    cdef float *rm = &running_mean[0] if running_mean is not None else NULL
    cdef float *rv = &running_var[0] if running_var is not None else NULL
    cdef int status
    with nogil:
        status = vf_batch_norm_train(M, N, &y[0, 0], N, &gamma[0], &beta[0], eps, momentum,
                                     act, &out[0, 0], N, &xhat[0, 0], N, &inv_std[0], rm, rv)
    check_status(status, "batch_norm")


def batch_norm_infer_into(const float[:, ::1] y, const float[::1] gamma,
                          const float[::1] beta, const float[::1] running_mean,
                          const float[::1] running_var, float eps, int act,
                          float[:, ::1] out):
    """out (M×N) <- batch norm of y with the running statistics."""
    cdef int64_t M = y.shape[0], N = y.shape[1]
    cdef int status
    with nogil:
        status = vf_batch_norm_infer(M, N, &y[0, 0], N, &gamma[0], &beta[0],
                                     &running_mean[0], &running_var[0], eps, act,
                                     &out[0, 0], N)
    check_status(status, "batch_norm")


def batch_norm_backward_into(const float[:, ::1] dz, const float[:, ::1] xhat,
                             const float[::1] gamma, const float[::1] inv_std,
                             float[:, ::1] dy, float[::1] dgamma, float[::1] dbeta):
    """dy (M×N), dgamma, dbeta (N) <- backward of batch norm from dz."""
    cdef int64_t M = dz.shape[0], N = dz.shape[1]
    cdef int status
    with nogil:
        status = vf_batch_norm_backward(M, N, &dz[0, 0], N, &xhat[0, 0], N, &gamma[0],
                                        &inv_std[0], &dy[0, 0], N, &dgamma[0], &dbeta[0])
    check_status(status, "batch_norm_backward")


def layer_norm_forward_into(const float[:, ::1] y, float eps, int act, float[:, ::1] out,
                            float[:, ::1] xhat, float[::1] inv_std):
    """out, xhat (M×N), inv_std (M) <- layer norm (no affine) of y."""
    cdef int64_t M = y.shape[0], N = y.shape[1]
    cdef int status
    with nogil:
        status = vf_layer_norm_forward(M, N, &y[0, 0], N, eps, act, &out[0, 0], N,
                                       &xhat[0, 0], N, &inv_std[0])
    check_status(status, "layer_norm")


def layer_norm_backward_into(const float[:, ::1] dz, const float[:, ::1] xhat,
                             const float[::1] inv_std, float[:, ::1] dy):
    """dy (M×N) <- backward of layer norm from dz."""
    cdef int64_t M = dz.shape[0], N = dz.shape[1]
    cdef int status
    with nogil:
        status = vf_layer_norm_backward(M, N, &dz[0, 0], N, &xhat[0, 0], N, &inv_std[0],
                                        &dy[0, 0], N)
    check_status(status, "layer_norm_backward")
