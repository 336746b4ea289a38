/*
 * core/store.c: the message store: copying an emitted message into one
 * core-owned allocation, dropping references to it, and the committed
 * position that the last references advance. See core/store.h.
 */
#include "store.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "tracker.h"

static uint64_t fnv1a(uint64_t h, const char *s)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

static const char *nz(const char *s)
{
    return s ? s : "";
}

struct cmsg *cmsg_new(struct ferry_ctx *src, const struct ferry_msg *in)
{
    const char *etype = nz(in->entity_type);
    const char *eid = nz(in->entity_id);
    const char *okey = nz(in->order_key);
    size_t need = sizeof(struct cmsg);
    size_t nkeys = in->keys ? in->nkeys : 0;

    need += nkeys * sizeof(struct ferry_kv);
    need += strlen(etype) + strlen(eid) + strlen(okey) + 3;
    for (size_t i = 0; i < nkeys; i++)
        need += strlen(nz(in->keys[i].key)) + strlen(nz(in->keys[i].value)) +
                2;
    need += in->payload_len + 1;

    struct cmsg *cm = malloc(need);
    if (!cm)
        return NULL;
    memset(cm, 0, sizeof(*cm));
    char *p = (char *)(cm + 1);
    struct ferry_kv *kv = (struct ferry_kv *)p;
    p += nkeys * sizeof(struct ferry_kv);

#define COPY_STR(dst, s)                                                     \
    do {                                                                     \
        size_t l_ = strlen(s) + 1;                                           \
        memcpy(p, (s), l_);                                                  \
        (dst) = p;                                                           \
        p += l_;                                                             \
    } while (0)

    COPY_STR(cm->m.entity_type, etype);
    COPY_STR(cm->m.entity_id, eid);
    COPY_STR(cm->m.order_key, okey);
    for (size_t i = 0; i < nkeys; i++) {
        COPY_STR(kv[i].key, nz(in->keys[i].key));
        COPY_STR(kv[i].value, nz(in->keys[i].value));
    }
#undef COPY_STR
    if (in->payload_len)
        memcpy(p, in->payload, in->payload_len);
    p[in->payload_len] = '\0';

    cm->m.struct_size = sizeof(struct ferry_msg);
    cm->m.op = in->op;
    cm->m.flags = in->flags;
    cm->m.nkeys = (uint32_t)nkeys;
    cm->m.keys = nkeys ? kv : NULL;
    cm->m.payload = p;
    cm->m.payload_len = in->payload_len;
    cm->m.pos = in->pos;
    cm->m.recv_ns = in->recv_ns ? in->recv_ns : clock_now_ns();
    cm->source = src;
    cm->hash = fnv1a(fnv1a(0xcbf29ce484222325ull, cm->m.entity_type) ^ 0xff,
                     cmsg_order_key(&cm->m));
    atomic_init(&cm->refs, 1); /* emit's guard */
    atomic_init(&cm->abandoned, 0);
    return cm;
}

void cmsg_free(struct cmsg *cm)
{
    if (cm->barrier) {
        pthread_mutex_destroy(&cm->barrier->lock);
        pthread_cond_destroy(&cm->barrier->cond);
        free(cm->barrier);
    }
    free(cm);
}

/* The last reference of a message still owned by its source's pipeline
 * advances the tracker: see core/store.h. */
void cmsg_release(struct cmsg *cm)
{
    if (atomic_fetch_sub(&cm->refs, 1) != 1)
        return;
    if (!atomic_load(&cm->abandoned) && cm->m.seq)
        tracker_done(&cm->source->tracker, cm->m.seq);
    cmsg_free(cm);
}

void cmsg_release_item(void *item)
{
    struct cmsg *cm = item;

    /* A barrier is queued in every worker channel of its source but holds
     * one reference for all of them; no worker has reached it (they would
     * all have had to), so it is in b->left channels: drop the reference
     * with the last copy. */
    if (cm->barrier) {
        pthread_mutex_lock(&cm->barrier->lock);
        int last = --cm->barrier->left == 0;
        pthread_mutex_unlock(&cm->barrier->lock);
        if (!last)
            return;
    }
    /* Still queued when the pipeline is freed: never applied. */
    atomic_store(&cm->abandoned, 1);
    cmsg_release(cm);
}

void sched_committed(struct ferry_ctx *src, struct ferry_pos *out)
{
    *out = tracker_committed(&src->tracker);
}
