/*
 * plugins/lib/redis/tx.c: one pipelined transaction (tx.h).
 */
#include <stdio.h>
#include <string.h>

#include "redis/cmd.h"
#include "redis/tx.h"

void redis_tx_begin(struct redis_tx *tx, struct redis_link *link)
{
    memset(tx, 0, sizeof(*tx));
    tx->link = link;
    redis_conn_reset(link->conn);
    redis_conn_cmd(link->conn, "MULTI", NULL);
}

size_t redis_tx_count(const struct redis_tx *tx)
{
    return redis_conn_queued(tx->link->conn) - 1;
}

void redis_tx_cursor(struct redis_tx *tx, const char *key,
                     const struct ferry_pos *pos)
{
    tx->cursor_at = redis_tx_count(tx);
    tx->has_cursor = 1;
    redis_cmd_cursor(tx->link->conn, key, pos);
}

static int redis_tx_is_cursor(const struct redis_tx *tx, size_t i)
{
    return tx->has_cursor && i == tx->cursor_at;
}

/* Worst class among the queue-time replies 1..nq (the cursor's own data
 * error is only remembered when nothing else failed). */
static int redis_tx_queued(struct redis_tx *tx, size_t nq)
{
    struct redis_conn *c = tx->link->conn;
    int worst = REDIS_CLASS_OK, cls;
    size_t i;

    for (i = 1; i <= nq; i++) {
        redisReply *r = redis_conn_reply(c, i);

        if (!r || r->type != REDIS_REPLY_ERROR)
            continue;
        cls = redis_reply_class(r);
        if (worst < cls)
            worst = cls;
        if (!tx->error[0] || !redis_tx_is_cursor(tx, i - 1))
            snprintf(tx->error, sizeof(tx->error), "%s", r->str);
    }
    return worst;
}

/* Worst class among the replies of the last exec. */
static int redis_tx_class(struct redis_tx *tx, size_t nq)
{
    struct redis_instance *in = tx->link->in;
    struct redis_conn *c = tx->link->conn;
    redisReply *exec = redis_conn_reply(c, nq + 1), *r;
    int worst = redis_tx_queued(tx, nq), cls;
    size_t i;

    if (!exec)
        return REDIS_CLASS_RECONNECT;
    if (exec->type == REDIS_REPLY_ERROR) {
        /* EXECABORT: nothing ran. */
        if (worst == REDIS_CLASS_OK) {
            worst = redis_reply_class(exec);
            snprintf(tx->error, sizeof(tx->error), "%s", exec->str);
        }
        return worst ? worst : REDIS_CLASS_DATA;
    }
    if (exec->type != REDIS_REPLY_ARRAY) {
        snprintf(tx->error, sizeof(tx->error), "unexpected EXEC reply");
        return REDIS_CLASS_RECONNECT;
    }
    for (i = 0; i < exec->elements; i++) {
        r = exec->element[i];
        if (r->type != REDIS_REPLY_ERROR)
            continue;
        cls = redis_reply_class(r);
        if (redis_tx_is_cursor(tx, i) && cls == REDIS_CLASS_DATA) {
            /* The commands were applied; only the cursor did not move,
             * which errs on the side of replaying more. */
            in->host->log(in->ctx, FERRY_LOG_ERROR,
                          "replay cursor not stored: %s", r->str);
            continue;
        }
        if (worst < cls)
            worst = cls;
        snprintf(tx->error, sizeof(tx->error), "%s", r->str);
    }
    return worst;
}

int redis_tx_commit(struct redis_tx *tx)
{
    struct redis_link *link = tx->link;
    struct redis_instance *in = link->in;
    size_t nq = redis_tx_count(tx);
    int cls;

    if (nq == 0) {
        redis_conn_reset(link->conn);
        return FERRY_OK;
    }
    redis_conn_cmd(link->conn, "EXEC", NULL);
    in->host->metric_add(in->m.roundtrips, 1);
    if (redis_conn_exec(link->conn) != FERRY_OK) {
        snprintf(tx->error, sizeof(tx->error), "%s",
                 redis_conn_error(link->conn));
        redis_instance_component(in, FERRY_COMPONENT_DISCONNECTED);
        return FERRY_RETRY;
    }
    cls = redis_tx_class(tx, nq);
    redis_conn_reset(link->conn);
    switch (cls) {
    case REDIS_CLASS_OK:
        return FERRY_OK;
    case REDIS_CLASS_DATA:
        return REDIS_DATA_ERROR;
    case REDIS_CLASS_RECONNECT:
        redis_conn_close(link->conn);
        /* fall through */
    default:
        in->host->log(in->ctx, FERRY_LOG_WARN, "worker %u: Redis: %s",
                      link->index, tx->error);
        redis_instance_component(in, redis_conn_is_open(link->conn)
                                         ? FERRY_COMPONENT_CONNECTED
                                         : FERRY_COMPONENT_DISCONNECTED);
        return FERRY_RETRY;
    }
}
