/* Runs a command N times, one after the other, and prints each run's wall
 * time in microseconds, one per line: a client's latency as a user sees it
 * (spawn, connect, answer, exit), without a scripting language's overhead.
 * The command's output goes to /dev/null; a failed run exits 1.
 *
 * Usage: timecmd N COMMAND [ARG]... */
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: timecmd N COMMAND [ARG]...\n");
        return 2;
    }
    int n = atoi(argv[1]);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    for (int i = 0; i < n; i++) {
        long long t0 = now_ns();
        pid_t pid;
        if (posix_spawnp(&pid, argv[2], &fa, NULL, argv + 2, environ) != 0) {
            perror(argv[2]);
            return 1;
        }
        int status;
        waitpid(pid, &status, 0);
        long long t1 = now_ns();
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "timecmd: %s failed (status %d)\n", argv[2], status);
            return 1;
        }
        printf("%.1f\n", (t1 - t0) / 1000.0);
    }
    return 0;
}
