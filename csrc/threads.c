/* Thread count: a thin layer over OpenMP so that a build without OpenMP
 * still links (and runs single-threaded). */
#include "vaefast.h"

#ifdef _OPENMP
#include <omp.h>
#endif

void vf_set_num_threads(int n)
{
    if (n < 1)
        n = 1;
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

int vf_get_num_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}
