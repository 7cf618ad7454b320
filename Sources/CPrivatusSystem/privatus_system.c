#define _GNU_SOURCE
#include "privatus_system.h"

#include <fcntl.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

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

int privatus_pipe_cloexec(int fds[2]) {
#if defined(__linux__)
    return pipe2(fds, O_CLOEXEC);
#else
    if (pipe(fds) != 0) return -1;
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    return 0;
#endif
}

int privatus_ppoll(struct pollfd *fds, unsigned long count, long long timeout_ns) {
    struct timespec timeout = {(time_t)(timeout_ns / 1000000000LL), (long)(timeout_ns % 1000000000LL)};
    return ppoll(fds, (nfds_t)count, timeout_ns < 0 ? NULL : &timeout, NULL);
}
