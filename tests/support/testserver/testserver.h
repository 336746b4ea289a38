/*
 * tests/support/testserver/testserver.h: the bundled Schematic datastream
 * test server (build/tests/testserver). Internal interfaces between its
 * files: options, the deterministic workload generator (workload.c), the
 * cached-model -> REST conversion (rest.c), the JSONL event log (evlog.c)
 * and the libwebsockets server (server.c).
 *
 * Everything runs on one thread: the generator at startup, then the lws
 * event loop.
 */
#ifndef FERRY_TESTSERVER_H
#define FERRY_TESTSERVER_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "oracle.h"
#include "schematic/schematic.h"

/* Stream positions are "<TS_BASE_MS + i>-0" for message i (1-based). */
#define TS_BASE_MS 1767225600000LL
/* The base actually used: TS_BASE_MS, or the start time with
 * --base-ms now (so replication lag reads as real seconds in demos). */
extern long long ts_base_ms;

struct ts_opts {
    int port;
    int tls_port; /* -1: no TLS vhost */
    const char *cert;
    const char *key;
    const char *ready_file;
    const char *api_key;
    uint64_t seed;
    long companies;
    long users;
    long flags;
    long messages;
    int mix_full;
    int mix_partial;
    int mix_delete;
    long company_bytes;
    double rate; /* messages per second, 0 = unlimited */
    long disconnect_every;
    long reload_at;
    long malformed_every;
    int malformed_huge;
    long stall_after;
    const char *cache_version;
    const char *key_prefix;
    const char *expect;
    const char *log;
    const char *samples; /* --samples DIR */
};

/* ---- samples.c ----------------------------------------------------------- */

struct ts_samples {
    int on;
    char **flags; /* compact JSON of each sample flag */
    size_t nflags;
    char *company_frame; /* msg-02 without stream_id */
    char *user_frame;    /* msg-03 without stream_id */
    json_t *company, *user, *flag_objs;
};
extern struct ts_samples ts_samples;
int samples_load(const char *dir);
int samples_expect(json_t *out, const char *prefix, const char *version);
void samples_release(void);

/* ---- workload.c ---------------------------------------------------------- */

struct ts_rng {
    uint64_t s;
};

struct ts_buf {
    unsigned char *p;
    size_t len;
    size_t cap;
};

/* A cached value: normalised JSON (oracle_normalize's bytes) stored in the
 * world's frames buffer (inside a full frame, whose data is exactly the
 * normalised entity) or in its states buffer. Buffers only grow, so a
 * value never changes once written. */
struct ts_val {
    uint64_t off;
    uint32_t len;
    uint8_t in_frames;
    uint8_t live;
};

/* What stream message i does to the cache: slot `slot` of `type` becomes
 * v (v.live = 0: deleted); type 0 when nothing changes (a partial for an
 * absent entity, a full without keys). */
struct ts_delta {
    struct ts_val v;
    uint32_t slot;
    uint8_t type;
};

/*
 * Everything the server serves, built once at startup: the pre-serialised
 * stream (websocket header included), the per-message deltas and the
 * initial state. Slot n of a type holds comp_<n> / user_<n> / flag_<n>.
 */
struct ts_world {
    struct ts_buf frames;
    size_t *off; /* off[i]: message i; off[n + 1]: the end */
    long n;
    struct ts_buf states;
    struct ts_delta *delta; /* [1..n] */
    struct ts_val *init[4]; /* by enum sch_type, index 1..nslot */
    size_t nslot[4];
    size_t init_len; /* states[0, init_len): the initial values */
};

static inline const char *ts_text(const struct ts_world *w,
                                  const struct ts_val *v)
{
    return (const char *)(v->in_frames ? w->frames.p : w->states.p) + v->off;
}

/* Per-slot generator bookkeeping. */
struct ts_meta {
    unsigned ver;    /* regenerations so far */
    unsigned filler; /* padding length of the notes trait */
    int sized;       /* filler computed */
    char *last_keys; /* JSON keys it had when it last existed */
};

struct ts_table {
    enum sch_type type;
    struct ts_val *val; /* index 1..n */
    struct ts_meta *meta;
    size_t n;
    size_t cap;
    size_t live;
};

/*
 * The generator: the model (every entity's cached value, exactly what the
 * Redis sink stores) and a splitmix64 PRNG seeded from --seed. Messages
 * are drawn and applied in order; the model after message N is the
 * expected final cache.
 */
struct ts_gen {
    const struct ts_opts *o;
    struct ts_world *w;
    struct ts_rng rng;
    struct ts_table comp;
    struct ts_table user;
    struct ts_table flag;
    long pos;          /* stream messages generated so far */
    unsigned long seq; /* counter for unique generated values */
    struct ts_buf scratch;
    unsigned filler; /* company padding, see company_filler() */
    int filler_known;
    int failed;
};

/*
 * Builds the initial state into w (states buffer, w->init). Returns 0, or
 * -1 with a message on stderr.
 */
int gen_init(struct ts_gen *g, const struct ts_opts *o, struct ts_world *w);

/* Generates and applies stream messages 1..o->messages into w (frames,
 * off, delta) and sizes w->init to the final slot counts. 0 or -1. */
int gen_stream(struct ts_gen *g);

/* Writes the expected cache (JSON object {redis key: value}) for the
 * model's current state. 0 or -1 (message on stderr). */
int gen_write_expect(const struct ts_gen *g, const char *path);

void gen_release(struct ts_gen *g);
void world_release(struct ts_world *w);

/* ---- rest.c -------------------------------------------------------------- */

/*
 * Converts a cached Company / User (a tree of its normalised JSON) to the
 * REST CompanyDetail / UserDetail that sch_rest_entity() maps back to it.
 * Returns a new reference.
 */
json_t *rest_from_cached(enum sch_type type, json_t *cached);

/*
 * Checks that sch_rest_entity(rest_from_cached(e)) gives exactly
 * text, the normalised form of e. Returns 0, or -1 with the difference
 * in err.
 */
int rest_roundtrip_check(enum sch_type type, json_t *cached, const char *text,
                         size_t len, char *err, size_t errlen);

/* ---- evlog.c ------------------------------------------------------------- */

/* Opens the JSONL event log (NULL path: logging off). 0 or -1. */
int evlog_open(const char *path);
void evlog_close(void);
/* Writes one line: obj plus "t_ms" (wall clock ms); steals obj. */
void evlog_write(json_t *obj);
/* Wall-clock milliseconds since the epoch. */
long long evlog_now_ms(void);

/* ---- server.c ------------------------------------------------------------ */

/* Runs the server until SIGINT/SIGTERM; w is borrowed. Returns the exit
 * code. */
int server_run(const struct ts_opts *o, const struct ts_world *w);

/* Writes a websocket frame header (server side, unmasked, FIN set) for
 * opcode and len into h[10]; returns its length. */
size_t ws_header(unsigned char *h, int opcode, size_t len);

#endif
