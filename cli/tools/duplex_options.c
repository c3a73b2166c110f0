/*
 * Two-way transports for 64-byte messages, measured in one program:
 * throughput one way and round trip, each with the two processes free to
 * run anywhere and pinned to one CPU, in interleaved rounds, every figure
 * divided by the two-pipe figure of the same round (medians of the
 * per-round ratios).
 *
 *   gcc -O2 -o /tmp/duplex_options cli/tools/duplex_options.c
 *   /tmp/duplex_options [rounds] [messages] [round-trips]
 *
 * Each variant moves raw fixed-size messages (no framing) except the
 * "framed" ones, which send CPython's 4-byte header with the payload in one
 * write and read the frame back in one read (what duplex() does) or in two.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SIZE 64

enum kind { PIPES, STREAM, SEQPACKET, DGRAM };
enum io { RW, SENDRECV, NONBLOCK_POLL, FRAMED1, FRAMED2, READAHEAD };

struct variant {
    const char *name;
    enum kind kind;
    enum io io;
    int sockbuf; /* SO_SNDBUF and SO_RCVBUF, 0: default */
};

static const struct variant VARIANTS[] = {
    {"two pipes, write/read", PIPES, RW, 0},
    {"stream, write/read", STREAM, RW, 0},
    {"stream, send(NOSIGNAL)/recv", STREAM, SENDRECV, 0},
    {"stream, recv(DONTWAIT)+poll", STREAM, NONBLOCK_POLL, 0},
    {"stream, SO_SNDBUF/RCVBUF 4 MiB", STREAM, RW, 4 << 20},
    {"stream, SO_SNDBUF/RCVBUF 16 KiB", STREAM, RW, 16 << 10},
    {"stream, framed, 1 read", STREAM, FRAMED1, 0},
    {"stream, framed, 2 reads", STREAM, FRAMED2, 0},
    {"seqpacket, send/recv", SEQPACKET, SENDRECV, 0},
    {"dgram, send/recv", DGRAM, SENDRECV, 0},
    {"two pipes, framed, 1 read", PIPES, FRAMED1, 0},
    {"stream, framed, 64 KiB read-ahead", STREAM, READAHEAD, 0},
    {"two pipes, framed, 64 KiB read-ahead", PIPES, READAHEAD, 0},
};
#define NV (sizeof VARIANTS / sizeof VARIANTS[0])

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void die(const char *what) {
    perror(what);
    _exit(2);
}

/* a[0], a[1]: the two ends seen by side A (read, write); b likewise. */
struct chan {
    int a_r, a_w, b_r, b_w;
};

static struct chan open_chan(const struct variant *v) {
    struct chan c;
    if (v->kind == PIPES) {
        int p[2], q[2];
        if (pipe2(p, O_CLOEXEC) || pipe2(q, O_CLOEXEC))
            die("pipe2");
        c.a_w = p[1];
        c.b_r = p[0];
        c.b_w = q[1];
        c.a_r = q[0];
        return c;
    }
    int ty = v->kind == STREAM ? SOCK_STREAM : v->kind == SEQPACKET ? SOCK_SEQPACKET : SOCK_DGRAM;
    int s[2];
    if (socketpair(AF_UNIX, ty | SOCK_CLOEXEC, 0, s))
        die("socketpair");
    if (v->sockbuf) {
        for (int i = 0; i < 2; i++) {
            setsockopt(s[i], SOL_SOCKET, SO_SNDBUF, &v->sockbuf, sizeof(int));
            setsockopt(s[i], SOL_SOCKET, SO_RCVBUF, &v->sockbuf, sizeof(int));
        }
    }
    c.a_r = c.a_w = s[0];
    c.b_r = c.b_w = s[1];
    return c;
}

static void close_chan(struct chan *c) {
    close(c->a_r);
    close(c->b_r);
    if (c->a_w != c->a_r)
        close(c->a_w);
    if (c->b_w != c->b_r)
        close(c->b_w);
}

