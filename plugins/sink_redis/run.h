/*
 * plugins/sink_redis/run.h: the state of one run of write() and the
 * primitives every step uses (run.c), shared by the batch files (apply.c,
 * fold.c, flags.c, load.c). Not included by sink.c.
 */
#ifndef FERRY_SINK_REDIS_RUN_H
#define FERRY_SINK_REDIS_RUN_H

#include <stddef.h>
#include <stdint.h>

#include "redis/tx.h"
#include "schematic/schematic.h"
#include "state.h"

#define REDIS_EVICT_COUNT "1000"
#define REDIS_NONE SIZE_MAX
/* redis_type_of() of a flag message. */
#define REDIS_T_FLAGS 2

enum { GROUP_NONE = 0, GROUP_SET = 1, GROUP_DEL = 2 };

/* A list of malloc'd strings. */
struct redis_strv {
    char **v;
    size_t n;
    size_t cap;
};

/* One company or user touched by a run. */
struct redis_group {
    int t;          /* REDIS_T_* */
    const char *id; /* borrowed from the message or run->ids */
    char *id_key;
    size_t head, tail; /* run positions of its first/last message */
    char *base;        /* the cached value (MGET), or NULL */
    size_t base_len;
    int op;                 /* GROUP_* */
    struct sch_entity val;  /* GROUP_SET: the entity when parsed here */
    const char *value;      /* GROUP_SET: val.json or a message payload */
    size_t value_len;
    struct redis_strv sets; /* lookup keys to SET */
    struct redis_strv dels; /* keys to DEL (besides the ID key) */
};

struct redis_flags {
    int loaded;              /* instance snapshot state copied in */
    struct redis_keyset acc; /* keys of pages since the last final one */
    uint64_t acc_written;
    int acc_open;             /* a paginated snapshot is in progress */
    struct redis_keyset keep; /* keys the last final snapshot keeps */
    uint64_t keep_written;
    int have_final;
};

struct redis_run {
    struct redis_worker *w;
    struct redis_sink *s;
    struct ferry_batch *b;
    const size_t *idx; /* run position -> batch index */
    size_t n;
    const struct ferry_pos *commit;
    size_t *next; /* next message of the same group */
    char **ids;   /* ids taken from payloads (owned) */
    struct redis_group *groups;
    size_t ngroups;
    size_t *table; /* open addressing: group index + 1, 0 empty */
    size_t table_cap;
    int has_flags;
    struct redis_flags fl;
    /* Operation counts, added to the metrics once. */
    uint64_t n_set, n_del, n_mget, n_eval, n_rt;
};

/* run.c: pieces every step uses. */
const struct ferry_msg *redis_msg(const struct redis_run *run, size_t k);
enum sch_type redis_sch_type(int t);
const char *redis_type_name(int t);
/* REDIS_T_COMPANY, REDIS_T_USER, REDIS_T_FLAGS, or -1. */
int redis_type_of(const struct ferry_msg *m);
/* Queue SET key val [PX ttl] / one DEL of key0 (may be NULL) and more. */
void redis_q_set(struct redis_run *run, const char *key, const char *val,
                 size_t vlen);
void redis_q_del(struct redis_run *run, const char *key0,
                 const struct redis_strv *more);
void redis_strv_release(struct redis_strv *sv);

#endif
