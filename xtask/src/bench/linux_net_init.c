/* The Linux network reference guest's init for `cargo xtask bench net`
 * (xtask/src/bench/linux_net.rs): loads the virtio-net modules from /m, configures eth0 as
 * 10.0.2.15/24 via 10.0.2.2, then, by the kernel command line's `netref=`, serves HTTP on port 80
 * (`netref=http`) or sends BYTES to 10.0.2.2:PORT (`netref=send:PORT:BYTES`) and powers off.
 * Built by xtask with `gcc -static -O2`. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static const char *modules[] = {"virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev",
                                "virtio_pci", "failover", "net_failover", "virtio_net"};

static void die(const char *what) {
    printf("LINUXNET error: %s: %s\n", what, strerror(errno));
    fflush(stdout);
    reboot(RB_POWER_OFF);
    _exit(1);
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void set_addr(struct sockaddr *sa, const char *ip) {
    struct sockaddr_in *in = (struct sockaddr_in *)sa;
    memset(in, 0, sizeof *in);
    in->sin_family = AF_INET;
    inet_pton(AF_INET, ip, &in->sin_addr);
}

static void if_up(int s, const char *name, const char *ip, const char *mask) {
    struct ifreq r;
    memset(&r, 0, sizeof r);
    strncpy(r.ifr_name, name, IFNAMSIZ - 1);
    if (ip) {
        set_addr(&r.ifr_addr, ip);
        if (ioctl(s, SIOCSIFADDR, &r) < 0) die("SIOCSIFADDR");
        set_addr(&r.ifr_netmask, mask);
        if (ioctl(s, SIOCSIFNETMASK, &r) < 0) die("SIOCSIFNETMASK");
    }
    if (ioctl(s, SIOCGIFFLAGS, &r) < 0) die("SIOCGIFFLAGS");
    r.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(s, SIOCSIFFLAGS, &r) < 0) die("SIOCSIFFLAGS");
}

static void network(void) {
    for (unsigned i = 0; i < sizeof modules / sizeof *modules; i++) {
        char path[64];
        snprintf(path, sizeof path, "/m/%s.ko", modules[i]);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || syscall(SYS_finit_module, fd, "", 0) != 0) die(path);
        close(fd);
    }
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0) die("socket");
    if_up(s, "lo", "127.0.0.1", "255.0.0.0");
    // The interface appears once the driver probed the device.
    for (int i = 0; i < 200; i++) {
        struct ifreq r;
        memset(&r, 0, sizeof r);
        strcpy(r.ifr_name, "eth0");
        if (ioctl(s, SIOCGIFFLAGS, &r) == 0) break;
        usleep(10000);
    }
    if_up(s, "eth0", "10.0.2.15", "255.255.255.0");
    struct rtentry rt;
    memset(&rt, 0, sizeof rt);
    set_addr(&rt.rt_dst, "0.0.0.0");
    set_addr(&rt.rt_genmask, "0.0.0.0");
    set_addr(&rt.rt_gateway, "10.0.2.2");
    rt.rt_flags = RTF_UP | RTF_GATEWAY;
    if (ioctl(s, SIOCADDRT, &rt) < 0) die("SIOCADDRT");
    close(s);
}

static const char page[] =
    "<!doctype html>\n<html><head><title>linux reference</title></head>"
    "<body><h1>Hello from the Linux reference guest</h1></body></html>\n";

#define MAXC 64
static void serve_http(void) {
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(80)};
    if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 128) < 0) die("listen");
    char resp[512];
    int rlen = snprintf(resp, sizeof resp,
                        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %zu\r\n\r\n%s",
                        sizeof page - 1, page);
    struct pollfd p[MAXC + 1];
    static char buf[MAXC + 1][4096];
    int used[MAXC + 1] = {0}, n = 1;
    p[0].fd = l;
    p[0].events = POLLIN;
    printf("LINUXNET http listening on 10.0.2.15:80\n");
    fflush(stdout);
    for (;;) {
        if (poll(p, n, -1) < 0) continue;
        if ((p[0].revents & POLLIN) && n <= MAXC) {
            int c = accept(l, 0, 0);
            if (c >= 0) {
                setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                p[n].fd = c;
                p[n].events = POLLIN;
                p[n].revents = 0;
                used[n] = 0;
                n++;
            }
        }
        for (int i = 1; i < n; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t r = read(p[i].fd, buf[i] + used[i], sizeof buf[i] - 1 - used[i]);
            if (r <= 0) {
                close(p[i].fd);
                p[i] = p[n - 1];
                used[i] = used[n - 1];
                memcpy(buf[i], buf[n - 1], used[i]);
                n--;
                i--;
                continue;
            }
            used[i] += r;
            buf[i][used[i]] = 0;
            char *end;
            while ((end = strstr(buf[i], "\r\n\r\n")) != NULL) {
                if (write(p[i].fd, resp, rlen) != rlen) break;
                int consumed = end + 4 - buf[i];
                memmove(buf[i], end + 4, used[i] - consumed + 1);
                used[i] -= consumed;
            }
            if (used[i] >= (int)sizeof buf[i] - 1) used[i] = 0;
        }
    }
}

static void send_stream(int port, long long bytes) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "10.0.2.2", &a.sin_addr);
    if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
    static char chunk[65536];
    unsigned x = 12345;
    for (size_t i = 0; i < sizeof chunk; i++) chunk[i] = (char)((x = x * 1103515245 + 12345) >> 16);
    double t0 = now_ms();
    long long left = bytes;
    while (left > 0) {
        ssize_t w = write(s, chunk, left < (long long)sizeof chunk ? left : (long long)sizeof chunk);
        if (w <= 0) die("write");
        left -= w;
    }
    shutdown(s, SHUT_WR);
    char b;
    while (read(s, &b, 1) > 0) {}
    double t1 = now_ms();
    printf("LINUXNET sent %lld bytes in %.1f ms (%.1f Mbit/s)\n", bytes, t1 - t0, bytes * 8 / (t1 - t0) / 1e3);
    fflush(stdout);
}

int main(int argc, char **argv, char **envp) {
    (void)argc;
    (void)argv;
    (void)envp;
    printf("LINUXNET init started\n");
    fflush(stdout);
    network();
    printf("LINUXNET network up\n");
    fflush(stdout);
    const char *mode = getenv("netref");
    if (mode && strcmp(mode, "http") == 0) serve_http();
    int port;
    long long bytes;
    if (mode && sscanf(mode, "send:%d:%lld", &port, &bytes) == 2) send_stream(port, bytes);
    sync();
    reboot(RB_POWER_OFF);
    for (;;) pause();
}
