#include "vaefast.h"

const char *vf_status_string(int status)
{
    switch (status) {
    case VF_OK: return "ok";
    case VF_ERR_ARG: return "invalid argument";
    case VF_ERR_NULL: return "required pointer is NULL";
    case VF_ERR_OVERFLOW: return "size arithmetic overflows";
    case VF_ERR_NOMEM: return "out of memory";
    case VF_ERR_ISA: return "kernel set not available on this CPU or build";
    case VF_ERR_NONFINITE: return "non-finite value (NaN or Inf)";
    default: return "unknown error";
    }
}
