/* The physical limit of the probe benchmark: the least a prober can do for
 * one HTTP probe of each of COUNT ports from BASE every second, the way
 * upkeep's probes do it (a new connection, the request, the response head,
 * close), with nothing else. Every second it opens all COUNT connections
 * at once (non-blocking, one epoll set, as upkeep batches the tries that
 * are due together), writes each request once its connection is up, reads
 * each answer once, closes, and sleeps to the next second. Runs SECONDS
 * seconds and prints its own CPU seconds (user + system).
 *
 * Usage: prober BASE COUNT SECONDS */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_FD 65536
static const char REQ[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
static char sent[MAX_FD]; /* fd -> the request went */

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: prober BASE COUNT SECONDS\n");
        return 2;
    }
    int base = atoi(argv[1]), count = atoi(argv[2]), secs = atoi(argv[3]);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    char buf[8192];
    struct epoll_event evs[512];
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (int round = 0; round < secs; round++) {
        int left = 0;
        for (int i = 0; i < count; i++) {
            int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (s < 0 || s >= MAX_FD) {
                perror("socket");
                return 1;
            }
            struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(base + i),
                                    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
            if (connect(s, (void *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
                close(s);
                continue;
            }
            sent[s] = 0;
            struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.fd = s};
            epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
            left++;
        }
        while (left > 0) {
            int n = epoll_wait(ep, evs, 512, -1);
            for (int k = 0; k < n; k++) {
                int s = evs[k].data.fd;
                if (!sent[s] && !(evs[k].events & (EPOLLERR | EPOLLHUP))) {
                    if (write(s, REQ, sizeof REQ - 1) > 0)
                        sent[s] = 1;
                    continue;
                }
                if (read(s, buf, sizeof buf) < 0 && errno == EAGAIN)
                    continue;
                close(s);
                left--;
            }
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
