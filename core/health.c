/*
 * core/health.c: the health and readiness registry behind /health, /ready
 * and /debug (core/health.h).
 *
 * Three small tables kept sorted by name (components, readiness owners,
 * info keys), all under one mutex. They hold a handful of entries, so a
 * sorted array with linear search is both the simplest and the fastest
 * structure here; sorting once on insert gives /health a stable order.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "clock.h"
#include "ferry/host.h"
#include "health.h"
#include "log.h"

struct health_entry {
    char *name;
    char *value; /* info only */
    int state;   /* component state or readiness */
};

struct health_table {
    struct health_entry *v;
    size_t n;
    size_t cap;
};

static pthread_mutex_t health_lock = PTHREAD_MUTEX_INITIALIZER;
static struct health_table health_components;
static struct health_table health_owners;
static struct health_table health_infos;

/* The watchdog: registered beats (under health_beat_lock, which is never
 * held by a thread inside a watched step) and the bound. */
_Thread_local struct health_beat *health_self;
static pthread_mutex_t health_beat_lock = PTHREAD_MUTEX_INITIALIZER;
static struct health_beat *health_beats;
static atomic_uint_least64_t health_bound_ms;
static atomic_int health_wedge_logged;

#define HEALTH_WATCHDOG_DEFAULT_MS 60000ull

/* Returns the entry named name, inserting an empty one at its sorted place
 * when absent; NULL on allocation failure. Called with health_lock held. */
static struct health_entry *health_table_get(struct health_table *t,
                                             const char *name)
{
    struct health_entry *e;
    size_t i;
    int c = 1;

    for (i = 0; i < t->n; i++) {
        c = strcmp(t->v[i].name, name);
        if (c >= 0)
            break;
    }
    if (i < t->n && c == 0)
        return &t->v[i];
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        struct health_entry *v = realloc(t->v, cap * sizeof(*v));

        if (!v)
            return NULL;
        t->v = v;
        t->cap = cap;
    }
    e = &t->v[i];
    memmove(e + 1, e, (t->n - i) * sizeof(*e));
    memset(e, 0, sizeof(*e));
    e->name = strdup(name);
    if (!e->name) {
        memmove(e, e + 1, (t->n - i) * sizeof(*e));
        return NULL;
    }
    t->n++;
    return e;
}

/* Returns the entry named name or NULL. Called with health_lock held. */
static struct health_entry *health_table_find(struct health_table *t,
                                              const char *name)
{
    size_t i;

    for (i = 0; i < t->n; i++) {
        if (strcmp(t->v[i].name, name) == 0)
            return &t->v[i];
    }
    return NULL;
}

static void health_table_remove(struct health_table *t, const char *name)
{
    struct health_entry *e = health_table_find(t, name);
    size_t i;

    if (!e)
        return;
    i = (size_t)(e - t->v);
    free(e->name);
    free(e->value);
    memmove(e, e + 1, (t->n - i - 1) * sizeof(*e));
    t->n--;
}

static void health_table_release(struct health_table *t)
{
    size_t i;

    for (i = 0; i < t->n; i++) {
        free(t->v[i].name);
        free(t->v[i].value);
    }
    free(t->v);
    memset(t, 0, sizeof(*t));
}

void health_set_component(const char *component, int state)
{
    struct health_entry *e;

    if (!component || !*component)
        return;
    if (state != FERRY_COMPONENT_CONNECTED &&
        state != FERRY_COMPONENT_DISCONNECTED)
        state = FERRY_COMPONENT_UNKNOWN;
    pthread_mutex_lock(&health_lock);
    e = health_table_get(&health_components, component);
    if (e)
        e->state = state;
    pthread_mutex_unlock(&health_lock);
}

void health_set_ready(const char *owner, int ready)
{
    struct health_entry *e;

    if (!owner)
        return;
    pthread_mutex_lock(&health_lock);
    e = health_table_get(&health_owners, owner);
    if (e)
        e->state = ready != 0;
    pthread_mutex_unlock(&health_lock);
}

/*
 * A NULL value removes the key. Values are shown verbatim in /health,
 * /ready (cache_version) and /debug: callers must never publish a secret.
 */
void health_set_info(const char *key, const char *value)
{
    struct health_entry *e;
    char *copy;

    if (!key || !*key)
        return;
    pthread_mutex_lock(&health_lock);
    if (!value) {
        health_table_remove(&health_infos, key);
        pthread_mutex_unlock(&health_lock);
        return;
    }
    copy = strdup(value);
    e = copy ? health_table_get(&health_infos, key) : NULL;
    if (e) {
        free(e->value);
        e->value = copy;
    } else {
        free(copy);
    }
    pthread_mutex_unlock(&health_lock);
}

