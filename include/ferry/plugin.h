/*
 * ferry/plugin.h: the plugin descriptor, the only symbol a plugin exports.
 *
 *     FERRY_PLUGIN_EXPORT const struct ferry_plugin ferry_plugin = {
 *         FERRY_PLUGIN_HEADER(FERRY_KIND_SINK, "null"),
 *         .version = "1.0.0",
 *         ...
 *     };
 *
 * The loader checks the header (magic, ABI major equal, ABI minor not newer
 * than the core, struct_size at least FERRY_PLUGIN_SIZE_1_0, kind matching
 * the section, name not already loaded) before it touches anything else,
 * then copies min(struct_size, sizeof) bytes and zero-fills the rest, so a
 * plugin built against an older minor simply has the newer members NULL.
 *
 * Threads. The core calls:
 *  - init(), fini(), and sink start()/stop() on the main thread;
 *  - a source's run() on a thread of its own, until stop() (which the core
 *    calls from another thread) makes it return;
 *  - a source's wakeup() from any thread;
 *  - a sink's open(), write(), checkpoint() and close() on the worker
 *    thread that owns the worker context: never concurrently for one
 *    worker context, but concurrently for different ones;
 *  - a policy's hooks from any worker thread or source thread, concurrently:
 *    policies guard their own state.
 */
#ifndef FERRY_PLUGIN_H
#define FERRY_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include "host.h"
#include "message.h"
#include "options.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FERRY_ABI_MAJOR 1
#define FERRY_ABI_MINOR 1

/* "FRY1" */
#define FERRY_PLUGIN_MAGIC 0x31595246u

enum ferry_kind {
    FERRY_KIND_SOURCE = 1,
    FERRY_KIND_SINK = 2,
    FERRY_KIND_POLICY = 3
};

#define FERRY_STR_(x) #x
#define FERRY_STR(x) FERRY_STR_(x)

/* Compiler, ABI and word size of a build: plugins and core built with
 * different signatures still load (the ABI is C), but `ferry inspect`
 * shows it for bug reports. */
#define FERRY_BUILD_SIGNATURE                                                \
    "ferry-abi " FERRY_STR(FERRY_ABI_MAJOR) "." FERRY_STR(                   \
        FERRY_ABI_MINOR) " " FERRY_BUILD_CC " lp" FERRY_STR(                 \
        __SIZEOF_POINTER__)
#if defined(__clang__)
#define FERRY_BUILD_CC "clang-" __clang_version__
#elif defined(__GNUC__)
#define FERRY_BUILD_CC "gcc-" __VERSION__
#else
#define FERRY_BUILD_CC "cc"
#endif

/*
 * The header: its shape never changes, in any ABI version.
 */
struct ferry_plugin_header {
    uint32_t magic;       /* FERRY_PLUGIN_MAGIC */
    uint16_t abi_major;   /* FERRY_ABI_MAJOR the plugin was built with */
    uint16_t abi_minor;   /* FERRY_ABI_MINOR the plugin was built with */
    uint32_t struct_size; /* sizeof(struct ferry_plugin) at build time */
    uint32_t kind;        /* enum ferry_kind */
    const char *name;     /* "redis": loaded as <kind>_<name>.so */
    const char *build;    /* FERRY_BUILD_SIGNATURE */
};

#define FERRY_PLUGIN_HEADER(kind_, name_)                                    \
    .hdr = {                                                                 \
        .magic = FERRY_PLUGIN_MAGIC,                                         \
        .abi_major = FERRY_ABI_MAJOR,                                        \
        .abi_minor = FERRY_ABI_MINOR,                                        \
        .struct_size = sizeof(struct ferry_plugin),                          \
        .kind = (kind_),                                                     \
        .name = (name_),                                                     \
        .build = FERRY_BUILD_SIGNATURE,                                      \
    }

#if defined(__GNUC__)
#define FERRY_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define FERRY_PLUGIN_EXPORT
#endif

/*
 * A batch handed to a sink's write(). Borrowed for the call.
 *
 * results[i] starts as FERRY_OK. A sink that skips one message as
 * permanently bad (a poison message) sets results[i] = FERRY_ERROR and still
 * returns FERRY_OK for the batch: the core counts and logs that message with
 * its stream position and treats the rest as applied.
 */
struct ferry_batch {
    uint32_t count;
    const struct ferry_msg *const *msgs;
    int *results;
    /* The route's name. */
    const char *route;
    /* The replay position that becomes committed for msgs' source when
     * this batch is applied (set == 0: none). A sink that stores a replay
     * cursor writes it in the same round trip as the batch; positions only
     * grow, but two workers may deliver theirs out of order, so store it
     * with a compare (never move it backwards). */
    struct ferry_pos commit;
};

/* Admission verdicts (policy admit()). */
enum ferry_admit {
    FERRY_ADMIT_BLOCK = 0,       /* wait for room: lossless (default) */
    FERRY_ADMIT_COALESCE = 1,    /* replace a queued message for the same
                                  * entity when that keeps the final state */
    FERRY_ADMIT_DROP_NEWEST = 2, /* drop the offered message (counted) */
    FERRY_ADMIT_DROP_OLDEST = 3  /* drop the oldest queued message (counted) */
};

/* What a policy's admit() is asked about: a message about to enter the
 * channel of one worker of a route, and that channel's occupancy. */
