/* The ring.h side of `benches/ring.rs`: a blkif front end and back end driven by Xen's own
 * ring.h macros (Debian's libxen-dev headers, xenctrl.h's x86_64 barriers via c/xen_abi.h),
 * busy-polling on one shared area, plus a single-threaded ping-pong for instruction counts.
 *
 * Copy-once on both sides. The back end takes each request with RING_COPY_REQUEST, ring.h's
 * XSA-155 copy (a volatile struct assignment into a local). gcc only performs the loads of
 * fields the code later uses: with a back end that reads `id`, `operation` and `nr_segments`
 * it loads 3 fields of the 112-byte slot and drops the rest of the "copy". shared-ring's back
 * end copies the whole slot before anyone looks at it. So that both sides do the same work,
 * `copy_whole` makes the local copy escape (an empty asm that reads it), which forces gcc to
 * perform the whole 112-byte copy, as it does in a real back end that hands the request on.
 * `copy_whole = 0` keeps the 3-field variant, printed as a reference row. */
#include "../c/xen_abi.h"

/* The copy must exist in full: tell gcc an (empty) asm reads all of it. */
#define ESCAPE(obj) __asm__ __volatile__("" : : "m"(obj))

enum bench_mode { BENCH_LATENCY = 0, BENCH_PUSH_EACH = 1, BENCH_BATCHED = 2 };

/* `slots` is a power of two (RING_SIZE), so `seq & (slots - 1)` is `seq % slots`. The Rust side's
 * compiler sees that its slot count is a power of two and masks; gcc cannot see it through
 * RING_SIZE's __RD32 macros and would divide, so the C side masks explicitly: the same work. */
static inline void fill_request(blkif_request_t *req, uint64_t seq, unsigned slots) {
    req->operation = BLKIF_OP_READ;
    req->nr_segments = 1;
    req->handle = 0;
    req->id = seq & (slots - 1);
    req->sector_number = seq;
    req->seg[0].gref = (uint32_t)seq;
    req->seg[0].first_sect = 0;
    req->seg[0].last_sect = 7;
}

void xen_bench_init(void *page) {
    SHARED_RING_INIT((blkif_sring_t *)page);
}

/* Front end: `count` requests in `mode`; returns the number of "notify" decisions, or -1 if a
 * response does not match. Each response is copied out (16 bytes, all of it used). */
uint64_t xen_bench_front(void *page, unsigned bytes, int mode, uint64_t count) {
    blkif_sring_t *sring = page;
    blkif_front_ring_t ring;
    FRONT_RING_INIT(&ring, sring, bytes);
    unsigned slots = RING_SIZE(&ring);
    unsigned limit = mode == BENCH_LATENCY ? 1 : slots;
    uint64_t sent = 0, done = 0, notifies = 0;
    while (done < count) {
        int pushed = 0;
        while (sent < count && ring.req_prod_pvt - ring.rsp_cons < limit) {
            fill_request(RING_GET_REQUEST(&ring, ring.req_prod_pvt), sent, slots);
            ring.req_prod_pvt++;
            sent++;
            if (mode != BENCH_BATCHED) {
                int notify;
                RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&ring, notify);
                notifies += notify;
            } else {
                pushed = 1;
            }
        }
        if (pushed) {
            int notify;
            RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&ring, notify);
            notifies += notify;
        }
        RING_IDX rp = sring->rsp_prod;
        xen_rmb();
        if (RING_RESPONSE_PROD_OVERFLOW(&ring, rp)) return (uint64_t)-1;
        while (ring.rsp_cons != rp) {
            blkif_response_t rsp;
            RING_COPY_RESPONSE(&ring, ring.rsp_cons, &rsp);
            ESCAPE(rsp);
            if (rsp.id != (done & (slots - 1))) return (uint64_t)-1;
            ring.rsp_cons++;
            done++;
        }
    }
    return notifies;
}

/* Back end: answers `count` requests; one response push (and notify decision) per batch it
 * finds. `copy_whole` (a constant in each caller below): see the top of the file. */
