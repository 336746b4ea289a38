/*
 * core/tracker.c: commit tracking (see tracker.h).
 */
#include "tracker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tracker_init(struct tracker *t)
{
    pthread_mutex_init(&t->lock, NULL);
    t->base = 1;
    t->next = 1;
    t->cap = 1024;
    t->done = calloc(t->cap, 1);
    t->pos = calloc(t->cap, sizeof(*t->pos));
    if (!t->done || !t->pos)
        abort();
    memset(&t->committed, 0, sizeof(t->committed));
}

void tracker_release(struct tracker *t)
{
    free(t->done);
    free(t->pos);
    t->done = NULL;
    t->pos = NULL;
    pthread_mutex_destroy(&t->lock);
}

static void grow(struct tracker *t)
{
    size_t ncap = t->cap * 2;
    unsigned char *nd = calloc(ncap, 1);
    struct ferry_pos *np = calloc(ncap, sizeof(*np));

    if (!nd || !np)
        abort();
    for (uint64_t s = t->base; s < t->next; s++) {
        nd[s & (ncap - 1)] = t->done[s & (t->cap - 1)];
        np[s & (ncap - 1)] = t->pos[s & (t->cap - 1)];
    }
    free(t->done);
    free(t->pos);
    t->done = nd;
    t->pos = np;
    t->cap = ncap;
}

uint64_t tracker_add(struct tracker *t, const struct ferry_pos *pos)
{
    pthread_mutex_lock(&t->lock);
    if (t->next - t->base >= t->cap)
        grow(t);
    uint64_t seq = t->next++;
    t->done[seq & (t->cap - 1)] = 0;
    t->pos[seq & (t->cap - 1)] = *pos;
    pthread_mutex_unlock(&t->lock);
    return seq;
}

uint64_t tracker_peek(struct tracker *t)
{
    pthread_mutex_lock(&t->lock);
    uint64_t n = t->next;
    pthread_mutex_unlock(&t->lock);
    return n;
}

/* Advances base over done entries, moving the committed position. */
static void advance(struct tracker *t)
{
    while (t->base < t->next && t->done[t->base & (t->cap - 1)] == 1) {
        struct ferry_pos *p = &t->pos[t->base & (t->cap - 1)];
        /* A replayed older position must not move the cursor back. */
        if (p->set && ferry_pos_cmp(p, &t->committed) > 0)
            t->committed = *p;
        t->base++;
    }
}

void tracker_done(struct tracker *t, uint64_t seq)
{
    pthread_mutex_lock(&t->lock);
    if (seq >= t->base && seq < t->next) {
        t->done[seq & (t->cap - 1)] = 1;
        if (seq == t->base)
            advance(t);
    }
    pthread_mutex_unlock(&t->lock);
}

struct ferry_pos tracker_preview(struct tracker *t, const uint64_t *seqs,
                                 size_t n)
{
    struct ferry_pos out;

    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < n; i++) {
        uint64_t s = seqs[i];
        if (s >= t->base && s < t->next && !t->done[s & (t->cap - 1)])
            t->done[s & (t->cap - 1)] = 2;
    }
    out = t->committed;
    for (uint64_t s = t->base; s < t->next && t->done[s & (t->cap - 1)];
         s++) {
        struct ferry_pos *p = &t->pos[s & (t->cap - 1)];
        if (p->set && ferry_pos_cmp(p, &out) > 0)
            out = *p;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t s = seqs[i];
        if (s >= t->base && s < t->next && t->done[s & (t->cap - 1)] == 2)
            t->done[s & (t->cap - 1)] = 0;
    }
    pthread_mutex_unlock(&t->lock);
    return out;
}

struct ferry_pos tracker_committed(struct tracker *t)
{
    pthread_mutex_lock(&t->lock);
    struct ferry_pos p = t->committed;
    pthread_mutex_unlock(&t->lock);
    return p;
}

void tracker_set_committed(struct tracker *t, const struct ferry_pos *pos)
{
    pthread_mutex_lock(&t->lock);
    t->committed = *pos;
    pthread_mutex_unlock(&t->lock);
}

uint64_t tracker_pending(struct tracker *t)
{
    pthread_mutex_lock(&t->lock);
    uint64_t n = t->next - t->base;
    pthread_mutex_unlock(&t->lock);
    return n;
}

void tracker_format_pos(const struct ferry_pos *p, char *buf, size_t len)
{
    if (p->set)
        ferry_pos_format(p, buf, len);
    else
        snprintf(buf, len, "-");
}
