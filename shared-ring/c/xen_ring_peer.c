/* One end of a blkif ring driven by Xen's own ring.h macros, for shared-ring's interop test
 * and benchmark. The other end is shared-ring's Rust FrontRing/BackRing on the same page.
 *
 * Interop (xen_interop_front / xen_interop_back): the C end sleeps on its "event channel"
 * (callbacks into Rust) whenever RING_FINAL_CHECK_* says there is no work, and notifies the
 * peer whenever RING_PUSH_*_AND_CHECK_NOTIFY says so. Every request carries a sequence number
 * that both ends check, so loss, duplication, reordering or corruption is detected.
 *
 * Benchmark (xen_bench_*): same protocol, but both ends busy-poll instead of sleeping. */
#include "xen_abi.h"

typedef void (*notify_fn)(void *ctx);
typedef int (*wait_fn)(void *ctx); /* 0 = event arrived, nonzero = timed out */

struct peer_stats {
    uint64_t messages;
    uint64_t notifications; /* events this end sent */
    uint64_t sleeps;        /* times this end slept on its event */
    uint64_t error_at;      /* sequence number where a check failed (when returning < 0) */
};

/* Fields of request `seq`: everything derives from the sequence number. */
static void fill_request(blkif_request_t *req, uint64_t seq, unsigned slots) {
    memset(req, 0, sizeof(*req));
    req->operation = (seq & 1) ? BLKIF_OP_WRITE : BLKIF_OP_READ;
    req->nr_segments = 1 + (uint8_t)(seq % BLKIF_MAX_SEGMENTS_PER_REQUEST);
    req->handle = (uint16_t)(seq >> 3);
    req->id = seq % slots;
    req->sector_number = seq;
    for (unsigned i = 0; i < req->nr_segments; i++) {
        req->seg[i].gref = (uint32_t)(seq * 31 + i);
        req->seg[i].first_sect = (uint8_t)(i % 8);
        req->seg[i].last_sect = 7;
    }
}

static int check_request(const blkif_request_t *req, uint64_t seq, unsigned slots) {
    blkif_request_t want;
    fill_request(&want, seq, slots);
    if (req->operation != want.operation || req->nr_segments != want.nr_segments ||
        req->handle != want.handle || req->id != want.id || req->sector_number != want.sector_number)
        return -1;
    for (unsigned i = 0; i < want.nr_segments; i++)
        if (req->seg[i].gref != want.seg[i].gref || req->seg[i].first_sect != want.seg[i].first_sect ||
            req->seg[i].last_sect != want.seg[i].last_sect)
            return -1;
    return 0;
}

/* The response to request `seq`. */
static void fill_response(blkif_response_t *rsp, uint64_t seq, unsigned slots) {
    memset(rsp, 0, sizeof(*rsp));
    rsp->id = seq % slots;
    rsp->operation = (seq & 1) ? BLKIF_OP_WRITE : BLKIF_OP_READ;
    rsp->status = (seq % 3 == 0) ? BLKIF_RSP_ERROR : BLKIF_RSP_OKAY;
}

static int check_response(const blkif_response_t *rsp, uint64_t seq, unsigned slots) {
    blkif_response_t want;
    fill_response(&want, seq, slots);
    return (rsp->id == want.id && rsp->operation == want.operation && rsp->status == want.status) ? 0 : -1;
}

/* Batch sizes vary deterministically so every fill level of the ring is exercised. */
static unsigned next_batch(uint64_t *lcg, unsigned max) {
    *lcg = *lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return 1 + (unsigned)((*lcg >> 33) % max);
}

void xen_ring_init(void *page) {
    SHARED_RING_INIT((blkif_sring_t *)page);
}

/* C front end: sends `count` requests, expects their responses in order.
 * Returns 0, -1 (corrupt message), -2 (lost wake-up: waited too long), -3 (overflow). */
