/*
 * core/pipeline.c: building a pipeline from a loaded configuration: the
 * option tables of [ferry] and [route.*], plugin instances, routes with
 * their workers' channels and metrics, the checks between them (every
 * reference resolves, fan-out fits admission's table), each init(); and
 * freeing it all again. Nothing here starts a thread or does I/O beyond
 * loading plugins.
 */
#include "sched.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admit.h"
#include "channel.h"
#include "host.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "store.h"

static const char *const log_levels[] = {"debug", "info", "warn", "error",
                                         NULL};
static const char *const log_formats[] = {"text", "json", NULL};

const struct ferry_option sched_ferry_options[] = {
    {"plugin_dir", FERRY_OPT_STRING, NULL, 0, 0, NULL, FERRY_OPT_PATH,
     "where plugins (*.so) are found; relative to the configuration file; "
     "default $FERRY_PLUGIN_DIR or the installed plugin folder"},
    {"log_level", FERRY_OPT_ENUM, "info", 0, 0, log_levels, 0,
     "debug, info, warn or error"},
    {"log_format", FERRY_OPT_ENUM, "text", 0, 0, log_formats, 0,
     "text, or json (one object per line)"},
    {"http_listen", FERRY_OPT_STRING, "127.0.0.1:8090", 0, 0, NULL, 0,
     "health, readiness and metrics endpoint (host:port); empty disables"},
    {"metrics_interval", FERRY_OPT_DURATION, "30s", 0, 86400000.0, NULL, 0,
     "a summary log line every interval; 0 disables"},
    {"shutdown_timeout", FERRY_OPT_DURATION, "30s", 0, 3600000.0, NULL, 0,
     "drain limit on SIGTERM"},
    {NULL, 0, NULL, 0, 0, NULL, 0, NULL},
};

const struct ferry_option sched_route_options[] = {
    {"from", FERRY_OPT_STRING, NULL, 0, 0, NULL, FERRY_OPT_REQUIRED,
     "source instance name"},
    {"match", FERRY_OPT_LIST, "*", 0, 0, NULL, 0,
     "entity types sent down this route, e.g. company or user, flags"},
    {"to", FERRY_OPT_STRING, NULL, 0, 0, NULL, FERRY_OPT_REQUIRED,
     "sink instance name"},
    {"policies", FERRY_OPT_LIST, "", 0, 0, NULL, 0,
     "policy instance names, applied in order"},
    {"channel_size", FERRY_OPT_INT, "1000", 1, 10000000, NULL, 0,
     "bounded channel capacity in messages (split between workers)"},
    {"workers", FERRY_OPT_INT, "8", 1, 256, NULL, 0,
     "workers draining this route"},
    {"batch_size", FERRY_OPT_INT, "10", 1, 100000, NULL, 0,
     "messages per sink batch"},
    {"batch_timeout", FERRY_OPT_DURATION, "25ms", 0, 3600000.0, NULL, 0,
     "longest wait to fill a batch"},
    {NULL, 0, NULL, 0, 0, NULL, 0, NULL},
};

static char *xstrdup(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d)
        abort();
    return d;
}

static struct ferry_ctx *find_instance(struct pipeline *pl, int kind,
                                       const char *name)
{
    for (size_t i = 0; i < pl->ninstances; i++)
        if (pl->instances[i]->kind == kind &&
            strcmp(pl->instances[i]->name, name) == 0)
            return pl->instances[i];
    return NULL;
}

/* "FILE:LINE: [section] " for an entry, or the section's own line. */
static void where(char *buf, size_t len, const struct config_section *s,
                  const char *key)
{
    const struct config_entry *e = key ? config_entry(s, key) : NULL;

    snprintf(buf, len, "%s:%d: [%s]", e ? e->file : s->file,
             e ? e->line : s->line, s->name);
}

