#ifndef PRIVATUS_SYSTEM_H
#define PRIVATUS_SYSTEM_H

#include <poll.h>

/// Keeps glibc's allocator from returning freed memory to the kernel after every large
/// allocation: requests below 4 MiB are served from the heap rather than mmap, and up to
/// 16 MiB of free memory at the top of the heap is kept. Without it, each 1 MiB AEAD seal
/// (swift-crypto allocates the ciphertext and the sealed box) page-faults ~480 fresh pages.
/// Returns 1 when both settings were applied, 0 otherwise (and on non-glibc systems).
int privatus_tune_allocator(void);

/// pipe2(fds, O_CLOEXEC): both ends close-on-exec from the start, so a child spawned by another
/// thread at the same moment cannot inherit them. Returns 0 or -1 with errno set.
int privatus_pipe_cloexec(int fds[2]);

/// ppoll(fds, count, timeout): poll with a timeout to the nanosecond (poll's is in whole
/// milliseconds; a client sending every millisecond needs finer). A negative timeout waits
/// without end. Returns what ppoll returns, errno set on -1.
int privatus_ppoll(struct pollfd *fds, unsigned long count, long long timeout_ns);

#endif
