/* The physical limit of the probe benchmark: the least a prober can do for
 * one HTTP probe of each of COUNT ports from BASE every second, the way
 * upkeep's probes do it (a new connection, the request, the response head,
 * close), with nothing else: blocking calls, one port after the other,
 * then a sleep to the next second. Runs SECONDS seconds and prints its own
 * CPU seconds (user + system).
 *
 * Usage: prober BASE COUNT SECONDS */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char REQ[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: prober BASE COUNT SECONDS\n");
        return 2;
    }
    int base = atoi(argv[1]), count = atoi(argv[2]), secs = atoi(argv[3]);
    char buf[8192];
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (int round = 0; round < secs; round++) {
        for (int i = 0; i < count; i++) {
            int s = socket(AF_INET, SOCK_STREAM, 0);
            struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(base + i),
                                    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
            if (connect(s, (void *)&a, sizeof a) == 0) {
                (void)!write(s, REQ, sizeof REQ - 1);
                (void)!read(s, buf, sizeof buf);
            }
            close(s);
        }
        struct timespec next = start;
        next.tv_sec += round + 1;
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    printf("%.3f\n", cpu);
    return 0;
}
