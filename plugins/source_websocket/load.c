/*
 * plugins/source_websocket/load.c: the REST initial load
 * (schematic-datastream.md 9.2, 10) on a thread of its own, with the
 * libcurl multi interface: the two counts, then every page of companies and
 * users with at most bulk_concurrency requests in flight and at most
 * bulk_rate requests per second (a token bucket of depth one: requests
 * start at least 1/bulk_rate apart).
 *
 * Emission order (the brief's initial-load ordering contract): LOAD_BEGIN,
 * every converted entity as FERRY_OP_FULL + FERRY_MSG_F_LOAD, LOAD_END. The
 * lws thread holds stream messages meanwhile, so this thread is the only
 * one emitting; its emit callback may block on a full pipeline. Each item
 * is converted once, by sch_rest_entity(), to its cached form: the
 * payload is emitted as it is, flagged SCH_MSG_F_NORMALIZED, with the
 * entity's id and keys from the same conversion, so nothing downstream
 * parses or normalises it again.
 *
 * The loader knows nothing of the source: it runs on its own copy of the
 * options (struct ws_load_config) and reaches the source only through
 * struct ws_load_callbacks.
 *
 * Progress: once both counts are in, a line "initial load: 4500/10000
 * companies, 0/2000 users (37%), 3100/s, ETA 2s" every 5 s or every 10 %
 * of the total, whichever comes first, and never more than once a second;
 * and the gauge ferry_source_load_progress_ratio{source} (0 at the start,
 * 1 once LOAD_END is emitted).
 *
 * A failed request (transport error, non-200, unparsable body) is retried
 * with backoff between reconnect_min and reconnect_max; 401 and 403 are
 * logged as errors and retried every reconnect_max. A page is never
 * skipped: LOAD_END is emitted only after every page was applied.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "schematic/schematic.h"
#include "wsrc.h"

/* Longest REST response body accepted. */
#define WS_LOAD_MAX_BODY (256u * 1024 * 1024)
#define WS_LOAD_TIMEOUT_MS 60000L
#define WS_LOAD_POLL_MS 100
#define WS_LOAD_EMIT_WAIT_MS 200
/* Progress lines: every 5 s or 10 %, at most one a second. */
#define WS_LOAD_REPORT_NS 5000000000ull
#define WS_LOAD_REPORT_MIN_NS 1000000000ull

struct ws_job {
    struct ws_job *next;
    enum sch_type type;
    int is_count;
    long long offset;
    unsigned attempts;
    uint64_t not_before_ns;
    CURL *easy;
    char *body;
    size_t len;
    size_t cap;
    int too_big;
};

struct ws_load {
    const struct ferry_host *host;
    struct ferry_ctx *ctx;
    struct ws_load_config cfg; /* its strings point to the two below */
    char *api_key;
    char *ca_file;
    struct ws_load_callbacks cb;
    pthread_t thread;
    atomic_int cancel;
    atomic_int done;
    int ok;
    CURLM *multi;
    struct curl_slist *headers;
    struct ws_job *head; /* jobs waiting to start, FIFO */
    struct ws_job *tail;
    struct ws_job *active; /* started, not finished */
    int inflight;
    unsigned int rng;
    uint64_t next_token_ns;
    unsigned long requests;
    unsigned long failures;
    unsigned long entities[2];
    unsigned long skipped;
    long long total[2];    /* from the counts */
    unsigned counted;      /* bit per type whose count is in */
    uint64_t t0_ns;        /* the load's start */
    uint64_t report_ns;    /* the last progress line (or the start) */
    unsigned report_tenth; /* tenths of the total done at that line */
    struct ws_ratelog rl;
    struct ferry_metric *m_invalid;
    struct ferry_metric *m_progress;
};

static const char *ws_load_path(enum sch_type t)
{
    return t == SCH_COMPANY ? "companies" : "users";
}

static int ws_load_stopped(struct ws_load *l)
{
    return atomic_load(&l->cancel) ||
           (l->cb.stopping && l->cb.stopping(l->cb.arg));
}

static void ws_job_push(struct ws_load *l, struct ws_job *j)
{
    j->next = NULL;
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
}

/* Removes and returns the first job allowed to start at now, or NULL;
 * *wait_ns is lowered to the time until the earliest waiting job. */