static int ref_error(struct pipeline *pl, const struct config_section *s,
                     const char *key, int kind, const char *name, char *err,
                     size_t errlen)
{
    char at[512];
    const char *cands[256];
    size_t n = 0;

    for (size_t i = 0; i < pl->ninstances && n < 255; i++)
        if (pl->instances[i]->kind == kind)
            cands[n++] = pl->instances[i]->name;
    cands[n] = NULL;
    const char *hint = config_suggest(name, cands);
    where(at, sizeof(at), s, key);
    if (hint)
        snprintf(err, errlen, "%s %s: no %s named '%s' (did you mean '%s'?)",
                 at, key, loader_kind_name(kind), name, hint);
    else
        snprintf(err, errlen, "%s %s: no %s named '%s'", at, key,
                 loader_kind_name(kind), name);
    return -1;
}

static struct ferry_ctx *instance_new(struct pipeline *pl,
                                      const struct config_section *s,
                                      int kind, char *err, size_t errlen)
{
    char at[512];
    char lerr[768];
    static const char *const extra[] = {"plugin", NULL};
    const struct config_entry *pe = config_entry(s, "plugin");

    if (!pe || !pe->value[0]) {
        snprintf(err, errlen, "%s:%d: [%s] missing required key 'plugin'",
                 s->file, s->line, s->name);
        return NULL;
    }
    /* A name is looked up in the plugin folder; a path is relative to the
     * file that set it. */
    struct plugin *p = plugin_set_ref(pl->plugins, kind, pe->value, pe->file,
                                      lerr, sizeof(lerr));
    if (!p) {
        where(at, sizeof(at), s, "plugin");
        snprintf(err, errlen, "%s %s", at, lerr);
        return NULL;
    }
    struct optset *o = optset_new(s, s->name, p->desc.options, extra, err,
                                  errlen);
    if (!o)
        return NULL;

    struct ferry_ctx *c = calloc(1, sizeof(*c));
    if (!c)
        abort();
    c->kind = kind;
    c->name = xstrdup(s->inst);
    c->label = xstrdup(s->name);
    c->plugin = p;
    c->desc = &p->desc;
    c->opts = o;
    c->pl = pl;
    pthread_mutex_init(&c->emit_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->room, &ca);
    pthread_condattr_destroy(&ca);
    tracker_init(&c->tracker);
    if (kind == FERRY_KIND_SOURCE) {
        const char *labels[] = {"source", c->name, NULL};
        c->m_unrouted = metrics_get(
            FERRY_METRIC_COUNTER, "ferry_source_unrouted_total",
            "Messages no route matched (counted, not delivered).", labels);
        c->m_lag = metrics_get(
            FERRY_METRIC_GAUGE, "ferry_replication_lag_seconds",
            "Now minus the stream time of the last applied message.",
            labels);
    }
    return c;
}

static void instance_free(struct ferry_ctx *c)
{
    if (!c)
        return;
    if (c->inited && c->desc->fini)
        c->desc->fini(c->state);
    optset_free(c->opts);
    tracker_release(&c->tracker);
    pthread_mutex_destroy(&c->emit_lock);
    pthread_cond_destroy(&c->room);
    free(c->routes);
    free(c->name);
    free(c->label);
    free(c);
}

static char **list_dup(const char *const *items, size_t n)
{
    char **out = calloc(n + 1, sizeof(*out));
    if (!out)
        abort();
    for (size_t i = 0; i < n; i++)
        out[i] = xstrdup(items[i]);
    return out;
}

static void list_free(char **l)
{
    if (!l)
        return;
    for (char **p = l; *p; p++)
        free(*p);
    free(l);
}

/* Resolves the route's from, to and policies to instances of pl. Returns
 * 0, or -1 with the error (and a did-you-mean) in err. */
