/* The pty's limit: run a command with its stdout and stderr on a pty and
 * copy everything from the master to a file, with nothing else going on.
 * Usage: ptycopy OUTFILE COMMAND [ARG]...   (benchmark helper) */
#include <fcntl.h>
#include <pty.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: ptycopy OUT CMD...\n"); return 2; }
    int master, slave;
    if (openpty(&master, &slave, NULL, NULL, NULL) < 0) { perror("openpty"); return 1; }
    struct termios t;
    tcgetattr(slave, &t);
    t.c_oflag &= ~OPOST;
    tcsetattr(slave, TCSANOW, &t);
    pid_t pid = fork();
    if (pid == 0) {
        close(master);
        setsid();
        dup2(slave, 1); dup2(slave, 2);
        if (slave > 2) close(slave);
        execvp(argv[2], argv + 2);
        _exit(127);
    }
    close(slave);
    int out = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0640);
    static char buf[65536];
    for (;;) {
        ssize_t n = read(master, buf, sizeof buf);
        if (n <= 0) break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, n - off);
            if (w <= 0) return 1;
            off += w;
        }
    }
    waitpid(pid, NULL, 0);
    return 0;
}