char *health_info(const char *key)
{
    struct health_entry *e;
    char *v = NULL;

    if (!key)
        return NULL;
    pthread_mutex_lock(&health_lock);
    e = health_table_find(&health_infos, key);
    if (e && e->value)
        v = strdup(e->value);
    pthread_mutex_unlock(&health_lock);
    return v;
}

/* Called with health_lock held. */
static int health_ready_locked(void)
{
    size_t i;

    if (health_owners.n == 0)
        return 0;
    for (i = 0; i < health_owners.n; i++) {
        if (!health_owners.v[i].state)
            return 0;
    }
    return 1;
}

/* Counts components in state. Called with health_lock held. */
static size_t health_count_locked(int state)
{
    size_t i, n = 0;

    for (i = 0; i < health_components.n; i++) {
        if (health_components.v[i].state == state)
            n++;
    }
    return n;
}

int health_ready(void)
{
    int r;

    pthread_mutex_lock(&health_lock);
    r = health_ready_locked();
    pthread_mutex_unlock(&health_lock);
    return r;
}

int health_healthy(void)
{
    int r;

    pthread_mutex_lock(&health_lock);
    r = health_count_locked(FERRY_COMPONENT_DISCONNECTED) == 0;
    pthread_mutex_unlock(&health_lock);
    return r;
}

static const char *health_state_name(int state)
{
    switch (state) {
    case FERRY_COMPONENT_CONNECTED:
        return "connected";
    case FERRY_COMPONENT_DISCONNECTED:
        return "disconnected";
    default:
        return "unknown";
    }
}

/*
 * A JSON string for s. jansson refuses invalid UTF-8; published values are
 * plugin-supplied, so such bytes are replaced by '?' instead of losing the
 * whole body.
 */
static json_t *health_jstr(const char *s)
{
    json_t *j = json_string(s);
    char *copy;
    size_t i;

    if (j)
        return j;
    copy = strdup(s);
    if (!copy)
        return NULL;
    for (i = 0; copy[i]; i++) {
        if ((unsigned char)copy[i] >= 0x80)
            copy[i] = '?';
    }
    j = json_string(copy);
    free(copy);
    return j;
}

/*
 * Formats the current UTC time like Go's time.RFC3339Nano, which the
 * reference replicator uses: nanoseconds with trailing zeros dropped (and
 * no fraction at all when it is zero), "Z" for UTC.
 */
static void health_timestamp(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;
    char frac[24];
    size_t n;
    int k;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    frac[0] = '\0';
    if (ts.tv_nsec > 0 && ts.tv_nsec < 1000000000L) {
        snprintf(frac, sizeof(frac), ".%09ld", ts.tv_nsec);
        for (k = 9; k > 0 && frac[k] == '0'; k--)
            frac[k] = '\0';
    }
    snprintf(buf + n, len - n, "%sZ", frac);
}

/* ---- watchdog ------------------------------------------------------- */

struct health_beat *health_beat_new(const char *fmt, ...)
{
    struct health_beat *b = calloc(1, sizeof(*b));
    va_list ap;

    if (!b)
        return NULL;
    atomic_init(&b->since_ns, 0);
    va_start(ap, fmt);
    vsnprintf(b->what, sizeof(b->what), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&health_beat_lock);
    b->next = health_beats;
    health_beats = b;
    pthread_mutex_unlock(&health_beat_lock);
    return b;
}

void health_beat_free(struct health_beat *b)
{
    struct health_beat **pp;

    if (!b)
        return;
    pthread_mutex_lock(&health_beat_lock);
    for (pp = &health_beats; *pp; pp = &(*pp)->next) {
        if (*pp == b) {
            *pp = b->next;
            break;
        }
    }
    pthread_mutex_unlock(&health_beat_lock);
    if (health_self == b)
        health_self = NULL;
    free(b);
}

/* FERRY_WATCHDOG_MS when it is a positive integer, else the default. */
static uint64_t health_bound_from_env(void)
{
    const char *v = getenv("FERRY_WATCHDOG_MS");
    char *end;
    unsigned long long ms;

    if (!v || !*v)
        return HEALTH_WATCHDOG_DEFAULT_MS;
    ms = strtoull(v, &end, 10);
    if (*end || ms == 0) {
        log_write(FERRY_LOG_WARN, NULL,
                  "FERRY_WATCHDOG_MS='%s' is not a positive number of "
                  "milliseconds: using %llu",
                  v, HEALTH_WATCHDOG_DEFAULT_MS);
        return HEALTH_WATCHDOG_DEFAULT_MS;
    }
    return ms;
}

