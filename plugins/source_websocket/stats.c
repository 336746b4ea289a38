/*
 * plugins/source_websocket/stats.c: the datastream source's counters:
 * messages by entity and type, invalid messages by reason (counted, and
 * logged at most once a second), the metrics it registers and the summary
 * line it writes when it stops. Everything here runs on the lws thread
 * except where a function says otherwise.
 */
#include <stdio.h>
#include <string.h>

#include "wsrc.h"

static int ws_etype_index(const char *et)
{
    if (!strcmp(et, "company"))
        return 0;
    if (!strcmp(et, "user"))
        return 1;
    if (!strcmp(et, "flags"))
        return 2;
    return 3;
}

static const char *const ws_etype_names[4] = { "company", "user", "flags",
                                               "control" };
static const char *const ws_op_names[6] = { "full",     "partial", "delete",
                                            "snapshot", "reload",  "other" };

static int ws_op_index(uint32_t op)
{
    switch (op) {
    case FERRY_OP_FULL:
        return 0;
    case FERRY_OP_PARTIAL:
        return 1;
    case FERRY_OP_DELETE:
        return 2;
    case FERRY_OP_SNAPSHOT:
        return 3;
    case FERRY_OP_RELOAD:
        return 4;
    default:
        return 5;
    }
}

/* See wsrc.h. */
void ws_count_message(struct ws_source *s, const struct ferry_msg *m)
{
    int e = ws_etype_index(m->entity_type), o = ws_op_index(m->op);

    if (!s->m_msgs[e][o]) {
        const char *labels[] = { "entity_type", ws_etype_names[e],
                                 "message_type", ws_op_names[o], NULL };

        s->m_msgs[e][o] = ws_metric(
            s, FERRY_METRIC_COUNTER, "ferry_source_messages_total",
            "Messages received by the source, by entity and message type",
            labels);
    }
    ws_metric_add(s, s->m_msgs[e][o], 1);
    s->n_messages++;
}

/* See wsrc.h. */
void ws_invalid(struct ws_source *s, const char *reason,
                       const char *detail, const char *stream_id)
{
    unsigned long suppressed;
    size_t i;

    for (i = 0; i < s->nreasons; i++)
        if (!strcmp(s->reasons[i].reason, reason))
            break;
    if (i == s->nreasons && i < WS_MAX_REASONS) {
        const char *labels[] = { "reason", reason, NULL };

        s->reasons[i].reason = reason;
        s->reasons[i].metric = ws_metric(
            s, FERRY_METRIC_COUNTER, "ferry_source_invalid_messages_total",
            "Messages the source rejected, by reason", labels);
        s->nreasons++;
    }
    if (i < s->nreasons) {
        s->reasons[i].count++;
        ws_metric_add(s, s->reasons[i].metric, 1);
    }
    s->n_invalid++;
    if (!ws_ratelog_ok(&s->rl_invalid, ws_now(s), WS_SEC_NS, &suppressed))
        return;
    WS_LOG(s, FERRY_LOG_WARN, "invalid message skipped (%s): %s%s%s", reason,
           detail, stream_id && *stream_id ? " at stream_id " : "",
           stream_id && *stream_id ? stream_id : "");
    if (suppressed)
        WS_LOG(s, FERRY_LOG_WARN,
               "%lu more invalid messages in the last second (not logged)",
               suppressed);
}

/* See wsrc.h. */
void ws_register_metrics(struct ws_source *s)
{
    s->m_connected = ws_metric(s, FERRY_METRIC_GAUGE, "ferry_source_connected",
                               "1 while the datastream is connected", NULL);
    s->m_reconnects =
        ws_metric(s, FERRY_METRIC_COUNTER, "ferry_source_reconnects_total",
                  "Datastream dials after the first", NULL);
    s->m_unhealthy = ws_metric(
        s, FERRY_METRIC_GAUGE, "ferry_source_unhealthy",
        "1 while the datastream refuses the API key (close 4001)", NULL);
    s->m_errors = ws_metric(s, FERRY_METRIC_COUNTER, "ferry_source_errors_total",
                            "Datastream error messages received", NULL);
    s->m_stream_time =
        ws_metric(s, FERRY_METRIC_GAUGE, "ferry_source_stream_timestamp_seconds",
                  "Stream time of the newest received position", NULL);
    s->m_held = ws_metric(s, FERRY_METRIC_GAUGE, "ferry_source_held_messages",
                          "Messages held or queued inside the source", NULL);
    s->m_paused = ws_metric(
        s, FERRY_METRIC_COUNTER, "ferry_source_paused_total",
        "Times reading the datastream paused (backpressure or a full hold)",
        NULL);
    s->m_load_requests =
        ws_metric(s, FERRY_METRIC_COUNTER, "ferry_source_load_requests_total",
                  "REST requests of initial loads", NULL);
    s->m_load_failures =
        ws_metric(s, FERRY_METRIC_COUNTER, "ferry_source_load_failures_total",
                  "REST requests of initial loads that failed (retried)",
                  NULL);
    s->m_load_entities =
        ws_metric(s, FERRY_METRIC_COUNTER, "ferry_source_load_entities_total",
                  "Companies and users emitted by initial loads", NULL);
}

/* See wsrc.h. */
void ws_summary(struct ws_source *s)
{
    char buf[512];
    size_t i, off = 0;

    buf[0] = '\0';
    for (i = 0; i < s->nreasons && off < sizeof(buf); i++) {
        int n = snprintf(buf + off, sizeof(buf) - off, "%s%s=%lu",
                         i ? " " : " (", s->reasons[i].reason,
                         s->reasons[i].count);
        if (n < 0)
            break;
        off += (size_t)n;
    }
    if (s->nreasons && off < sizeof(buf) - 1)
        snprintf(buf + off, sizeof(buf) - off, ")");
    WS_LOG(s, FERRY_LOG_INFO,
           "stopped: %lu messages, %lu invalid%s, %lu errors, %lu "
           "reconnects; %zu queued messages not emitted",
           s->n_messages, s->n_invalid, buf, s->n_errors,
           s->dials ? s->dials - 1 : 0, s->queue.len);
}
