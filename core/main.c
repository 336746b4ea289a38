/*
 * core/main.c: the command line (interface.md "Command line"), signals and
 * the process lifecycle.
 *
 * Exit codes: 0 success; 1 runtime failure; 2 usage or configuration error.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "health.h"
#include "http.h"
#include "loader.h"
#include "log.h"
#include "metrics.h"
#include "sched.h"
#include "timer.h"
#include "tracker.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ferry [run] -c FILE          run until SIGTERM/SIGINT\n"
            "       ferry check [--connect] -c FILE\n"
            "                                    validate config and plugins, "
            "print the\n"
            "                                    effective config (secrets "
            "as ***)\n"
            "       ferry plugins [-d DIR]       list plugins in DIR\n"
            "       ferry inspect [--markdown] FILE.so\n"
            "                                    print a plugin's descriptor "
            "and options\n"
            "       ferry inspect --markdown core\n"
            "                                    the [ferry] and [route.*] "
            "keys\n"
            "       ferry version\n");
}

/* Loads the configuration and builds the pipeline. Returns NULL with the
 * error ("FILE:LINE: [section] message") in err. */
static struct pipeline *build(const char *path, const char *plugin_dir,
                              char *err, size_t errlen)
{
    struct config cfg;

    memset(&cfg, 0, sizeof(cfg));
    if (config_load(&cfg, path, err, errlen) != 0) {
        config_release(&cfg);
        return NULL;
    }
    /* Apply [ferry] logging settings before plugins log anything. */
    const struct config_section *fs = config_section(&cfg, "ferry");
    const struct config_entry *e;
    if (fs && (e = config_entry(fs, "log_level")) &&
        log_level_parse(e->value) >= 0)
        log_set_level(log_level_parse(e->value));
    if (fs && (e = config_entry(fs, "log_format")))
        log_set_format(e->value);

    return pipeline_new(&cfg, plugin_dir, err, errlen);
}

static int cmd_check(const char *path, const char *plugin_dir, int connect)
{
    char err[1024];
    struct pipeline *pl = build(path, plugin_dir, err, sizeof(err));
    int rc = 0;

    if (!pl) {
        fprintf(stderr, "%s\n", err);
        return EXIT_USAGE;
    }
    printf("# %s: configuration OK\n", path);
    if (connect && pipeline_probe(pl, stdout) > 0)
        rc = EXIT_RUNTIME;
    pipeline_print(pl, stdout);
    pipeline_free(pl);
    return rc;
}

/* ---- run ---------------------------------------------------------------- */

/* The running pipeline; replaced by a reload. The signal thread reads it
 * under g_lock. */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pipeline *g_pl;
static pthread_t g_sigthread;

static void *signal_main(void *arg)
{
    sigset_t *set = arg;
    int sig;
    int count = 0;

    for (;;) {
        if (sigwait(set, &sig) != 0)
            continue;
        if (sig == SIGTERM || sig == SIGINT) {
            if (++count > 1) {
                log_write(FERRY_LOG_ERROR, NULL,
                          "second %s: exiting without finishing the drain",
                          sig == SIGTERM ? "SIGTERM" : "SIGINT");
                _exit(EXIT_RUNTIME);
            }
            pthread_mutex_lock(&g_lock);
            pipeline_request_stop(g_pl, 0,
                                  sig == SIGTERM ? "SIGTERM received"
                                                 : "SIGINT received");
            pthread_mutex_unlock(&g_lock);
        } else if (sig == SIGHUP) {
            log_write(FERRY_LOG_INFO, NULL, "SIGHUP: reloading");
            pthread_mutex_lock(&g_lock);
            pipeline_request_reload(g_pl);
            pthread_mutex_unlock(&g_lock);
        }
    }
    return NULL;
}

