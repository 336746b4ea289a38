/*
 * core/tracker.h: commit tracking for one source.
 *
 * Every message a source emits gets the next sequence number; workers
 * finish messages out of order (different workers, retries, fan-out). The
 * tracker marks sequence numbers done and keeps the committed position: the
 * newest stream position among the contiguous prefix of done sequence
 * numbers. It never passes a gap, so a replay from the committed position
 * re-delivers every message that may not have been applied.
 *
 * Thread-safe. Memory grows with the number of messages in flight (a ring
 * that doubles when full).
 */
#ifndef FERRY_CORE_TRACKER_H
#define FERRY_CORE_TRACKER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/message.h"

struct tracker {
    pthread_mutex_t lock;
    uint64_t base;          /* lowest sequence number not yet done */
    uint64_t next;          /* next sequence number to hand out */
    size_t cap;             /* ring size, a power of two */
    unsigned char *done;    /* ring: 0 pending, 1 done, 2 tentatively done */
    struct ferry_pos *pos;  /* ring: position of each sequence number */
    struct ferry_pos committed;
};

void tracker_init(struct tracker *t);
void tracker_release(struct tracker *t);
/* Hands out the next sequence number (from 1) for a message at pos. */
uint64_t tracker_add(struct tracker *t, const struct ferry_pos *pos);
/* The sequence number tracker_add() will hand out next. Only meaningful
 * while the caller serialises tracker_add() calls. */
uint64_t tracker_peek(struct tracker *t);
/* Marks seq done. Unknown or already-passed numbers are ignored. */
void tracker_done(struct tracker *t, uint64_t seq);
/* The committed position as it would be if seqs[0..n) were done too. */
struct ferry_pos tracker_preview(struct tracker *t, const uint64_t *seqs,
                                 size_t n);
/* The committed position. */
struct ferry_pos tracker_committed(struct tracker *t);
/* Sets the committed position (a position recorded by a sink at start). */
void tracker_set_committed(struct tracker *t, const struct ferry_pos *pos);
/* Number of sequence numbers handed out and not yet done. */
uint64_t tracker_pending(struct tracker *t);
/* Formats p for logs and /debug into buf: "<ms>-<seq>", or "-" when p is
 * not set. Pure; any thread. */
void tracker_format_pos(const struct ferry_pos *p, char *buf, size_t len);

#endif
