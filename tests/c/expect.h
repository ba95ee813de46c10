/* expect.h: the C tests' soft assertion. EXPECT(cond) prints the failing
 * condition with its place and counts it in the including file's own
 * `static int failures` (each test file keeps its own count). */
#ifndef VF_TESTS_EXPECT_H
#define VF_TESTS_EXPECT_H

#include <stdio.h>

#define EXPECT(cond)                                                        \
    do {                                                                    \
        if (!(cond)) {                                                      \
            printf("  FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);        \
            ++failures;                                                     \
        }                                                                   \
    } while (0)

#endif