static void summary_line(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&g_lock);
    struct pipeline *pl = g_pl;
    char depths[512];
    size_t len = 0;

    depths[0] = '\0';
    for (size_t i = 0; i < pl->nroutes && len < sizeof(depths) - 64; i++) {
        const char *l[] = {"route", pl->routes[i]->name, NULL};
        int n = snprintf(depths + len, sizeof(depths) - len, " depth[%s]=%.0f",
                         pl->routes[i]->name,
                         metrics_sum("ferry_channel_depth", l));
        if (n > 0)
            len += (size_t)n;
    }
    char breakers[256];
    len = 0;
    breakers[0] = '\0';
    for (size_t i = 0; i < pl->ninstances && len < sizeof(breakers) - 64;
         i++) {
        struct ferry_ctx *c = pl->instances[i];
        if (c->kind != FERRY_KIND_POLICY)
            continue;
        const char *l[] = {"policy", c->name, NULL};
        double st = metrics_sum("ferry_breaker_state", l);
        int n = snprintf(breakers + len, sizeof(breakers) - len,
                         " breaker[%s]=%s", c->name,
                         st == 1 ? "open" : st == 2 ? "half-open" : "closed");
        /* Only policies that publish a breaker state are breakers. */
        if (n > 0 && metrics_count("ferry_breaker_state", l) > 0)
            len += (size_t)n;
    }
    log_write(FERRY_LOG_INFO, NULL,
              "summary: received=%.0f emitted=%.0f applied=%.0f failed=%.0f "
              "dropped=%.0f coalesced=%.0f invalid=%.0f%s%s lag=%.1fs",
              metrics_sum("ferry_source_messages_total", NULL),
              metrics_sum("ferry_source_emitted_total", NULL),
              metrics_sum("ferry_messages_applied_total", NULL),
              metrics_sum("ferry_messages_failed_total", NULL),
              metrics_sum("ferry_messages_dropped_total", NULL),
              metrics_sum("ferry_messages_coalesced_total", NULL),
              metrics_sum("ferry_source_invalid_messages_total", NULL), depths,
              breakers, metrics_sum("ferry_replication_lag_seconds", NULL));
    pthread_mutex_unlock(&g_lock);
}

/* ---- systemd notification ------------------------------------------------ */

/*
 * Type=notify (etc/ferry.service): READY=1 once the pipeline runs,
 * RELOADING=1 then READY=1 around a SIGHUP reload, STOPPING=1 on the way
 * out, STATUS= with the sources' committed positions and the lag, and
 * WATCHDOG=1 every half WatchdogSec when systemd asks for it. Without
 * NOTIFY_SOCKET sd_notify() does nothing, so none of this matters outside
 * systemd.
 */

/* The STATUS= line for the running pipeline, e.g. "running: 1 source, 3
 * routes, datastream at 1700000000000-12, lag 0.2s". Called with g_lock
 * held. */
static void notify_status_locked(const char *state)
{
    char pos[256], one[64];
    size_t len = 0, nsources = 0;

    pos[0] = '\0';
    for (size_t i = 0; i < g_pl->ninstances; i++) {
        struct ferry_ctx *c = g_pl->instances[i];
        if (c->kind != FERRY_KIND_SOURCE)
            continue;
        nsources++;
        struct ferry_pos p = tracker_committed(&c->tracker);
        tracker_format_pos(&p, one, sizeof(one));
        int n =
            snprintf(pos + len, sizeof(pos) - len, ", %s at %s", c->name, one);
        if (n > 0 && (size_t)n < sizeof(pos) - len)
            len += (size_t)n;
    }
    sd_notifyf(0, "STATUS=%s: %zu source%s, %zu route%s%s, lag %.1fs", state,
               nsources, nsources == 1 ? "" : "s", g_pl->nroutes,
               g_pl->nroutes == 1 ? "" : "s", pos,
               metrics_sum("ferry_replication_lag_seconds", NULL));
}

/* READY=1 with a fresh status: the pipeline in g_pl runs. Main thread. */
static void notify_ready(void)
{
    pthread_mutex_lock(&g_lock);
    sd_notify(0, "READY=1");
    notify_status_locked("running");
    pthread_mutex_unlock(&g_lock);
}

/* RELOADING=1 with the monotonic time systemd (253 and later) asks for
 * beside it. Main thread. */
static void notify_reloading(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
               (unsigned long long)ts.tv_sec * 1000000ULL +
                   (unsigned long long)ts.tv_nsec / 1000ULL);
}

/* The watchdog tick, on the timer thread. It pings while the timer thread
 * runs, g_lock is not stuck and health_wedged() (the check behind /health)
 * finds no step stuck past its bound; a wedged ferry stops pinging and
 * systemd restarts it WatchdogSec later. */
static void notify_watchdog(void *arg)
{
    char reason[256];

    (void)arg;
    pthread_mutex_lock(&g_lock);
    if (health_wedged(clock_now_ns(), reason, sizeof(reason))) {
        sd_notifyf(0, "STATUS=wedged: %s", reason);
    } else {
        sd_notify(0, "WATCHDOG=1");
        notify_status_locked("running");
    }
    pthread_mutex_unlock(&g_lock);
}

/* Starts the watchdog tick when systemd set WATCHDOG_USEC for this
 * process. Returns the timer, or NULL when there is no watchdog. */
