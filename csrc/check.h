/* check.h: the argument checks every C entry point shares (internal).
 *
 * One rule for a stored matrix, whatever the caller: `rows` rows of `cols`
 * floats at row stride ld (in floats), starting at ptr. */
#ifndef VF_CHECK_H
#define VF_CHECK_H

#include <stdint.h>

/* VF_ERR_ARG: a negative size, or ld < cols (ld >= 1 when rows > 1);
 * VF_ERR_OVERFLOW: the matrix's extent in bytes does not fit in int64;
 * VF_ERR_NULL: ptr is NULL for a non-empty matrix (an empty one may be NULL).
 * Otherwise VF_OK. */
int vf_check_matrix(const void *ptr, int64_t rows, int64_t cols, int64_t ld);

/* vf_check_matrix for an operand that must be present even when empty:
 * VF_ERR_NULL if ptr is NULL. */
int vf_check_present(const void *ptr, int64_t rows, int64_t cols, int64_t ld);

/* Return the status of expr from the enclosing function unless it is VF_OK. */
#define VF_TRY(expr)             \
    do {                         \
        int vf_status_ = (expr); \
        if (vf_status_ != VF_OK) \
            return vf_status_;   \
    } while (0)

#endif
