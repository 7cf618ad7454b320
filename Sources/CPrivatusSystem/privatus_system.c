#include "privatus_system.h"

#include <stdlib.h> /* defines __GLIBC__ on glibc systems */

#if defined(__GLIBC__)
#include <malloc.h>

int privatus_tune_allocator(void) {
    int mmap = mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
    int trim = mallopt(M_TRIM_THRESHOLD, 16 * 1024 * 1024);
    return mmap == 1 && trim == 1;
}
#else
int privatus_tune_allocator(void) { return 0; }
#endif
