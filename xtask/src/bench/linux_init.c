/* The Linux reference guest's init for `cargo xtask bench hv` (xtask/src/bench/linux.rs): the
 * cost of a null system call and of a pipe round trip between two processes, then power off.
 * Built by xtask with `gcc -static -O2 -DITERATIONS=<n> -DPIPE_TRIPS=<n>` and packed as /init of
 * an initramfs for Debian's kernel. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <sys/reboot.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#ifndef ITERATIONS
#define ITERATIONS 1000000
#endif
#ifndef PIPE_TRIPS
#define PIPE_TRIPS 20000
#endif

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

int main(void) {
    const long warmup = 100000, iterations = ITERATIONS;
    printf("LINUXREF init started\n");
    fflush(stdout);
    for (long i = 0; i < warmup; i++) syscall(SYS_getppid);
    double t0 = now_ns();
    uint64_t c0 = __rdtsc();
    for (long i = 0; i < iterations; i++) syscall(SYS_getppid);
    uint64_t c1 = __rdtsc();
    double t1 = now_ns();
    printf("LINUXREF null_syscall_cycles=%.1f null_syscall_ns=%.1f iterations=%ld\n",
           (double)(c1 - c0) / iterations, (t1 - t0) / iterations, iterations);
    fflush(stdout);
    /* Pipe ping-pong between two processes: the reference for an event-channel round trip. */
    int ab[2], ba[2];
    const long trips = PIPE_TRIPS;
    char byte = 'x';
    if (pipe(ab) == 0 && pipe(ba) == 0) {
        pid_t child = fork();
        if (child == 0) {
            for (long i = 0; i < trips + 100; i++) {
                if (read(ab[0], &byte, 1) != 1 || write(ba[1], &byte, 1) != 1) _exit(1);
            }
            _exit(0);
        }
        for (long i = 0; i < 100; i++) {
            if (write(ab[1], &byte, 1) != 1 || read(ba[0], &byte, 1) != 1) break;
        }
        t0 = now_ns();
        c0 = __rdtsc();
        for (long i = 0; i < trips; i++) {
            if (write(ab[1], &byte, 1) != 1 || read(ba[0], &byte, 1) != 1) break;
        }
        c1 = __rdtsc();
        t1 = now_ns();
        printf("LINUXREF pipe_roundtrip_cycles=%.1f pipe_roundtrip_ns=%.1f trips=%ld\n",
               (double)(c1 - c0) / trips, (t1 - t0) / trips, trips);
        fflush(stdout);
    }
    sync();
    reboot(RB_POWER_OFF);
    for (;;) pause();
}