static int route_resolve(struct pipeline *pl, struct route *r,
                         const struct config_section *s,
                         const struct optset *o, char *err, size_t errlen)
{
    const char *from = optset_str(o, "from");
    const char *to = optset_str(o, "to");
    r->source = find_instance(pl, FERRY_KIND_SOURCE, from);
    if (!r->source)
        return ref_error(pl, s, "from", FERRY_KIND_SOURCE, from, err, errlen);
    r->sink = find_instance(pl, FERRY_KIND_SINK, to);
    if (!r->sink)
        return ref_error(pl, s, "to", FERRY_KIND_SINK, to, err, errlen);
    const char *const *items;
    size_t n = optset_list(o, "policies", &items);
    r->policies = calloc(n + 1, sizeof(*r->policies));
    if (!r->policies)
        abort();
    for (size_t i = 0; i < n; i++) {
        r->policies[i] = find_instance(pl, FERRY_KIND_POLICY, items[i]);
        if (!r->policies[i])
            return ref_error(pl, s, "policies", FERRY_KIND_POLICY, items[i],
                             err, errlen);
    }
    r->npolicies = n;
    for (size_t i = 0; i < n; i++)
        if (r->policies[i]->desc->admit)
            r->has_admit = 1;
    return 0;
}

/* Copies the route's match list and sizes from its options. */
static void route_settings(struct route *r, const struct optset *o)
{
    const char *const *items;
    size_t n = optset_list(o, "match", &items);
    int all = n == 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(items[i], "*") == 0)
            all = 1;
    r->match = all ? NULL : list_dup(items, n);
    r->nworkers = (unsigned)optset_int(o, "workers");
    r->channel_size = (size_t)optset_int(o, "channel_size");
    r->batch_size = (size_t)optset_int(o, "batch_size");
    r->batch_timeout_ms = optset_duration_ms(o, "batch_timeout");
}

/* Creates the route's workers, each with its share of channel_size. */
static void route_workers(struct route *r)
{
    r->workers = calloc(r->nworkers, sizeof(*r->workers));
    if (!r->workers)
        abort();
    size_t per = (r->channel_size + r->nworkers - 1) / r->nworkers;
    /* A barrier needs one slot in each worker's channel besides data. */
    if (per < 1)
        per = 1;
    for (unsigned i = 0; i < r->nworkers; i++) {
        r->workers[i].route = r;
        r->workers[i].index = i;
        r->workers[i].ch = channel_new(per);
        if (!r->workers[i].ch)
            abort();
        channel_on_room(r->workers[i].ch, source_on_room, r->source);
    }
    atomic_init(&r->workers_left, (int)r->nworkers);
}

/* Registers the route's series (applied, failed, latency, coalesced,
 * dropped by reason, and its sink's batches by verdict). */
static void route_metrics(struct route *r)
{
    const char *rl[] = {"route", r->name, NULL};
    r->m_applied = metrics_get(FERRY_METRIC_COUNTER,
                               "ferry_messages_applied_total",
                               "Messages a sink applied.", rl);
    r->m_failed = metrics_get(FERRY_METRIC_COUNTER,
                              "ferry_messages_failed_total",
                              "Messages a sink rejected or failed (logged "
                              "with their stream position).",
                              rl);
    r->m_latency = metrics_get(FERRY_METRIC_HISTOGRAM,
                               "ferry_apply_latency_seconds",
                               "Receive to applied, per message.", rl);
    r->m_coalesced = metrics_get(FERRY_METRIC_COUNTER,
                                 "ferry_messages_coalesced_total",
                                 "Queued messages replaced by a newer one "
                                 "for the same entity.",
                                 rl);
    const char *dn[] = {"route", r->name, "reason", "drop_newest", NULL};
    const char *dol[] = {"route", r->name, "reason", "drop_oldest", NULL};
    r->m_dropped_newest = metrics_get(
        FERRY_METRIC_COUNTER, "ferry_messages_dropped_total",
        "Messages dropped by a backpressure policy.", dn);
    r->m_dropped_oldest = metrics_get(
        FERRY_METRIC_COUNTER, "ferry_messages_dropped_total",
        "Messages dropped by a backpressure policy.", dol);
    const char *bok[] = {"sink", r->sink->name, "result", "ok", NULL};
    const char *bre[] = {"sink", r->sink->name, "result", "retry", NULL};
    const char *ber[] = {"sink", r->sink->name, "result", "error", NULL};
    r->m_batch_ok = metrics_get(FERRY_METRIC_COUNTER,
                                "ferry_sink_batches_total",
                                "Sink batches by verdict.", bok);
    r->m_batch_retry = metrics_get(FERRY_METRIC_COUNTER,
                                   "ferry_sink_batches_total",
                                   "Sink batches by verdict.", bre);
    r->m_batch_error = metrics_get(FERRY_METRIC_COUNTER,
                                   "ferry_sink_batches_total",
                                   "Sink batches by verdict.", ber);
}

