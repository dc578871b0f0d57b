/* The one program of the test containers' image (tests/boot/test_containers.py): glibc's getaddrinfo, timed.
 *
 *   lookup NAME...   one line per name: NAME MILLISECONDS ADDRESS (or "error: ...")
 *   lookup -i MS NAME...  the same, MS milliseconds apart: lookups spread over a while
 *   lookup cat FILE  the file, to read a container's /etc/resolv.conf
 *   lookup wait      sleep until killed: a container that stays up
 *
 * Built by the test with the machine's cc against glibc, and shipped in the image with the boot image's own
 * libc.so.6 and loader (the same Debian release). */
#include <arpa/inet.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void stop(int signum) {
    (void)signum;
    _exit(0);
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "wait") == 0) {
        signal(SIGTERM, stop); /* PID 1 of the container: without a handler, SIGTERM is ignored */
        for (;;)
            pause();
    }
    if (argc == 3 && strcmp(argv[1], "cat") == 0) {
        FILE *f = fopen(argv[2], "r");
        if (!f) {
            perror(argv[2]);
            return 1;
        }
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0)
            fwrite(buf, 1, n, stdout);
        return 0;
    }
    int first = 1;
    long interval_ms = 0;
    if (argc > 3 && strcmp(argv[1], "-i") == 0) {
        interval_ms = atol(argv[2]);
        first = 3;
    }
    for (int i = first; i < argc; i++) {
        if (i > first && interval_ms > 0) {
            struct timespec pause_for = {interval_ms / 1000, (interval_ms % 1000) * 1000000L};
            nanosleep(&pause_for, NULL);
        }
        struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
        double started = now_ms();
        int rc = getaddrinfo(argv[i], "80", &hints, &res);
        double ms = now_ms() - started;
        if (rc != 0) {
            printf("%s %.3f error: %s\n", argv[i], ms, gai_strerror(rc));
        } else {
            char text[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, text, sizeof text);
            printf("%s %.3f %s\n", argv[i], ms, text);
            freeaddrinfo(res);
        }
        fflush(stdout);
    }
    return 0;
}