static struct ws_job *ws_job_take(struct ws_load *l, uint64_t now,
                                  uint64_t *wait_ns)
{
    struct ws_job *j, *prev = NULL;

    for (j = l->head; j; prev = j, j = j->next) {
        if (j->not_before_ns <= now) {
            if (prev)
                prev->next = j->next;
            else
                l->head = j->next;
            if (l->tail == j)
                l->tail = prev;
            j->next = NULL;
            return j;
        }
        if (j->not_before_ns - now < *wait_ns)
            *wait_ns = j->not_before_ns - now;
    }
    return NULL;
}

static void ws_job_free(struct ws_job *j)
{
    if (!j)
        return;
    if (j->easy)
        curl_easy_cleanup(j->easy);
    free(j->body);
    free(j);
}

static struct ws_job *ws_job_new(enum sch_type type, int is_count,
                                 long long offset)
{
    struct ws_job *j = calloc(1, sizeof(*j));

    if (!j)
        abort();
    j->type = type;
    j->is_count = is_count;
    j->offset = offset;
    return j;
}

static size_t ws_job_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct ws_job *j = arg;
    size_t n = size * nmemb;

    if (j->len + n > WS_LOAD_MAX_BODY) {
        j->too_big = 1;
        return 0;
    }
    if (j->len + n + 1 > j->cap) {
        size_t cap = j->cap ? j->cap : 65536;

        while (cap < j->len + n + 1)
            cap *= 2;
        j->body = realloc(j->body, cap);
        if (!j->body)
            abort();
        j->cap = cap;
    }
    memcpy(j->body + j->len, ptr, n);
    j->len += n;
    return n;
}

static void ws_load_progress(struct ws_load *l, enum ws_load_event ev)
{
    if (l->cb.progress)
        l->cb.progress(l->cb.arg, ev);
}

/*
 * Sets the progress gauge and logs the progress line when it is due (see
 * the top of the file). Loader thread; cheap enough to call after every
 * entity.
 */
static void ws_load_report(struct ws_load *l)
{
    unsigned long done = l->entities[0] + l->entities[1] + l->skipped;
    long long total = l->total[0] + l->total[1];
    uint64_t now, since;
    double ratio, secs, rate;
    unsigned tenth;
    char eta[32];

    if (l->counted != 3 || total <= 0)
        return;
    ratio = (double)done / (double)total;
    if (ratio > 1)
        ratio = 1;
    if (l->m_progress)
        l->host->metric_set(l->m_progress, ratio);
    now = l->host->now_ns();
    since = now - l->report_ns;
    tenth = (unsigned)(ratio * 10);
    if ((long long)done >= total || since < WS_LOAD_REPORT_MIN_NS ||
        (since < WS_LOAD_REPORT_NS && tenth <= l->report_tenth))
        return;
    l->report_ns = now;
    l->report_tenth = tenth;
    secs = (double)(now - l->t0_ns) / 1e9;
    rate = secs > 0 ? (double)done / secs : 0;
    if (rate > 0)
        snprintf(eta, sizeof(eta), "%.0fs",
                 (double)(total - (long long)done) / rate);
    else
        snprintf(eta, sizeof(eta), "unknown");
    l->host->log(l->ctx, FERRY_LOG_INFO,
                 "initial load: %lu/%lld companies, %lu/%lld users (%.0f%%), "
                 "%.0f/s, ETA %s",
                 l->entities[0], l->total[0], l->entities[1], l->total[1],
                 ratio * 100, rate, eta);
}