static struct route *route_new(struct pipeline *pl,
                               const struct config_section *s, char *err,
                               size_t errlen)
{
    struct optset *o = optset_new(s, s->name, sched_route_options, NULL, err,
                                  errlen);
    if (!o)
        return NULL;

    struct route *r = calloc(1, sizeof(*r));
    if (!r)
        abort();
    r->name = xstrdup(s->inst);
    r->pl = pl;
    if (route_resolve(pl, r, s, o, err, errlen) < 0)
        goto fail;
    route_settings(r, o);
    optset_free(o);
    o = NULL;

    route_workers(r);
    route_metrics(r);
    return r;

fail:
    optset_free(o);
    free(r->policies);
    free(r->name);
    free(r);
    return NULL;
}

static void route_free(struct route *r)
{
    if (!r)
        return;
    metrics_forget(r);
    for (unsigned i = 0; r->workers && i < r->nworkers; i++)
        channel_free(r->workers[i].ch, cmsg_release_item);
    free(r->workers);
    free(r->policies);
    list_free(r->match);
    free(r->name);
    free(r);
}

static void add_instance(struct pipeline *pl, struct ferry_ctx *c)
{
    struct ferry_ctx **n =
        realloc(pl->instances, (pl->ninstances + 1) * sizeof(*n));
    if (!n)
        abort();
    pl->instances = n;
    pl->instances[pl->ninstances++] = c;
}

/* Validates [ferry] into pl->ferry_opts and pl->settings. Returns 0, or -1
 * with the error in err. */
static int read_settings(struct pipeline *pl, char *err, size_t errlen)
{
    const struct config_section *fs = config_section(&pl->cfg, "ferry");
    pl->ferry_opts =
        optset_new(fs, "ferry", sched_ferry_options, NULL, err, errlen);
    if (!pl->ferry_opts)
        return -1;
    struct ferry_settings *st = &pl->settings;
    st->log_level = log_level_parse(optset_str(pl->ferry_opts, "log_level"));
    st->log_format = optset_str(pl->ferry_opts, "log_format");
    st->http_listen = optset_str(pl->ferry_opts, "http_listen");
    if (!st->http_listen)
        st->http_listen = "";
    if (st->http_listen[0]) {
        char why[256];
        if (http_listen_check(st->http_listen, why, sizeof(why)) != 0) {
            char at[512];
            where(at, sizeof(at), fs, "http_listen");
            snprintf(err, errlen, "%s %s", at, why);
            return -1;
        }
    }
    st->metrics_interval_ms =
        optset_duration_ms(pl->ferry_opts, "metrics_interval");
    st->shutdown_timeout_ms =
        optset_duration_ms(pl->ferry_opts, "shutdown_timeout");
    return 0;
}

/* The plugin folder, malloc'd: the command line's, else [ferry]
 * plugin_dir (FERRY_OPT_PATH: relative to the file that set it), else
 * $FERRY_PLUGIN_DIR, else the folder installed beside the binary
 * (loader_default_dir()). */
static char *plugin_dir_of(struct pipeline *pl, const char *plugin_dir)
{
    const char *cfg_dir = optset_str(pl->ferry_opts, "plugin_dir");
    if (plugin_dir)
        return xstrdup(plugin_dir);
    if (cfg_dir && cfg_dir[0])
        return xstrdup(cfg_dir);
    if (getenv("FERRY_PLUGIN_DIR"))
        return xstrdup(getenv("FERRY_PLUGIN_DIR"));
    char *dir = loader_default_dir();
    if (!dir)
        abort();
    return dir;
}

