/* check.c: see check.h. */
#include "check.h"

#include "vaefast.h"

int vf_check_present(const void *ptr, int64_t rows, int64_t cols, int64_t ld)
{
    return ptr ? vf_check_matrix(ptr, rows, cols, ld) : VF_ERR_NULL;
}

int vf_check_matrix(const void *ptr, int64_t rows, int64_t cols, int64_t ld)
{
    if (rows < 0 || cols < 0 || ld < cols || (rows > 1 && ld < 1))
        return VF_ERR_ARG;
    if (rows == 0 || cols == 0)
        return VF_OK;
    if (!ptr)
        return VF_ERR_NULL;
    if (rows > 1 && rows - 1 > (INT64_MAX / 4 - cols) / ld) /* 4 bytes a float */
        return VF_ERR_OVERFLOW;
    return VF_OK;
}