static void send_msg(const struct variant *v, int fd, const unsigned char *msg) {
    unsigned char frame[4 + SIZE];
    const unsigned char *p = msg;
    size_t n = SIZE;
    if (v->io == FRAMED1 || v->io == FRAMED2 || v->io == READAHEAD) {
        frame[0] = frame[1] = frame[2] = 0;
        frame[3] = SIZE;
        memcpy(frame + 4, msg, SIZE);
        p = frame;
        n = sizeof frame;
    }
    while (n > 0) {
        ssize_t w = v->io == RW || v->kind == PIPES ? write(fd, p, n)
                                                    : send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            die("write");
        }
        p += w;
        n -= (size_t)w;
    }
}

static void read_exact(const struct variant *v, int fd, unsigned char *buf, size_t n) {
    while (n > 0) {
        ssize_t r;
        if (v->io == NONBLOCK_POLL) {
            r = recv(fd, buf, n, MSG_DONTWAIT);
            if (r < 0 && errno == EAGAIN) {
                struct pollfd p = {fd, POLLIN, 0};
                poll(&p, 1, -1);
                continue;
            }
        } else if (v->io == SENDRECV) {
            r = recv(fd, buf, n, 0);
        } else {
            r = read(fd, buf, n);
        }
        if (r < 0) {
            if (errno == EINTR)
                continue;
            die("read");
        }
        if (r == 0)
            die("eof");
        buf += r;
        n -= (size_t)r;
    }
}

/* The read-ahead buffer of a READAHEAD receiver (one per process). */
static unsigned char ahead[64 << 10];
static size_t ahead_pos, ahead_len;

static void recv_msg(const struct variant *v, int fd, unsigned char *msg) {
    unsigned char frame[4 + SIZE];
    if (v->io == READAHEAD) {
        while (ahead_len - ahead_pos < sizeof frame) {
            memmove(ahead, ahead + ahead_pos, ahead_len - ahead_pos);
            ahead_len -= ahead_pos;
            ahead_pos = 0;
            ssize_t r = read(fd, ahead + ahead_len, sizeof ahead - ahead_len);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                die("read-ahead");
            ahead_len += (size_t)r;
        }
        memcpy(msg, ahead + ahead_pos + 4, SIZE);
        ahead_pos += sizeof frame;
        return;
    }
    if (v->kind == SEQPACKET || v->kind == DGRAM) {
        if (recv(fd, msg, SIZE, 0) != SIZE)
            die("recv packet");
        return;
    }
    switch (v->io) {
    case FRAMED1:
        read_exact(v, fd, frame, sizeof frame);
        memcpy(msg, frame + 4, SIZE);
        break;
    case FRAMED2:
        read_exact(v, fd, frame, 4);
        read_exact(v, fd, msg, (size_t)frame[3]);
        break;
    default:
        read_exact(v, fd, msg, SIZE);
    }
}

static void pin(int cpu) {
    if (cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set))
        die("sched_setaffinity");
}

/* Shared with the children: the end time and the round-trip samples. */
struct shared {
    uint64_t end_ns;
    uint64_t samples[];
};

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void wait_child(pid_t pid) {
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "child failed\n");
        exit(2);
    }
}

/* Throughput: messages per second, one way, A -> B. */
static double throughput(const struct variant *v, long messages, int cpu, struct shared *sh) {
    struct chan c = open_chan(v);
    int go[2];
    if (pipe2(go, O_CLOEXEC))
        die("pipe2");
    pid_t rd = fork();
    if (rd == 0) {
        pin(cpu);
        unsigned char msg[SIZE], b;
        if (read(go[0], &b, 1) != 1)
            die("go");
        for (long i = 0; i < messages; i++)
            recv_msg(v, c.b_r, msg);
        sh->end_ns = now_ns();
        _exit(0);
    }
    pid_t wr = fork();
    if (wr == 0) {
        pin(cpu);
        unsigned char msg[SIZE], b;
        memset(msg, 0x5a, SIZE);
        if (read(go[0], &b, 1) != 1)
            die("go");
        for (long i = 0; i < messages; i++)
            send_msg(v, c.a_w, msg);
        _exit(0);
    }
    close_chan(&c);
    usleep(20000); /* both children at their read of "go" */
    uint64_t start = now_ns();
    if (write(go[1], "gg", 2) != 2)
        die("write go");
    wait_child(rd);
    wait_child(wr);
    close(go[0]);
    close(go[1]);
    return (double)messages / ((double)(sh->end_ns - start) / 1e9);
}

