/* The service every supervisor runs in the benchmarks: at start it writes
 * "NAME PID MONOTONIC_NS\n" to a FIFO (one write, atomic), then waits for a
 * signal. The bench reads the stamps to see when a process has exec'd.
 *
 * Usage: stamp NAME FIFO, or with no arguments (as runit's and s6's ./run,
 * a symlink to this): NAME is the current directory's name and FIFO is
 * $STAMP_FIFO. */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char cwd[PATH_MAX];
    const char *name, *fifo;
    if (argc >= 3) {
        name = argv[1];
        fifo = argv[2];
    } else {
        if (!getcwd(cwd, sizeof cwd)) return 111;
        name = strrchr(cwd, '/') ? strrchr(cwd, '/') + 1 : cwd;
        fifo = getenv("STAMP_FIFO");
        if (!fifo) return 111;
    }
    int fd = open(fifo, O_WRONLY);
    if (fd < 0) return 111;
    char line[512];
    int n = snprintf(line, sizeof line, "%s %d %lld\n", name, (int)getpid(),
                     (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
    if (write(fd, line, n) != n) return 111;
    close(fd);
    for (;;) pause();
}