/* Creates every instance: sinks first (they start first), then sources,
 * policies. Returns 0, or -1 with the error in err. */
static int add_instances(struct pipeline *pl, char *err, size_t errlen)
{
    static const int order[] = {FERRY_KIND_SINK, FERRY_KIND_SOURCE,
                                FERRY_KIND_POLICY};
    for (size_t k = 0; k < 3; k++) {
        for (size_t i = 0; i < pl->cfg.count; i++) {
            const struct config_section *s = &pl->cfg.sections[i];
            if (loader_kind_parse(s->kind) != order[k])
                continue;
            struct ferry_ctx *c =
                instance_new(pl, s, order[k], err, errlen);
            if (!c)
                return -1;
            add_instance(pl, c);
        }
    }
    return 0;
}

/* Adds r to pl and to its source's routes. */
static void add_route(struct pipeline *pl, struct route *r)
{
    struct route **nr =
        realloc(pl->routes, (pl->nroutes + 1) * sizeof(*nr));
    if (!nr)
        abort();
    pl->routes = nr;
    pl->routes[pl->nroutes++] = r;
    struct ferry_ctx *src = r->source;
    struct route **sr =
        realloc(src->routes, (src->nroutes + 1) * sizeof(*sr));
    if (!sr)
        abort();
    src->routes = sr;
    /* The first route of this source into a sink hands that sink
     * the source's control messages. */
    r->delivers_control = 1;
    for (size_t k = 0; k < src->nroutes; k++)
        if (src->routes[k]->sink == r->sink)
            r->delivers_control = 0;
    src->routes[src->nroutes++] = r;
}

/* Creates every [route.*]; at least one must exist. Returns 0, or -1 with
 * the error in err. */
static int add_routes(struct pipeline *pl, char *err, size_t errlen)
{
    for (size_t i = 0; i < pl->cfg.count; i++) {
        const struct config_section *s = &pl->cfg.sections[i];
        if (strcmp(s->kind, "route") != 0)
            continue;
        struct route *r = route_new(pl, s, err, errlen);
        if (!r)
            return -1;
        add_route(pl, r);
    }
    if (pl->nroutes == 0) {
        snprintf(err, errlen, "%s: no [route.NAME] section: nothing to run",
                 pl->cfg.path);
        return -1;
    }
    return 0;
}

/* A barrier takes a reservation in every worker channel of every route of
 * its source, from try_admit()'s fixed table (core/admit.c): refuses a
 * source whose routes have more workers. Returns 0 or -1 (err). */
static int check_fanout(struct pipeline *pl, char *err, size_t errlen)
{
    for (size_t i = 0; i < pl->ninstances; i++) {
        struct ferry_ctx *c = pl->instances[i];
        size_t nw = 0;
        for (size_t k = 0; k < c->nroutes; k++)
            nw += c->routes[k]->nworkers;
        if (nw > ADMIT_MAX_TARGETS * 4) {
            char at[512];
            where(at, sizeof(at), config_section(&pl->cfg, c->label), NULL);
            snprintf(err, errlen,
                     "%s routes from this source have %zu workers in all; "
                     "at most %d",
                     at, nw, ADMIT_MAX_TARGETS * 4);
            return -1;
        }
    }
    return 0;
}

/* Logs a warning for each instance no route uses. */
static void warn_unused(struct pipeline *pl)
{
    for (size_t i = 0; i < pl->ninstances; i++) {
        struct ferry_ctx *c = pl->instances[i];
        int used = 0;
        for (size_t j = 0; j < pl->nroutes; j++) {
            struct route *r = pl->routes[j];
            if (r->source == c || r->sink == c)
                used = 1;
            for (size_t k = 0; k < r->npolicies; k++)
                if (r->policies[k] == c)
                    used = 1;
        }
        if (!used)
            log_write(FERRY_LOG_WARN, c->label, "not used by any route");
    }
}

/* Calls init() of every instance, sinks first. Returns 0, or -1 with the
 * failing instance in err. */