/* Round trip: median microseconds over `trips` (after 100 warm-up trips). */
static double round_trip(const struct variant *v, long trips, int cpu, struct shared *sh) {
    const long warm = 100;
    struct chan c = open_chan(v);
    pid_t echo = fork();
    if (echo == 0) {
        pin(cpu);
        unsigned char msg[SIZE];
        for (long i = 0; i < trips + warm; i++) {
            recv_msg(v, c.b_r, msg);
            send_msg(v, c.b_w, msg);
        }
        _exit(0);
    }
    pid_t ping = fork();
    if (ping == 0) {
        pin(cpu);
        unsigned char msg[SIZE];
        memset(msg, 0x5a, SIZE);
        for (long i = 0; i < trips + warm; i++) {
            uint64_t t = now_ns();
            send_msg(v, c.a_w, msg);
            recv_msg(v, c.a_r, msg);
            if (i >= warm)
                sh->samples[i - warm] = now_ns() - t;
        }
        _exit(0);
    }
    close_chan(&c);
    wait_child(ping);
    wait_child(echo);
    qsort(sh->samples, (size_t)trips, sizeof(uint64_t), cmp_u64);
    return (double)sh->samples[trips / 2] / 1e3;
}

static double median(double *x, int n) {
    double t[n];
    memcpy(t, x, sizeof t);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && t[j - 1] > t[j]; j--) {
            double s = t[j];
            t[j] = t[j - 1];
            t[j - 1] = s;
        }
    return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 5;
    long messages = argc > 2 ? atol(argv[2]) : 200000;
    long trips = argc > 3 ? atol(argv[3]) : 20000;
    signal(SIGPIPE, SIG_IGN);
    cpu_set_t set;
    sched_getaffinity(0, sizeof set, &set);
    int cpu = -1;
    for (int i = 0; i < CPU_SETSIZE; i++)
        if (CPU_ISSET(i, &set))
            cpu = i;
    struct shared *sh = mmap(NULL, sizeof *sh + (size_t)trips * 8, PROT_READ | PROT_WRITE,
                             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        die("mmap");
    /* [measure][variant][round]: 0 tput free, 1 tput pinned, 2 rtt free, 3 rtt pinned */
    static double val[4][NV][64];
    for (int r = 0; r < rounds && r < 64; r++) {
        for (size_t k = 0; k < NV; k++) {
            size_t i = (k + (size_t)r) % NV;
            const struct variant *v = &VARIANTS[i];
            val[0][i][r] = throughput(v, messages, -1, sh);
            val[1][i][r] = throughput(v, messages, cpu, sh);
            val[2][i][r] = round_trip(v, trips / 4, -1, sh);
            val[3][i][r] = round_trip(v, trips, cpu, sh);
        }
        fprintf(stderr, "round %d/%d done\n", r + 1, rounds);
    }
    printf("64 B, %d rounds, %ld messages, %ld pinned round trips (%ld free), CPU %d for pinned\n",
           rounds, messages, trips, trips / 4, cpu);
    printf("ratios: median over rounds of (variant / two pipes of the same round);\n"
           "throughput: higher is better, round trip: lower is better\n\n");
    printf("| variant | msg/s free | x pipes | msg/s 1 CPU | x pipes | RTT free us | x pipes | RTT 1 CPU us | x pipes |\n");
    printf("|---|---|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < NV; i++) {
        printf("| %s ", VARIANTS[i].name);
        for (int m = 0; m < 4; m++) {
            double ratio[64];
            for (int r = 0; r < rounds; r++)
                ratio[r] = val[m][i][r] / val[m][0][r];
            double abs = median(val[m][i], rounds);
            if (m < 2)
                printf("| %.0fk | %.2f ", abs / 1e3, median(ratio, rounds));
            else
                printf("| %.2f | %.2f ", abs, median(ratio, rounds));
        }
        printf("|\n");
    }
    return 0;
}
