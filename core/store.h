/*
 * core/store.h: the message store. Every emitted message is copied into
 * one allocation the core owns (struct cmsg) and shared by reference
 * between the routes that take it; the last reference marks its sequence
 * number done in the source's tracker.
 */
#ifndef FERRY_CORE_STORE_H
#define FERRY_CORE_STORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "ferry/message.h"
#include "sched_int.h"

/*
 * The rendezvous for a control message (a barrier) across every worker of
 * every route of its source: all of them arrive (so everything emitted
 * before it is applied everywhere), then each distinct sink gets it once,
 * from the first worker of the first route into that sink, and then all
 * go on.
 */
struct cbarrier {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned total;     /* workers that must arrive */
    unsigned arrived;
    unsigned sinks;     /* deliveries to wait for */
    unsigned delivered;
    unsigned left;      /* workers still inside */
};

/* A message as the core holds it: the public view first, then bookkeeping.
 * Keys, strings and payload follow in the same allocation. */
struct cmsg {
    struct ferry_msg m;
    atomic_uint refs;      /* routes (plus emit's guard) still holding it */
    atomic_int abandoned;  /* a route gave up on it at shutdown */
    struct ferry_ctx *source;
    uint64_t hash;
    struct cbarrier *barrier; /* control messages only */
};

/* The key that orders messages of one entity type: the order key, or the
 * entity id when the source gave none. Inline: admission and coalescing
 * ask for it on every message. */
static inline const char *cmsg_order_key(const struct ferry_msg *m)
{
    return m->order_key[0] ? m->order_key : m->entity_id;
}

/* Nonzero for a control message (a barrier). Inline for the same reason. */
static inline int cmsg_is_control(const struct cmsg *cm)
{
    return FERRY_OP_IS_CONTROL(cm->m.op);
}

/*
 * Copies in (strings, keys and payload) into a new cmsg of source src,
 * holding one reference (emit's guard) and no sequence number yet. The
 * caller owns the result; NULL when out of memory. Any thread.
 */
struct cmsg *cmsg_new(struct ferry_ctx *src, const struct ferry_msg *in);
/* Frees cm and its barrier regardless of references (a message that
 * never entered the pipeline). */
void cmsg_free(struct cmsg *cm);
/* Drops one reference; the last one marks the sequence number done
 * (unless a route abandoned the message) and frees it. Any thread. */
void cmsg_release(struct cmsg *cm);
/* channel_free() callback for messages still queued when the pipeline is
 * freed: marks them abandoned (never applied) and drops the channel's
 * reference. No worker may be running. */
void cmsg_release_item(void *item);

/* Stores the committed replay position of source src in out. Any thread. */
void sched_committed(struct ferry_ctx *src, struct ferry_pos *out);

#endif