int xen_interop_front(void *page, unsigned bytes, uint64_t count, notify_fn notify, wait_fn wait,
                      void *ctx, struct peer_stats *stats) {
    blkif_sring_t *sring = page;
    blkif_front_ring_t ring;
    FRONT_RING_INIT(&ring, sring, bytes);
    unsigned slots = RING_SIZE(&ring);
    uint64_t sent = 0, done = 0, lcg = 1;
    while (done < count) {
        unsigned batch = next_batch(&lcg, slots);
        unsigned pushed = 0;
        while (pushed < batch && sent < count && !RING_FULL(&ring)) {
            fill_request(RING_GET_REQUEST(&ring, ring.req_prod_pvt), sent, slots);
            ring.req_prod_pvt++;
            sent++;
            pushed++;
        }
        if (pushed) {
            int must_notify;
            RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&ring, must_notify);
            if (must_notify) {
                notify(ctx);
                stats->notifications++;
            }
        }
        for (;;) {
            RING_IDX rp = sring->rsp_prod;
            xen_rmb();
            if (RING_RESPONSE_PROD_OVERFLOW(&ring, rp)) { stats->error_at = done; return -3; }
            while (ring.rsp_cons != rp) {
                blkif_response_t rsp;
                RING_COPY_RESPONSE(&ring, ring.rsp_cons, &rsp);
                ring.rsp_cons++;
                if (check_response(&rsp, done, slots)) { stats->error_at = done; return -1; }
                done++;
            }
            if (done == count || (sent < count && !RING_FULL(&ring)))
                break;
            int more;
            RING_FINAL_CHECK_FOR_RESPONSES(&ring, more);
            if (!more) {
                stats->sleeps++;
                if (wait(ctx)) { stats->error_at = done; return -2; }
            }
        }
    }
    stats->messages = done;
    return 0;
}

/* C back end: answers `count` requests in order, in batches of varying size. */
int xen_interop_back(void *page, unsigned bytes, uint64_t count, notify_fn notify, wait_fn wait,
                     void *ctx, struct peer_stats *stats) {
    blkif_sring_t *sring = page;
    blkif_back_ring_t ring;
    BACK_RING_INIT(&ring, sring, bytes);
    unsigned slots = RING_SIZE(&ring);
    uint64_t done = 0, lcg = 7;
    while (done < count) {
        RING_IDX rp = sring->req_prod;
        xen_rmb();
        if (RING_REQUEST_PROD_OVERFLOW(&ring, rp)) { stats->error_at = done; return -3; }
        unsigned batch = next_batch(&lcg, slots), answered = 0;
        while (ring.req_cons != rp && answered < batch) {
            blkif_request_t req;
            RING_COPY_REQUEST(&ring, ring.req_cons, &req);
            ring.req_cons++;
            if (check_request(&req, done, slots)) { stats->error_at = done; return -1; }
            fill_response(RING_GET_RESPONSE(&ring, ring.rsp_prod_pvt), done, slots);
            ring.rsp_prod_pvt++;
            done++;
            answered++;
        }
        if (answered) {
            int must_notify;
            RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(&ring, must_notify);
            if (must_notify) {
                notify(ctx);
                stats->notifications++;
            }
        }
        if (done == count || ring.req_cons != rp)
            continue;
        int more;
        RING_FINAL_CHECK_FOR_REQUESTS(&ring, more);
        if (!more) {
            stats->sleeps++;
            if (wait(ctx)) { stats->error_at = done; return -2; }
        }
    }
    stats->messages = done;
    return 0;
}

/* ---- Benchmark: both ends busy-poll; notification decisions are made and counted. ---- */

enum bench_mode { BENCH_LATENCY = 0, BENCH_PUSH_EACH = 1, BENCH_BATCHED = 2 };

/* Front end: `count` requests in `mode`; returns the number of "notify" decisions. */
uint64_t xen_bench_front(void *page, unsigned bytes, int mode, uint64_t count) {
    blkif_sring_t *sring = page;
    blkif_front_ring_t ring;
    FRONT_RING_INIT(&ring, sring, bytes);
    unsigned slots = RING_SIZE(&ring);
    uint64_t sent = 0, done = 0, notifies = 0;
    while (done < count) {
        unsigned limit = mode == BENCH_LATENCY ? 1 : slots;
        int pushed = 0;
        while (sent < count && ring.req_prod_pvt - ring.rsp_cons < limit) {
            blkif_request_t *req = RING_GET_REQUEST(&ring, ring.req_prod_pvt);
            req->operation = BLKIF_OP_READ;
            req->nr_segments = 1;
            req->handle = 0;
            req->id = sent % slots;
            req->sector_number = sent;
            req->seg[0].gref = (uint32_t)sent;
            req->seg[0].first_sect = 0;
            req->seg[0].last_sect = 7;
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
        while (ring.rsp_cons != rp) {
            blkif_response_t rsp;
            RING_COPY_RESPONSE(&ring, ring.rsp_cons, &rsp);
            if (rsp.id != done % slots) return (uint64_t)-1;
            ring.rsp_cons++;
            done++;
        }
    }
    return notifies;
}

/* Back end: answers `count` requests; one response push per batch it finds. */
uint64_t xen_bench_back(void *page, unsigned bytes, uint64_t count) {
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