static struct ferry_timer *notify_watchdog_start(void)
{
    uint64_t usec = 0;

    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
        return NULL;
    uint64_t ms = usec / 2000;
    log_write(FERRY_LOG_INFO, NULL, "systemd watchdog: a ping every %llums",
              (unsigned long long)(ms ? ms : 1));
    return timer_start(ms ? ms : 1, notify_watchdog, NULL);
}

/*
 * SIGHUP: builds the new pipeline first (validation, plugins, init); on any
 * error the old one keeps running and the reason is logged. Otherwise the
 * old pipeline's sources stop, its queued messages drain into its sinks
 * (nothing queued is lost; the cursor is persisted), and the new pipeline
 * starts from that cursor. A drain-and-swap costs a short pause in
 * ingestion but needs no hand-over of queued messages between plugin
 * instances that may differ in every setting.
 */
static struct pipeline *reload(struct pipeline *old, const char *path,
                               const char *plugin_dir, int *exit_code)
{
    char err[1024];
    notify_reloading();
    struct pipeline *pl = build(path, plugin_dir, err, sizeof(err));

    if (!pl) {
        log_write(FERRY_LOG_ERROR, NULL,
                  "reload failed, keeping the running pipeline: %s", err);
        metrics_config_reload(0);
        notify_ready();
        return old;
    }
    log_write(FERRY_LOG_INFO, NULL,
              "reload: new configuration is valid; draining the running "
              "pipeline");
    *exit_code = pipeline_shutdown(old);
    pthread_mutex_lock(&g_lock);
    g_pl = pl;
    pthread_mutex_unlock(&g_lock);
    http_set_debug_fn(pipeline_debug_json, pl);
    /* A SIGTERM that reached the old pipeline while it drained. */
    pthread_mutex_lock(&old->lock);
    int stopped = old->stop_requested;
    int code = old->exit_code;
    pthread_mutex_unlock(&old->lock);
    /* With its exit code: a sink that lost its writer lock during the
     * drain asked for 1. */
    if (stopped)
        pipeline_request_stop(pl, code, NULL);
    pipeline_inherit(pl, old);
    pipeline_free(old);
    log_write(FERRY_LOG_INFO, NULL, "reload: starting the new pipeline");
    return pl;
}

/* Runs pl, reloading it on SIGHUP (an invalid file keeps the running
 * pipeline), until a stop is requested or every source finished. Returns
 * the pipeline that ran last, for the caller to shut down. */
static struct pipeline *run_pipeline(struct pipeline *pl, const char *path,
                                     const char *plugin_dir,
                                     const char *listen, int *rc)
{
    int reloaded = 0;

    for (;;) {
        if (pipeline_start(pl) != 0) {
            if (reloaded)
                metrics_config_reload(0);
            break;
        }
        if (reloaded)
            metrics_config_reload(1);
        log_write(FERRY_LOG_INFO, NULL, "running");
        notify_ready();
        if (!pipeline_wait(pl))
            break;
        struct pipeline *next = reload(pl, path, plugin_dir, rc);
        if (next == pl) {
            /* Invalid file: keep running the old pipeline. */
            while (pipeline_wait(pl))
                if ((next = reload(pl, path, plugin_dir, rc)) != pl)
                    break;
            if (next == pl)
                break;
        }
        pl = next;
        reloaded = 1;
        if (strcmp(listen, pl->settings.http_listen) != 0)
            log_write(FERRY_LOG_WARN, NULL,
                      "http_listen changed; it takes effect on restart");
    }
    return pl;
}

static int cmd_run(const char *path, const char *plugin_dir)
{
    sigset_t set;
    char err[1024];
    int rc = 0;

    /* Every thread inherits the blocked set; only signal_main waits. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct pipeline *pl = build(path, plugin_dir, err, sizeof(err));
    if (!pl) {
        fprintf(stderr, "%s\n", err);
        return EXIT_USAGE;
    }
    g_pl = pl;

    if (pthread_create(&g_sigthread, NULL, signal_main, &set) != 0) {
        log_write(FERRY_LOG_ERROR, NULL, "cannot start the signal thread");
        pipeline_free(pl);
        return EXIT_RUNTIME;
    }
    pthread_detach(g_sigthread);

    /* The HTTP server and the summary line belong to the process, not to
     * one pipeline: a reload keeps them. */
    char *listen = strdup(pl->settings.http_listen);
    uint64_t interval = pl->settings.metrics_interval_ms;
    if (!listen)
        abort();
    if (listen[0]) {
        if (http_start(listen, err, sizeof(err)) != 0) {
            log_write(FERRY_LOG_ERROR, NULL, "%s", err);
            pipeline_free(pl);
            free(listen);
            return EXIT_RUNTIME;
        }
        http_set_debug_fn(pipeline_debug_json, pl);
    }
    struct ferry_timer *summary = NULL;
    if (interval)
        summary = timer_start(interval, summary_line, NULL);
    struct ferry_timer *watchdog = notify_watchdog_start();

    log_write(FERRY_LOG_INFO, NULL, "ferry %s starting with %s",
              FERRY_VERSION, path);
    pl = run_pipeline(pl, path, plugin_dir, listen, &rc);
    sd_notify(0, "STOPPING=1\nSTATUS=draining");
    rc = pipeline_shutdown(pl);
    timer_stop(watchdog);
    timer_stop(summary);
    if (interval)
        summary_line(NULL);
    http_set_debug_fn(NULL, NULL);
    if (listen[0])
        http_stop();
    free(listen);
    pipeline_free(pl);
    timer_shutdown();
    metrics_reset();
    health_reset();
    log_write(FERRY_LOG_INFO, NULL, "exit %d", rc);
    return rc;
}