struct ferry_admission {
    const char *route;
    const struct ferry_msg *msg;
    size_t depth;
    size_t capacity;
    uint64_t now_ns;
};

/* What a policy's before_write()/after_write() see. */
struct ferry_write_event {
    const char *route;
    const char *sink;
    unsigned worker;
    uint32_t count;
    uint64_t now_ns;
};

struct ferry_plugin {
    struct ferry_plugin_header hdr;

    /* Plugin version, e.g. "1.0.0". */
    const char *version;
    /* One line shown by `ferry plugins` and `ferry inspect`. */
    const char *description;
    /* Option table, terminated by a NULL name. May be NULL (no keys). */
    const struct ferry_option *options;

    /*
     * Creates an instance. ctx identifies it in every host call and stays
     * valid until fini() returns. Options are validated already; read them
     * with host->opt_*. Do no I/O here: `ferry check` calls init() and
     * fini() to validate a configuration. Returns FERRY_OK and sets *state,
     * or a negative status after logging why.
     */
    int (*init)(const struct ferry_host *host, struct ferry_ctx *ctx,
                void **state);
    /* Destroys an instance. Called once for every successful init(). */
    void (*fini)(void *state);

    /* ---- sources ----------------------------------------------------- */

    /* Runs the source on its own thread until stop() is called, emitting
     * messages with host->emit(). Returns FERRY_OK after stop(), or a
     * negative status on a fatal error (the process then stops). */
    int (*run)(void *state);
    /* Makes run() return soon. Any thread; called once. Also used by sinks
     * (below). */
    void (*stop)(void *state);
    /* A route that answered FERRY_WOULD_BLOCK has room again. Any thread;
     * must not block. */
    void (*wakeup)(void *state);

    /* ---- sinks ------------------------------------------------------- */

    /* Connects and becomes the writer (for example takes a lease); may
     * block until then. Returns FERRY_OK, or FERRY_CLOSED when stop() was
     * called meanwhile, or a negative status on failure. */
    int (*start)(void *state);
    /* Reads the replay position recorded by an earlier run, after start().
     * Returns FERRY_OK with *out set, or FERRY_NOT_FOUND. */
    int (*load_position)(void *state, struct ferry_pos *out);
    /* Creates the context of worker number `worker` (0-based) of a route
     * into this sink. Called on that worker's thread. Optional: without
     * it, write() and checkpoint() get the instance state. */
    int (*open)(void *state, unsigned worker, void **wctx);
    /* Applies a batch. Returns FERRY_OK (applied; see results),
     * FERRY_RETRY (nothing may be assumed applied: the core keeps the batch
     * and calls again with the same batch after a backoff), or FERRY_ERROR
     * (every message is counted and logged as failed, and skipped). */
    int (*write)(void *wctx, struct ferry_batch *batch);
    /* Persists the committed replay position (periodically, and after the
     * final drain). Returns FERRY_OK or FERRY_RETRY. */
    int (*checkpoint)(void *wctx, const struct ferry_pos *pos);
    /* Destroys a worker context. */
    void (*close)(void *wctx);

    /* ---- policies ---------------------------------------------------- */

    /*
     * Admission: called for every message offered to a route that lists
     * this policy, before it is queued, on the emitting source's thread
     * (with the source's emit lock held: be quick, never block). Returns
     * an enum ferry_admit. FERRY_ADMIT_BLOCK means "no objection": the
     * message is queued when there is room and the source waits when there
     * is none (lossless). A policy that only acts on a full channel
     * returns BLOCK while a->depth < a->capacity. COALESCE replaces a
     * queued message for the same entity when that keeps the final state
     * (never across a control message; a partial replaces nothing), else
     * queues or waits; DROP_NEWEST drops the offered message and
     * DROP_OLDEST the oldest queued one (never a control message), both
     * counted in ferry_messages_dropped_total{route,reason}. The first
     * policy in the route's list that answers something other than BLOCK
     * decides.
     */
    int (*admit)(void *state, const struct ferry_admission *a);
    /* Before every sink write() of a route that lists this policy, on the
     * worker's thread: FERRY_OK lets the batch go; FERRY_WOULD_BLOCK holds
     * it (kept, never dropped; the channel fills and the source pauses)
     * and the worker asks again at *retry_at_ns (at most 1 s later). */
    int (*before_write)(void *state, const struct ferry_write_event *ev,
                        uint64_t *retry_at_ns);
    /* After every sink write(), on the worker's thread, with write()'s
     * status (each FERRY_RETRY attempt is reported). */
    void (*after_write)(void *state, const struct ferry_write_event *ev,
                        int status);

    /* ---- any kind (optional; ABI 1.1) ------------------------------- */

    /* `ferry check --connect`: after init(), reach the service once (a
     * sink: connect and PING; a source: complete a handshake), write one
     * line saying what happened into msg (never a secret), and return
     * FERRY_OK or a negative status. Main thread; may block up to the
     * plugin's connect timeout. */
    int (*probe)(void *state, char *msg, size_t len);
};

/* The first released descriptor size: the loader refuses anything
 * shorter. */
#define FERRY_PLUGIN_SIZE_1_0                                                \
    (offsetof(struct ferry_plugin, after_write) +                            \
     sizeof(((struct ferry_plugin *)0)->after_write))

#ifdef __cplusplus
}
#endif

#endif /* FERRY_PLUGIN_H */
