/* A writer that makes one write(2) per line: BYTES bytes of 64-byte lines
 * to stdout, each line its own write, as a program that logs line by line
 * unbuffered does (the worst case for a log capture's wake-ups).
 * Usage: lines BYTES   (benchmark helper) */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    long long left = atoll(argv[1]);
    char line[64];
    memset(line, '0', sizeof line);
    memcpy(line, "log line ", 9);
    line[63] = '\n';
    while (left > 0) {
        size_t n = left < 64 ? (size_t)left : 64;
        size_t off = 0;
        while (off < n) {
            ssize_t w = write(1, line + off, n - off);
            if (w <= 0) return 1;
            off += (size_t)w;
        }
        left -= (long long)n;
    }
    return 0;
}
