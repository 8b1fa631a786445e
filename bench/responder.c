/* A small HTTP responder for the probe benchmark: listens on COUNT ports
 * from BASE on 127.0.0.1 and answers every request with `200 OK` and an
 * empty body, then closes. One thread, one epoll set, non-blocking: what
 * the probes cost is the supervisor's, not this program's.
 *
 * Usage: responder BASE COUNT   (prints "ready" once every port listens) */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CONN 65536
static int listening[MAX_CONN]; /* fd -> 1 for a listener */

static char tail[MAX_CONN][4];  /* the last bytes read, to find \r\n\r\n */

static const char REPLY[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: responder BASE COUNT\n");
        return 2;
    }
    int base = atoi(argv[1]), count = atoi(argv[2]);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    int ep = epoll_create1(0);
    for (int i = 0; i < count; i++) {
        int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        int one = 1;
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(base + i),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        if (s < 0 || s >= MAX_CONN || bind(s, (void *)&a, sizeof a) || listen(s, 128)) {
            perror("listen");
            return 1;
        }
        listening[s] = 1;
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = s};
        epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
    }
    printf("ready\n");
    fflush(stdout);
    struct epoll_event evs[256];
    char buf[4096];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (listening[fd]) {
                for (;;) {
                    int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK);
                    if (c < 0)
                        break;
                    if (c >= MAX_CONN) {
                        close(c);
                        continue;
                    }

                    memset(tail[c], 0, 4);
                    struct epoll_event ev = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
                }
                continue;
            }
            ssize_t r = read(fd, buf, sizeof buf);
            if (r < 0 && errno == EAGAIN)
                continue;
            int done = r <= 0;
            for (ssize_t k = 0; k < r && !done; k++) {
                memmove(tail[fd], tail[fd] + 1, 3);
                tail[fd][3] = buf[k];
                if (memcmp(tail[fd], "\r\n\r\n", 4) == 0) {
                    (void)!write(fd, REPLY, sizeof REPLY - 1);
                    done = 1;
                }
            }
            if (done)
                close(fd); /* closing removes it from the epoll set */
        }
    }
}
