/*
 * ferry/message.h: the message that flows from sources to sinks.
 *
 * Ownership:
 *  - A source fills a struct ferry_msg on its own stack or heap and hands it
 *    to host->emit(). emit() copies everything the struct points to into
 *    one core-owned allocation, whatever it returns; the source keeps (and
 *    frees) its own buffers.
 *  - A sink sees core-owned messages in a struct ferry_batch. They are
 *    borrowed for the duration of the write() call only: copy what must
 *    outlive it.
 *  - Every string is NUL-terminated and never NULL in a core-owned message
 *    (absent strings are ""). payload is NUL-terminated as well, and
 *    payload_len excludes the terminator.
 *
 * The struct only ever grows at its end; struct_size tells readers which
 * fields exist.
 */
#ifndef FERRY_MESSAGE_H
#define FERRY_MESSAGE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

enum ferry_op {
    FERRY_OP_FULL = 1,     /* the whole entity: replace */
    FERRY_OP_PARTIAL = 2,  /* a subset of fields: merge into the stored one */
    FERRY_OP_DELETE = 3,   /* remove the entity */
    FERRY_OP_SNAPSHOT = 4, /* a complete set of one entity type (flags) */
    /* Control messages. The core delivers them as barriers: every message
     * the source emitted before one is applied first, the control message
     * is handed to the sink alone, and nothing emitted after it is handed
     * to the sink until it is done. */
    FERRY_OP_RELOAD = 16,   /* reset the replay cursor; an initial load follows */
    FERRY_OP_LOAD_BEGIN = 17, /* an initial load starts */
    FERRY_OP_LOAD_END = 18  /* the initial load is complete: evict what it
                             * did not write */
};

#define FERRY_OP_IS_CONTROL(op) ((op) >= FERRY_OP_RELOAD)

/* The name of an operation as logs, metrics and sink_file write it. */
static inline const char *ferry_op_name(uint32_t op)
{
    switch (op) {
    case FERRY_OP_FULL:
        return "full";
    case FERRY_OP_PARTIAL:
        return "partial";
    case FERRY_OP_DELETE:
        return "delete";
    case FERRY_OP_SNAPSHOT:
        return "snapshot";
    case FERRY_OP_RELOAD:
        return "reload";
    case FERRY_OP_LOAD_BEGIN:
        return "load_begin";
    case FERRY_OP_LOAD_END:
        return "load_end";
    default:
        return "unknown";
    }
}

/* msg->flags */
enum {
    /* A snapshot page that more pages follow (paginated flags). */
    FERRY_MSG_F_MORE = 1u << 0,
    /* The message came from the initial (bulk) load, not the stream. */
    FERRY_MSG_F_LOAD = 1u << 1,
    /* Bits 16 to 31 are for conventions between cooperating plugins (a
     * source and the sinks that understand its payloads, such as
     * SCH_MSG_F_NORMALIZED in the Schematic library). The core copies
     * them unchanged and never interprets them; a sink that does not know
     * a bit ignores it. */
    FERRY_MSG_F_PLUGIN_FIRST = 1u << 16
};

/*
 * A source stream position, "<ms>-<seq>" in the Schematic datastream.
 * Positions compare as the pair (ms, seq). set == 0 means "no position"
 * (snapshots, bulk-load entities).
 */
struct ferry_pos {
    uint64_t ms;
    uint64_t seq;
    int set;
};

static inline int ferry_pos_cmp(const struct ferry_pos *a,
                                const struct ferry_pos *b)
{
    if (a->set != b->set)
        return a->set < b->set ? -1 : 1;
    if (a->ms != b->ms)
        return a->ms < b->ms ? -1 : 1;
    if (a->seq != b->seq)
        return a->seq < b->seq ? -1 : 1;
    return 0;
}

/* Longest text form of a position: two 20-digit numbers, '-', NUL. */
#define FERRY_POS_STRLEN 42

/* Writes pos as "<ms>-<seq>" (the datastream's stream_id) into buf (at
 * least FERRY_POS_STRLEN bytes) and returns buf. */
static inline char *ferry_pos_format(const struct ferry_pos *pos, char *buf,
                                     size_t len)
{
    snprintf(buf, len, "%llu-%llu", (unsigned long long)pos->ms,
             (unsigned long long)pos->seq);
    return buf;
}

struct ferry_kv {
    const char *key;
    const char *value;
};

struct ferry_msg {
    /* sizeof(struct ferry_msg) of whoever filled it in. */
    uint32_t struct_size;
    /* enum ferry_op. */
    uint32_t op;
    /* FERRY_MSG_F_* bits. */
    uint32_t flags;
    /* Number of entries in keys. */
    uint32_t nkeys;
    /* Short entity type: "company", "user", "flags", or a plugin's own.
     * Routes match on it. */
    const char *entity_type;
    /* The entity's id; "" for snapshots and control messages. */
    const char *entity_id;
    /* Messages with the same (entity_type, order key) are applied in the
     * order they were emitted; the order key is order_key when it is not
     * empty, else entity_id. */
    const char *order_key;
    /* The entity's lookup keys (company.keys), or NULL when nkeys is 0. */
    const struct ferry_kv *keys;
    /* The payload (for the datastream: compact JSON of the entity). */
    const char *payload;
    size_t payload_len;
    /* Stream position, if the source has one. */
    struct ferry_pos pos;
    /* Receive time on the host's monotonic clock (ns). A source may leave
     * it 0 and emit() fills in the time of the call. */
    uint64_t recv_ns;
    /* Set by the core: per-source emit sequence number, starting at 1. */
    uint64_t seq;
};

#ifdef __cplusplus
}
#endif

#endif /* FERRY_MESSAGE_H */
