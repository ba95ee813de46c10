/* test_dispersion.h: the dispersion modes' checks (tests/c/test_dispersion.c),
 * run by test_capi's main once per kernel set. */
#ifndef VF_TEST_DISPERSION_H
#define VF_TEST_DISPERSION_H

/* The checks under the active kernel set (named isa in the output); returns
 * the number of failures. Leaves the thread count as it found it. */
int dispersion_checks(const char *isa);

#endif