/* `ferry plugins`: the folder of -d, else $FERRY_PLUGIN_DIR, else the one
 * installed beside the binary (loader_default_dir()). */
static int cmd_plugins(const char *dir)
{
    if (!dir)
        dir = getenv("FERRY_PLUGIN_DIR");
    if (dir)
        return loader_cmd_plugins(dir);
    char *def = loader_default_dir();
    if (!def) {
        fprintf(stderr, "ferry: out of memory\n");
        return EXIT_RUNTIME;
    }
    int rc = loader_cmd_plugins(def);
    free(def);
    return rc;
}

int main(int argc, char **argv)
{
    const char *cmd = "run";
    const char *cfg = NULL;
    const char *dir = NULL;
    int markdown = 0;
    int connect = 0;
    int i = 1;

    if (argc > 1 && argv[1][0] != '-')
        cmd = argv[i++];
    const char *positional = NULL;
    for (; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) &&
            i + 1 < argc) {
            /* Never drop a file in silence. Layering several -c files
             * would need config_load() to take a list (core/ini.c); an
             * include does the same today. */
            if (cfg) {
                fprintf(stderr,
                        "ferry: -c given twice ('%s', then '%s'): ferry "
                        "reads one configuration file; to layer '%s' over "
                        "'%s', add to its [ferry] section: include = "
                        "(the path of '%s' relative to '%s')\n",
                        cfg, argv[i + 1], argv[i + 1], cfg, cfg,
                        argv[i + 1]);
                return EXIT_USAGE;
            }
            cfg = argv[++i];
        }
        else if ((strcmp(argv[i], "-d") == 0 ||
                  strcmp(argv[i], "--plugin-dir") == 0) &&
                 i + 1 < argc)
            dir = argv[++i];
        else if (strcmp(argv[i], "--markdown") == 0)
            markdown = 1;
        else if (strcmp(argv[i], "--connect") == 0)
            connect = 1;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] != '-' && !positional)
            positional = argv[i];
        else {
            fprintf(stderr, "ferry: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return EXIT_USAGE;
        }
    }

    if (strcmp(cmd, "version") == 0) {
        printf("ferry %s (plugin ABI %d.%d)\n", FERRY_VERSION,
               FERRY_ABI_MAJOR, FERRY_ABI_MINOR);
        return 0;
    }
    if (strcmp(cmd, "plugins") == 0) {
        return cmd_plugins(dir);
    }
    if (strcmp(cmd, "inspect") == 0) {
        if (!positional) {
            usage(stderr);
            return EXIT_USAGE;
        }
        if (strcmp(positional, "core") == 0) {
            loader_options_markdown(stdout, "[ferry]",
                                    "Process settings.",
                                    sched_ferry_options);
            printf("\n");
            loader_options_markdown(stdout, "[route.NAME]",
                                    "A channel from a source to a sink, with "
                                    "its workers, batching and policies.",
                                    sched_route_options);
            return 0;
        }
        return loader_cmd_inspect(positional, markdown);
    }
    if (strcmp(cmd, "run") == 0 || strcmp(cmd, "check") == 0) {
        if (!cfg) {
            fprintf(stderr, "ferry %s: -c FILE is required\n", cmd);
            usage(stderr);
            return EXIT_USAGE;
        }
        return strcmp(cmd, "run") == 0 ? cmd_run(cfg, dir)
                                       : cmd_check(cfg, dir, connect);
    }
    fprintf(stderr, "ferry: unknown command '%s'\n", cmd);
    usage(stderr);
    return EXIT_USAGE;
}