static int init_instances(struct pipeline *pl, char *err, size_t errlen)
{
    for (size_t i = 0; i < pl->ninstances; i++) {
        struct ferry_ctx *c = pl->instances[i];
        int rc = c->desc->init(&host_table, c, &c->state);
        if (rc != FERRY_OK) {
            const struct config_section *s =
                config_section(&pl->cfg, c->label);
            snprintf(err, errlen, "%s:%d: [%s] init failed: %s (see the log "
                     "above)",
                     s ? s->file : "?", s ? s->line : 0, c->label,
                     ferry_status_str(rc));
            return -1;
        }
        c->inited = 1;
    }
    return 0;
}

/* Builds the pipeline in the steps above; see core/sched.h. Main thread. */
struct pipeline *pipeline_new(struct config *cfg, const char *plugin_dir,
                              char *err, size_t errlen)
{
    struct pipeline *pl = calloc(1, sizeof(*pl));
    if (!pl)
        abort();
    pl->cfg = *cfg;
    memset(cfg, 0, sizeof(*cfg));
    pthread_mutex_init(&pl->lock, NULL);
    pthread_cond_init(&pl->cond, NULL);

    if (read_settings(pl, err, errlen) < 0)
        goto fail;
    char *dir = plugin_dir_of(pl, plugin_dir);
    pl->plugins = plugin_set_new(dir);
    free(dir);
    if (!pl->plugins)
        abort();
    if (add_instances(pl, err, errlen) < 0 ||
        add_routes(pl, err, errlen) < 0 || check_fanout(pl, err, errlen) < 0)
        goto fail;
    warn_unused(pl);
    if (init_instances(pl, err, errlen) < 0)
        goto fail;
    return pl;

fail:
    pipeline_free(pl);
    return NULL;
}

void pipeline_print(struct pipeline *pl, FILE *out)
{
    fprintf(out, "[ferry]\n");
    optset_print(pl->ferry_opts, out);
    for (size_t i = 0; i < pl->ninstances; i++) {
        struct ferry_ctx *c = pl->instances[i];
        /* A plugin loaded by path prints its resolved file. */
        fprintf(out, "\n[%s]\nplugin = %s\n", c->label,
                c->plugin->by_path ? c->plugin->path : c->desc->hdr.name);
        optset_print(c->opts, out);
    }
    for (size_t i = 0; i < pl->cfg.count; i++) {
        const struct config_section *s = &pl->cfg.sections[i];
        if (strcmp(s->kind, "route") != 0)
            continue;
        char err[256];
        struct optset *o = optset_new(s, s->name, sched_route_options, NULL,
                                      err, sizeof(err));
        if (!o)
            continue;
        fprintf(out, "\n[%s]\n", s->name);
        optset_print(o, out);
        optset_free(o);
    }
}

void pipeline_inherit(struct pipeline *pl, struct pipeline *old)
{
    for (size_t i = 0; i < pl->ninstances; i++) {
        struct ferry_ctx *c = pl->instances[i];
        if (c->kind != FERRY_KIND_SOURCE)
            continue;
        struct ferry_ctx *o = find_instance(old, FERRY_KIND_SOURCE, c->name);
        if (!o)
            continue;
        struct ferry_pos p = tracker_committed(&o->tracker);
        tracker_set_committed(&c->tracker, &p);
    }
}

void pipeline_free(struct pipeline *pl)
{
    if (!pl)
        return;
    for (size_t i = 0; i < pl->nroutes; i++)
        route_free(pl->routes[i]);
    free(pl->routes);
    /* fini in reverse order: policies, sources, then sinks. */
    for (size_t i = pl->ninstances; i-- > 0;)
        instance_free(pl->instances[i]);
    free(pl->instances);
    plugin_set_free(pl->plugins);
    optset_free(pl->ferry_opts);
    config_release(&pl->cfg);
    pthread_mutex_destroy(&pl->lock);
    pthread_cond_destroy(&pl->cond);
    free(pl);
}