static int ws_job_start(struct ws_load *l, struct ws_job *j)
{
    const struct ws_load_config *cfg = &l->cfg;
    char url[sizeof(cfg->api_url) + 96];

    if (j->is_count)
        snprintf(url, sizeof(url), "%s/%s/count", cfg->api_url,
                 ws_load_path(j->type));
    else
        snprintf(url, sizeof(url), "%s/%s?limit=%d&offset=%lld",
                 cfg->api_url, ws_load_path(j->type), cfg->page_size,
                 j->offset);
    j->len = 0;
    j->too_big = 0;
    j->easy = curl_easy_init();
    if (!j->easy)
        return -1;
    curl_easy_setopt(j->easy, CURLOPT_URL, url);
    curl_easy_setopt(j->easy, CURLOPT_HTTPHEADER, l->headers);
    curl_easy_setopt(j->easy, CURLOPT_WRITEFUNCTION, ws_job_write);
    curl_easy_setopt(j->easy, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(j->easy, CURLOPT_PRIVATE, j);
    curl_easy_setopt(j->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(j->easy, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(j->easy, CURLOPT_USERAGENT, "ferry/" FERRY_VERSION);
    curl_easy_setopt(j->easy, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)cfg->connect_ms);
    curl_easy_setopt(j->easy, CURLOPT_TIMEOUT_MS, WS_LOAD_TIMEOUT_MS);
    curl_easy_setopt(j->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    if (!cfg->tls_verify) {
        curl_easy_setopt(j->easy, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(j->easy, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (cfg->ca_file)
        curl_easy_setopt(j->easy, CURLOPT_CAINFO, cfg->ca_file);
    if (curl_multi_add_handle(l->multi, j->easy) != CURLM_OK) {
        curl_easy_cleanup(j->easy);
        j->easy = NULL;
        return -1;
    }
    j->next = l->active;
    l->active = j;
    l->inflight++;
    l->requests++;
    ws_load_progress(l, WS_LOAD_REQUEST);
    return 0;
}

/* Offers msg until it is taken; -1 when the load must stop. */
static int ws_load_emit(struct ws_load *l, const struct ferry_msg *msg)
{
    int r;

    for (;;) {
        if (ws_load_stopped(l))
            return -1;
        r = l->cb.emit(l->cb.arg, msg, WS_LOAD_EMIT_WAIT_MS);
        if (r == FERRY_OK)
            return 0;
        if (r == FERRY_TIMEDOUT || r == FERRY_WOULD_BLOCK)
            continue;
        if (r == FERRY_CLOSED)
            return -1;
        l->host->log(l->ctx, FERRY_LOG_ERROR,
                     "emit refused a %s message of the initial load: %s",
                     msg->entity_type, ferry_status_str(r));
        return 0;
    }
}

static int ws_load_control(struct ws_load *l, uint32_t op)
{
    struct ferry_msg m;

    memset(&m, 0, sizeof(m));
    m.struct_size = sizeof(m);
    m.op = op;
    m.flags = FERRY_MSG_F_LOAD;
    m.entity_type = "control";
    m.entity_id = "";
    m.order_key = "control";
    m.payload = "";
    return ws_load_emit(l, &m);
}

static void ws_load_skip(struct ws_load *l, struct ws_job *j, size_t i,
                         const char *why)
{
    unsigned long suppressed;

    l->skipped++;
    if (l->m_invalid)
        l->host->metric_add(l->m_invalid, 1);
    if (ws_ratelog_ok(&l->rl, l->host->now_ns(), 1000000000ull, &suppressed))
        l->host->log(l->ctx, FERRY_LOG_WARN,
                     "initial load: %s item %zu of the page at offset %lld "
                     "skipped: %s",
                     ws_load_path(j->type), i, j->offset, why);
}

/* Emits one converted item; its keys are lent to the message. Returns 0,
 * or -1 when the load must stop. */
static int ws_load_item(struct ws_load *l, struct ws_job *j,
                        const struct sch_entity *e)
{
    struct ferry_kv kvs[64], *kv = kvs;
    struct ferry_msg m;
    size_t i;
    int r;

    if (e->nkeys > 64) {
        kv = malloc(e->nkeys * sizeof(*kv));
        if (!kv)
            abort();
    }
    for (i = 0; i < e->nkeys; i++) {
        kv[i].key = e->keys[i].key;
        kv[i].value = e->keys[i].value;
    }
    memset(&m, 0, sizeof(m));
    m.struct_size = sizeof(m);
    m.op = FERRY_OP_FULL;
    m.flags = FERRY_MSG_F_LOAD | SCH_MSG_F_NORMALIZED;
    m.nkeys = (uint32_t)e->nkeys;
    m.entity_type = j->type == SCH_COMPANY ? "company" : "user";
    m.entity_id = e->id;
    m.order_key = "";
    m.keys = e->nkeys ? kv : NULL;
    m.payload = e->json;
    m.payload_len = e->len;
    r = ws_load_emit(l, &m);
    if (kv != kvs)
        free(kv);
    return r;
}

/* Converts and emits one page. -1 when the body is unusable (retry), -2
 * when the load must stop. */
static int ws_load_page(struct ws_load *l, struct ws_job *j, json_t *data)
{
    char err[160], why[200];
    struct sch_entity e;
    json_t *item;
    size_t i;
    int r;

    if (!json_is_array(data))
        return -1;
    json_array_foreach(data, i, item) {
        if (sch_rest_entity(j->type, item, &e, err, sizeof(err)) < 0) {
            snprintf(why, sizeof(why), "malformed item (%s)", err);
            ws_load_skip(l, j, i, why);
            continue;
        }
        r = ws_load_item(l, j, &e);
        sch_entity_release(&e);
        if (r < 0)
            return -2;
        l->entities[j->type == SCH_COMPANY ? 0 : 1]++;
        ws_load_progress(l, WS_LOAD_ENTITY);
        ws_load_report(l);
    }
    return 0;
}

/* Takes a finished transfer off the active list and out of the multi
 * handle, freeing its easy handle. Returns its HTTP status (0: none). */
static long ws_job_unlink(struct ws_load *l, struct ws_job *j)
{
    struct ws_job **pp = &l->active;
    long code = 0;

    while (*pp && *pp != j)
        pp = &(*pp)->next;
    if (*pp)
        *pp = j->next;
    j->next = NULL;
    curl_multi_remove_handle(l->multi, j->easy);
    curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(j->easy);
    j->easy = NULL;
    l->inflight--;
    return code;
}

/* Applies the data of a count response: queues one job per page. Returns
 * 0, or -1 with why set. */
static int ws_job_counted(struct ws_load *l, struct ws_job *j, json_t *data,
                          char *why, size_t whylen)
{
    json_t *c = json_object_get(data, "count");
    long long n, off;

    if (!json_is_integer(c) || json_integer_value(c) < 0) {
        snprintf(why, whylen, "no data.count in the response");
        return -1;
    }
    n = json_integer_value(c);
    l->host->log(l->ctx, FERRY_LOG_INFO, "initial load: %lld %s to load", n,
                 ws_load_path(j->type));
    for (off = 0; off < n; off += l->cfg.page_size)
        ws_job_push(l, ws_job_new(j->type, 0, off));
    l->total[j->type == SCH_COMPANY ? 0 : 1] = n;
    l->counted |= j->type == SCH_COMPANY ? 1u : 2u;
    return 0;
}

/* Parses and applies the response of a finished transfer, then frees its
 * body. Returns 0, -1 with why set (and *permanent when the API key was
 * refused), or -2 when the load must stop. */
static int ws_job_apply(struct ws_load *l, struct ws_job *j, CURLcode res,
                        long code, char *why, size_t whylen, int *permanent)
{
    json_t *root = NULL, *data;
    json_error_t jerr;
    int r = -1;

    if (res != CURLE_OK) {
        snprintf(why, whylen, "%s", j->too_big ? "response body too large"
                                                : curl_easy_strerror(res));
    } else if (code != 200) {
        snprintf(why, whylen, "HTTP %ld", code);
        *permanent = code == 401 || code == 403;
    } else {
        root = json_loadb(j->body ? j->body : "", j->len, 0, &jerr);
        data = root ? json_object_get(root, "data") : NULL;
        if (!root) {
            snprintf(why, whylen, "invalid JSON: %s", jerr.text);
        } else if (j->is_count) {
            r = ws_job_counted(l, j, data, why, whylen);
        } else {
            r = ws_load_page(l, j, data);
            if (r == -1)
                snprintf(why, whylen, "data is not an array");
        }
    }
    json_decref(root);
    free(j->body);
    j->body = NULL;
    j->cap = 0;
    j->len = 0;
    return r;
}

/* Queues a failed request again after its backoff (reconnect_max when
 * the API key was refused) and logs why, rate-limited. Takes j back. */
static void ws_job_retry(struct ws_load *l, struct ws_job *j, const char *why,
                         int permanent)
{
    const struct ws_load_config *cfg = &l->cfg;
    unsigned long suppressed;
    uint64_t delay;
    char d[32];

    l->failures++;
    ws_load_progress(l, WS_LOAD_FAILURE);
    j->attempts++;
    delay = permanent ? cfg->rmax_ms
                      : ws_backoff_ms(j->attempts, cfg->rmin_ms, cfg->rmax_ms,
                                      (double)(rand_r(&l->rng) % 1000) / 1000.0);
    j->not_before_ns = l->host->now_ns() + delay * 1000000ull;
    if (ws_ratelog_ok(&l->rl, l->host->now_ns(), 1000000000ull,
                      &suppressed)) {
        if (j->is_count)
            l->host->log(l->ctx,
                         permanent ? FERRY_LOG_ERROR : FERRY_LOG_WARN,
                         "initial load: GET /%s/count failed: %s%s; "
                         "retrying in %s",
                         ws_load_path(j->type), why,
                         permanent ? " (API key refused)" : "",
                         ws_fmt_ms(delay, d, sizeof(d)));
        else
            l->host->log(l->ctx,
                         permanent ? FERRY_LOG_ERROR : FERRY_LOG_WARN,
                         "initial load: GET /%s offset %lld failed: %s%s; "
                         "retrying in %s",
                         ws_load_path(j->type), j->offset, why,
                         permanent ? " (API key refused)" : "",
                         ws_fmt_ms(delay, d, sizeof(d)));
    }
    ws_job_push(l, j);
}

/* Handles a finished transfer: a failed request is retried (this very
 * request, later). Returns -2 when the load must stop. */
static int ws_job_done(struct ws_load *l, struct ws_job *j, CURLcode res)
{
    char why[256];
    int permanent = 0, r;
    long code = ws_job_unlink(l, j);

    r = ws_job_apply(l, j, res, code, why, sizeof(why), &permanent);
    if (r == 0 || r == -2) {
        ws_job_free(j);
        return r;
    }
    ws_job_retry(l, j, why, permanent);
    return 0;
}

/* Starts due jobs while fewer than concurrency are in flight and the rate
 * allows; lowers *wait_ns to when the next one is due. */
static void ws_load_start_due(struct ws_load *l, uint64_t now,
                              uint64_t interval_ns, uint64_t *wait_ns)
{
    struct ws_job *j;

    while (l->inflight < l->cfg.concurrency) {
        if (interval_ns && now < l->next_token_ns) {
            if (l->head && l->next_token_ns - now < *wait_ns)
                *wait_ns = l->next_token_ns - now;
            break;
        }
        j = ws_job_take(l, now, wait_ns);
        if (!j)
            break;
        if (ws_job_start(l, j) < 0) {
            l->host->log(l->ctx, FERRY_LOG_ERROR,
                         "initial load: cannot start a request");
            j->not_before_ns = now + l->cfg.rmax_ms * 1000000ull;
            ws_job_push(l, j);
            break;
        }
        if (interval_ns)
            l->next_token_ns =
                (l->next_token_ns > now ? l->next_token_ns : now) +
                interval_ns;
    }
}

/* Drives the transfers and handles the finished ones. Returns -2 when
 * the load must stop, else 0. */
static int ws_load_collect(struct ws_load *l)
{
    struct CURLMsg *cm;
    struct ws_job *j;
    int running, left;

    curl_multi_perform(l->multi, &running);
    while ((cm = curl_multi_info_read(l->multi, &left))) {
        if (cm->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(cm->easy_handle, CURLINFO_PRIVATE, &j);
        if (ws_job_done(l, j, cm->data.result) == -2)
            return -2;
    }
    return 0;
}

/* Runs the requests until every page was applied (then l->ok is set),
 * the load is cancelled or it must stop. */
static void ws_load_run(struct ws_load *l)
{
    uint64_t interval_ns = 0;
    int stop = 0;

    if (l->cfg.rate > 0)
        interval_ns = (uint64_t)(1e9 / l->cfg.rate);
    while (!stop && !ws_load_stopped(l)) {
        uint64_t now = l->host->now_ns();
        uint64_t wait_ns = WS_LOAD_POLL_MS * 1000000ull;

        ws_load_start_due(l, now, interval_ns, &wait_ns);
        if (!l->inflight && !l->head) {
            l->ok = 1;
            break;
        }
        stop = ws_load_collect(l) == -2;
        ws_load_report(l);
        if (stop || (!l->inflight && !l->head))
            continue;
        curl_multi_poll(l->multi, NULL, 0,
                        (int)((wait_ns + 999999) / 1000000), NULL);
    }
}

static void *ws_load_main(void *arg)
{
    struct ws_load *l = arg;
    const struct ws_load_config *cfg = &l->cfg;
    uint64_t t0 = l->host->now_ns();

    l->t0_ns = l->report_ns = t0;
    if (l->m_progress)
        l->host->metric_set(l->m_progress, 0);

    l->host->log(l->ctx, FERRY_LOG_INFO,
                 "initial load started from %s (page size %d, %d in "
                 "flight, %g requests/s)",
                 cfg->api_url, cfg->page_size, cfg->concurrency, cfg->rate);
    if (ws_load_control(l, FERRY_OP_LOAD_BEGIN) < 0)
        goto out;
    ws_job_push(l, ws_job_new(SCH_COMPANY, 1, 0));
    ws_job_push(l, ws_job_new(SCH_USER, 1, 0));
    ws_load_run(l);
    if (l->ok) {
        if (ws_load_control(l, FERRY_OP_LOAD_END) < 0) {
            l->ok = 0;
            goto out;
        }
        if (l->m_progress)
            l->host->metric_set(l->m_progress, 1);
        l->host->log(l->ctx, FERRY_LOG_INFO,
                     "initial load complete: %lu companies, %lu users "
                     "(%lu requests, %lu retried, %lu items skipped) in "
                     "%.2f s",
                     l->entities[0], l->entities[1], l->requests,
                     l->failures, l->skipped,
                     (double)(l->host->now_ns() - t0) / 1e9);
    }
out:
    if (!l->ok)
        l->host->log(l->ctx, FERRY_LOG_INFO,
                     "initial load stopped before completion");
    atomic_store(&l->done, 1);
    if (l->cb.done)
        l->cb.done(l->cb.arg);
    return NULL;
}

/* A copy of string, or NULL for NULL. Aborts on out-of-memory. */
static char *ws_load_strdup(const char *str)
{
    char *d;

    if (!str)
        return NULL;
    d = strdup(str);
    if (!d)
        abort();
    return d;
}

/* Frees the copies ws_load_start made; the key is wiped first. */
static void ws_load_free(struct ws_load *l)
{
    if (l->api_key) {
        memset(l->api_key, 0, strlen(l->api_key));
        free(l->api_key);
    }
    free(l->ca_file);
    curl_slist_free_all(l->headers);
    if (l->multi)
        curl_multi_cleanup(l->multi);
    free(l);
}

struct ws_load *ws_load_start(const struct ferry_host *host,
                              struct ferry_ctx *ctx,
                              const struct ws_load_config *cfg,
                              const struct ws_load_callbacks *cb)
{
    struct ws_load *l = calloc(1, sizeof(*l));
    char hdr[1024];
    const char *labels[] = { "reason", "rest_item", NULL };

    if (!l)
        abort();
    l->host = host;
    l->ctx = ctx;
    l->cfg = *cfg;
    l->api_key = ws_load_strdup(cfg->api_key);
    l->ca_file = ws_load_strdup(cfg->ca_file);
    l->cfg.api_key = l->api_key;
    l->cfg.ca_file = l->ca_file;
    l->cb = *cb;
    l->rng = (unsigned)host->now_ns();
    l->multi = curl_multi_init();
    if (!l->multi)
        goto fail;
    curl_multi_setopt(l->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                      (long)cfg->concurrency);
    snprintf(hdr, sizeof(hdr), "X-Schematic-Api-Key: %s",
             l->api_key ? l->api_key : "");
    l->headers = curl_slist_append(NULL, hdr);
    l->headers = curl_slist_append(l->headers, "Accept: application/json");
    l->headers = curl_slist_append(l->headers, "X-Schematic-Client: ferry");
    memset(hdr, 0, sizeof(hdr));
    if (!l->headers)
        goto fail;
    l->m_invalid = host->metric(ctx, FERRY_METRIC_COUNTER,
                                "ferry_source_invalid_messages_total",
                                "Messages the source rejected, by reason",
                                labels);
    l->m_progress = host->metric(ctx, FERRY_METRIC_GAUGE,
                                 "ferry_source_load_progress_ratio",
                                 "Initial load progress: entities loaded "
                                 "over the REST counts (1 when complete)",
                                 NULL);
    if (pthread_create(&l->thread, NULL, ws_load_main, l)) {
        host->log(ctx, FERRY_LOG_ERROR,
                  "cannot start the initial-load thread");
        goto fail;
    }
    return l;

fail:
    ws_load_free(l);
    return NULL;
}

int ws_load_done(struct ws_load *l)
{
    return atomic_load(&l->done);
}

void ws_load_cancel(struct ws_load *l)
{
    atomic_store(&l->cancel, 1);
    curl_multi_wakeup(l->multi);
}

int ws_load_finish(struct ws_load *l)
{
    struct ws_job *j;
    int ok;

    if (!l)
        return 0;
    pthread_join(l->thread, NULL);
    ok = l->ok;
    while ((j = l->head)) {
        l->head = j->next;
        ws_job_free(j);
    }
    while ((j = l->active)) {
        l->active = j->next;
        curl_multi_remove_handle(l->multi, j->easy);
        ws_job_free(j);
    }
    ws_load_free(l);
    return ok;
}