uint64_t health_watchdog_ms(void)
{
    uint64_t ms = atomic_load_explicit(&health_bound_ms, memory_order_relaxed);

    if (ms)
        return ms;
    ms = health_bound_from_env();
    atomic_store(&health_bound_ms, ms);
    return ms;
}

void health_set_watchdog_ms(uint64_t ms)
{
    atomic_store(&health_bound_ms, ms);
}

int health_wedged(uint64_t now_ns, char *reason, size_t len)
{
    uint64_t bound_ns = health_watchdog_ms() * 1000000ull;
    uint64_t oldest = 0;
    char what[sizeof(((struct health_beat *)0)->what)] = "";
    struct health_beat *b;

    pthread_mutex_lock(&health_beat_lock);
    for (b = health_beats; b; b = b->next) {
        uint64_t since =
            atomic_load_explicit(&b->since_ns, memory_order_relaxed);

        if (since && since < now_ns && now_ns - since > bound_ns &&
            (!oldest || since < oldest)) {
            oldest = since;
            memcpy(what, b->what, sizeof(what));
        }
    }
    pthread_mutex_unlock(&health_beat_lock);
    if (!oldest) {
        if (len)
            reason[0] = '\0';
        atomic_store(&health_wedge_logged, 0);
        return 0;
    }
    snprintf(reason, len,
             "%s has not returned for %.1f s (watchdog bound %g s)", what,
             (double)(now_ns - oldest) / 1e9, (double)bound_ns / 1e9);
    /* Logged once per wedge, not once per probe. */
    if (!atomic_exchange(&health_wedge_logged, 1))
        log_write(FERRY_LOG_ERROR, NULL, "watchdog: %s", reason);
    return 1;
}

/* ---- bodies --------------------------------------------------------- */

char *health_json(void)
{
    int alive, ready;

    return health_body(&alive, &ready);
}

char *health_body(int *alive, int *ready_out)
{
    json_t *root, *comps;
    struct health_entry *cv;
    char ts[48], reason[256];
    char *out = NULL;
    size_t i;
    int ready, healthy, connected, wedged;

    wedged = health_wedged(clock_now_ns(), reason, sizeof(reason));
    *alive = !wedged;
    *ready_out = 0;
    root = json_object();
    comps = json_object();
    if (!root || !comps)
        goto out;
    health_timestamp(ts, sizeof(ts));

    pthread_mutex_lock(&health_lock);
    ready = health_ready_locked();
    *ready_out = ready;
    healthy = !wedged && health_count_locked(FERRY_COMPONENT_DISCONNECTED) == 0;
    /* Vacuously true without components (a file-to-file pipeline). */
    connected =
        health_count_locked(FERRY_COMPONENT_CONNECTED) == health_components.n;
    for (i = 0; i < health_components.n; i++) {
        struct health_entry *e = &health_components.v[i];

        json_object_set_new(comps, e->name,
                            json_string(health_state_name(e->state)));
    }
    cv = health_table_find(&health_infos, "cache_version");
    json_object_set_new(root, "status",
                        json_string(healthy ? "healthy" : "unhealthy"));
    json_object_set_new(root, "ready", json_boolean(ready));
    json_object_set_new(root, "connected", json_boolean(connected));
    json_object_set(root, "components", comps);
    json_object_set_new(root, "cache_version",
                        health_jstr(cv && cv->value ? cv->value : ""));
    pthread_mutex_unlock(&health_lock);

    json_object_set_new(root, "timestamp", json_string(ts));
    if (wedged)
        json_object_set_new(root, "reason", json_string(reason));
    out = json_dumps(root, JSON_COMPACT);
out:
    json_decref(comps);
    json_decref(root);
    return out;
}

char *health_info_json(void)
{
    json_t *root = json_object();
    char *out = NULL;
    size_t i;

    if (!root)
        return NULL;
    pthread_mutex_lock(&health_lock);
    for (i = 0; i < health_infos.n; i++) {
        struct health_entry *e = &health_infos.v[i];

        json_object_set_new(root, e->name, health_jstr(e->value));
    }
    pthread_mutex_unlock(&health_lock);
    out = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return out;
}

void health_reset(void)
{
    pthread_mutex_lock(&health_lock);
    health_table_release(&health_components);
    health_table_release(&health_owners);
    health_table_release(&health_infos);
    pthread_mutex_unlock(&health_lock);
}