static inline __attribute__((always_inline)) uint64_t bench_back(void *page, unsigned bytes, uint64_t count,
                                                                 const int copy_whole) {
    blkif_sring_t *sring = page;
    blkif_back_ring_t ring;
    BACK_RING_INIT(&ring, sring, bytes);
    uint64_t done = 0, notifies = 0;
    while (done < count) {
        RING_IDX rp = sring->req_prod;
        xen_rmb();
        if (RING_REQUEST_PROD_OVERFLOW(&ring, rp)) return (uint64_t)-1;
        if (ring.req_cons == rp) continue;
        while (ring.req_cons != rp) {
            blkif_request_t req;
            RING_COPY_REQUEST(&ring, ring.req_cons, &req);
            if (copy_whole) ESCAPE(req);
            ring.req_cons++;
            if (req.nr_segments > BLKIF_MAX_SEGMENTS_PER_REQUEST) return (uint64_t)-1;
            blkif_response_t *rsp = RING_GET_RESPONSE(&ring, ring.rsp_prod_pvt);
            rsp->id = req.id;
            rsp->operation = req.operation;
            rsp->status = BLKIF_RSP_OKAY;
            ring.rsp_prod_pvt++;
            done++;
        }
        int notify;
        RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(&ring, notify);
        notifies += notify;
    }
    return notifies;
}

/* Two separate functions: with one function and a runtime flag gcc hoists the whole copy into
 * both paths. */
static uint64_t __attribute__((noinline)) bench_back_whole(void *page, unsigned bytes, uint64_t count) {
    return bench_back(page, bytes, count, 1);
}

static uint64_t __attribute__((noinline)) bench_back_fields(void *page, unsigned bytes, uint64_t count) {
    return bench_back(page, bytes, count, 0);
}

uint64_t xen_bench_back(void *page, unsigned bytes, uint64_t count, int copy_whole) {
    return copy_whole ? bench_back_whole(page, bytes, count) : bench_back_fields(page, bytes, count);
}

/* One thread plays both ends: `count` requests in rounds of `batch` (push all, publish once;
 * the back end answers all, publishes once; the front end takes all responses). For callgrind:
 * deterministic instruction counts per message, free of the two-thread polling loops. Built
 * without AVX-512, whose EVEX encodings valgrind cannot decode (AVX2 stays). */
#pragma GCC push_options
#pragma GCC target("no-avx512f")
uint64_t xen_pingpong(void *page, unsigned bytes, unsigned batch, uint64_t count) {
    blkif_sring_t *sring = page;
    blkif_front_ring_t front;
    blkif_back_ring_t back;
    SHARED_RING_INIT(sring);
    FRONT_RING_INIT(&front, sring, bytes);
    BACK_RING_INIT(&back, sring, bytes);
    unsigned slots = RING_SIZE(&front);
    uint64_t sent = 0, done = 0, notifies = 0;
    int notify;
    while (done < count) {
        for (unsigned i = 0; i < batch && sent < count; i++) {
            fill_request(RING_GET_REQUEST(&front, front.req_prod_pvt), sent, slots);
            front.req_prod_pvt++;
            sent++;
        }
        RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&front, notify);
        notifies += notify;

        RING_IDX rp = sring->req_prod;
        xen_rmb();
        if (RING_REQUEST_PROD_OVERFLOW(&back, rp)) return (uint64_t)-1;
        while (back.req_cons != rp) {
            blkif_request_t req;
            RING_COPY_REQUEST(&back, back.req_cons, &req);
            ESCAPE(req);
            back.req_cons++;
            if (req.nr_segments > BLKIF_MAX_SEGMENTS_PER_REQUEST) return (uint64_t)-1;
            blkif_response_t *rsp = RING_GET_RESPONSE(&back, back.rsp_prod_pvt);
            rsp->id = req.id;
            rsp->operation = req.operation;
            rsp->status = BLKIF_RSP_OKAY;
            back.rsp_prod_pvt++;
        }
        RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(&back, notify);
        notifies += notify;

        RING_IDX rsp_prod = sring->rsp_prod;
        xen_rmb();
        if (RING_RESPONSE_PROD_OVERFLOW(&front, rsp_prod)) return (uint64_t)-1;
        while (front.rsp_cons != rsp_prod) {
            blkif_response_t rsp;
            RING_COPY_RESPONSE(&front, front.rsp_cons, &rsp);
            ESCAPE(rsp);
            if (rsp.id != (done & (slots - 1))) return (uint64_t)-1;
            front.rsp_cons++;
            done++;
        }
    }
    return notifies;
}
#pragma GCC pop_options
