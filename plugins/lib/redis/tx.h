/*
 * plugins/lib/redis/tx.h: one pipelined transaction on a worker's link:
 * MULTI, the caller's commands, optionally the replay cursor's
 * compare-and-set, EXEC, all in one round trip, and the verdict on its
 * replies.
 *
 * The cursor goes inside the transaction so that it cannot move unless
 * every command before it was applied: a queue-time refusal (ACL, OOM)
 * discards the whole transaction (EXECABORT), so nothing is half-applied
 * and it can simply be sent again.
 *
 *   struct redis_tx tx;
 *   redis_tx_begin(&tx, link);
 *   redis_cmd_set(link->conn, ...); ...      the commands, in order
 *   redis_tx_cursor(&tx, cursor_key, &b->commit);
 *   rc = redis_tx_commit(&tx);               FERRY_OK, FERRY_RETRY or
 *                                            REDIS_DATA_ERROR
 *
 * The link's worker thread only.
 */
#ifndef FERRY_REDIS_TX_H
#define FERRY_REDIS_TX_H

#include <stddef.h>

#include <ferry/ferry.h>

#include "redis/instance.h"

/* Redis refused a command for its content or keys (NOPERM, WRONGTYPE,
 * ERR ...): sending it again will not help, but it is safe (either
 * nothing ran, or every step is idempotent). A sink then isolates the
 * refused message. */
#define REDIS_DATA_ERROR (-100)

struct redis_tx {
    struct redis_link *link;
    size_t first;     /* commands queued before MULTI */
    size_t cursor_at; /* index of the cursor script among the commands */
    int has_cursor;
    char error[256]; /* the last reply error, for log lines */
};

/* Resets the link's queue and queues MULTI. */
void redis_tx_begin(struct redis_tx *tx, struct redis_link *link);

/* Queues the cursor compare-and-set of pos at key (redis_cmd_cursor());
 * its own refusal is logged, not counted against the transaction. */
void redis_tx_cursor(struct redis_tx *tx, const char *key,
                     const struct ferry_pos *pos);

/* Commands queued since MULTI. */
size_t redis_tx_count(const struct redis_tx *tx);

/*
 * Queues EXEC and sends everything (one round trip; none when nothing
 * was queued after MULTI). Returns FERRY_OK; FERRY_RETRY on a connection
 * error or a transient refusal (logged; the connection is closed when it
 * is the wrong one: READONLY, MOVED ...); REDIS_DATA_ERROR when Redis
 * refused a command for its content (reason in tx->error). The replies
 * are dropped either way.
 */
int redis_tx_commit(struct redis_tx *tx);

#endif
