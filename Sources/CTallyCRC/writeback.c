// Starting the kernel's writeback of a file range without waiting for it (`sync_file_range`),
// and the O_DIRECT flag, which Swift's Glibc module does not import (they need _GNU_SOURCE).
// See CTallyCRC.h.
#define _GNU_SOURCE
#include "CTallyCRC.h"
#include <errno.h>
#if defined(__linux__)
#include <fcntl.h>
#endif

int tally_start_writeback(int fd, int64_t offset, int64_t nbytes) {
#if defined(__linux__)
    for (;;) {
        if (sync_file_range(fd, (off64_t)offset, (off64_t)nbytes, SYNC_FILE_RANGE_WRITE) == 0) return 0;
        if (errno != EINTR) return errno;
    }
#else
    (void)fd; (void)offset; (void)nbytes;
    return 0;
#endif
}

int tally_o_direct_flag(void) {
#if defined(__linux__) && defined(O_DIRECT)
    return O_DIRECT;
#else
    return 0;
#endif
}
