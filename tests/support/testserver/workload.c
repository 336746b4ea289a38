/*
 * tests/support/testserver/workload.c: the deterministic workload.
 *
 * The model holds every entity as its cached value: the normalised JSON
 * the Redis sink stores (schematic-datastream.md section 4). A splitmix64
 * PRNG seeded from --seed draws the initial state (companies comp_<n>,
 * users user_<n>, flags flag_<n>) and then each stream message: an entity
 * and an operation, applied to the model with the spec's rules (7.1 full,
 * 5 + 7.2 partial through oracle_merge_text, 7.3 delete, 7.5 single flag).
 * The model after the last message is the expected final cache.
 *
 * Key values embed the entity number ("c12", "c12-v3.example"), so no two
 * entities ever share a lookup key and the expected state does not depend
 * on the order in which a sink applies different entities.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testserver.h"

#define ENV_ID "env_test"
#define FLAG_ACCOUNT "acct_test"
/* REST items carry no account_id, so cached companies and users loaded
 * over REST have "" (section 10.3); the stream uses the same value so that
 * both paths produce identical entities. */
#define ENTITY_ACCOUNT ""

/* ---- PRNG --------------------------------------------------------------- */

static uint64_t rng_next(struct ts_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ULL);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, n). */
static uint32_t rng_below(struct ts_rng *r, uint32_t n)
{
    if (n == 0)
        return 0;
    return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

static int rng_pct(struct ts_rng *r, unsigned pct)
{
    return rng_below(r, 100) < pct;
}

static const char *pick(struct ts_rng *r, const char *const *v, size_t n)
{
    return v[rng_below(r, (uint32_t)n)];
}

#define PICK(r, arr) pick((r), (arr), sizeof(arr) / sizeof((arr)[0]))

/* ---- buffers ------------------------------------------------------------ */

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);

    if (!q && n) {
        fprintf(stderr, "testserver: out of memory\n");
        exit(2);
    }
    return q;
}

/* Reserves n bytes at the end of b and returns their offset. */
static size_t buf_reserve(struct ts_buf *b, size_t n)
{
    size_t at = b->len;

    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1 << 16;

        while (b->len + n > cap)
            cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
    b->len += n;
    return at;
}

static void buf_put(struct ts_buf *b, const void *p, size_t n)
{
    size_t at = buf_reserve(b, n);

    memcpy(b->p + at, p, n);
}

static void buf_putc(struct ts_buf *b, char c)
{
    if (b->len < b->cap)
        b->p[b->len++] = (unsigned char)c;
    else
        buf_put(b, &c, 1);
}

/* Stores text in the states buffer. */
static struct ts_val state_put(struct ts_world *w, const char *s, size_t n)
{
    struct ts_val v = {0};

    v.off = buf_reserve(&w->states, n);
    memcpy(w->states.p + v.off, s, n);
    v.len = (uint32_t)n;
    v.live = 1;
    return v;
}

/* ---- small JSON helpers ------------------------------------------------- */

static void oset(json_t *o, const char *k, json_t *v)
{
    json_object_set_new(o, k, v);
}

static json_t *jstrf(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static json_t *jstrf(const char *fmt, ...)
{
    char buf[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return json_string(buf);
}

/* RFC 3339 UTC with Z, whole seconds, as Go writes it. */
static json_t *jtime(long long unix_s)
{
    char buf[32];
    time_t t = (time_t)unix_s;
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_string(buf);
}

/* 2026-09-01T00:00:00Z */
#define T_SEP1 1788220800LL
#define DAY 86400LL

/* ---- tables ------------------------------------------------------------- */

static void table_grow(struct ts_table *t, size_t n)
{
    if (n >= t->cap) {
        size_t cap = t->cap ? t->cap : 64;

        while (n >= cap)
            cap *= 2;
        t->val = xrealloc(t->val, cap * sizeof(*t->val));
        t->meta = xrealloc(t->meta, cap * sizeof(*t->meta));
        memset(t->val + t->cap, 0, (cap - t->cap) * sizeof(*t->val));
        memset(t->meta + t->cap, 0, (cap - t->cap) * sizeof(*t->meta));
        t->cap = cap;
    }
    if (n > t->n)
        t->n = n;
}

static struct ts_table *table_of(struct ts_gen *g, enum sch_type type)
{
    return type == SCH_COMPANY ? &g->comp
           : type == SCH_USER  ? &g->user
                               : &g->flag;
}

/* Makes slot n of t hold v (v.live = 0: absent) and records the change in
 * delta (when not NULL). */
static void table_set(struct ts_table *t, size_t n, struct ts_val v,
                      struct ts_delta *delta)
{
    table_grow(t, n);
    if (t->val[n].live)
        t->live--;
    if (v.live)
        t->live++;
    t->val[n] = v;
    if (delta) {
        delta->v = v;
        delta->slot = (uint32_t)n;
        delta->type = (uint8_t)t->type;
    }
}

/* Remembers the keys a company / user has now, for later deletes. */
static void remember_keys(struct ts_table *t, size_t n, json_t *keys)
{
    free(t->meta[n].last_keys);
    t->meta[n].last_keys = keys ? json_dumps(keys, JSON_COMPACT) : NULL;
}

/* After a partial carrying keys: existing keys plus the partial's, the
 * partial winning (5.2; keys are never removed). */
static void merge_keys(struct ts_table *t, size_t n, json_t *pkeys)
{
    json_t *k;

    if (!json_is_object(pkeys))
        return;
    k = t->meta[n].last_keys ? json_loads(t->meta[n].last_keys, 0, NULL) : NULL;
    if (!k)
        k = json_object();
    json_object_update(k, pkeys);
    remember_keys(t, n, k);
    json_decref(k);
}

/*
 * A compact JSON writer for the generator's own trees, several times
 * faster than json_dumps (which dominated generation). Jansson strings are
 * valid UTF-8, so only '"', '\\' and control characters need escaping.
 */
static void dump_str(struct ts_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = 0;

    buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        buf_put(b, s + start, i - start);
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};

            buf_put(b, e, 2);
        } else {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};

            buf_put(b, e, 6);
        }
        start = i + 1;
    }
    buf_put(b, s + start, n - start);
    buf_putc(b, '"');
}

static void dump(struct ts_buf *b, json_t *v)
{
    char num[40];
    int n;

    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *m;
        int first = 1;

        buf_putc(b, '{');
        json_object_foreach(v, k, m)
        {
            if (!first)
                buf_putc(b, ',');
            first = 0;
            dump_str(b, k, strlen(k));
            buf_putc(b, ':');
            dump(b, m);
        }
        buf_putc(b, '}');
        break;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *m;

        buf_putc(b, '[');
        json_array_foreach(v, i, m)
        {
            if (i)
                buf_putc(b, ',');
            dump(b, m);
        }
        buf_putc(b, ']');
        break;
    }
    case JSON_STRING:
        dump_str(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        n = snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
                     json_integer_value(v));
        buf_put(b, num, (size_t)n);
        break;
    case JSON_REAL:
        n = snprintf(num, sizeof(num), "%.17g", json_real_value(v));
        buf_put(b, num, (size_t)n);
        break;
    case JSON_TRUE:
        buf_put(b, "true", 4);
        break;
    case JSON_FALSE:
        buf_put(b, "false", 5);
        break;
    default:
        buf_put(b, "null", 4);
        break;
    }
}

/* The compact text of v in g's scratch buffer (valid until the next
 * call); *len set. */
static const char *dump_text(struct ts_gen *g, json_t *v, size_t *len)
{
    g->scratch.len = 0;
    dump(&g->scratch, v);
    buf_putc(&g->scratch, '\0');
    *len = g->scratch.len - 1;
    return (const char *)g->scratch.p;
}

/* The oracle's normalised bytes for e (the expected cached value),
 * marking the generator failed on error. */
static char *norm(struct ts_gen *g, enum sch_type type, json_t *e)
{
    char err[256];
    size_t len;
    const char *raw = dump_text(g, e, &len);
    char *s = oracle_normalize_text(type, raw, len, err, sizeof(err));

    if (!s) {
        fprintf(stderr, "testserver: normalisation failed: %s\n", err);
        g->failed = 1;
    }
    return s;
}

/* ---- entity parts ------------------------------------------------------- */

static const char *const industries[] = {"fintech", "retail",    "health",
                                         "media",   "logistics", "energy"};
static const char *const regions[] = {"eu", "us", "apac", "latam"};
static const char *const roles[] = {"admin", "viewer", "editor", "owner"};
static const char *const base_plans[] = {"plan_free", "plan_starter",
                                         "plan_pro", "plan_enterprise"};
static const char *const words[] = {
    "alpha", "bravo", "charlie", "delta", "echo",   "foxtrot", "golf",
    "hotel", "india", "juliet",  "kilo",  "lima",   "mike",    "november",
    "oscar", "papa",  "quebec",  "romeo", "sierra", "tango"};

struct metric_ident {
    const char *event;
    const char *period;
    const char *reset;
};

/* Periods and resets that survive the REST conversion (10.3). */
static const struct metric_ident metric_idents[] = {
    {"api_calls", "current_month", "first_of_month"},
    {"api_calls", "all_time", "first_of_month"},
    {"ai_tokens", "current_day", "billing_cycle"},
    {"exports", "current_month", "billing_cycle"},
    {"seats_used", "all_time", "first_of_month"},
};
#define N_IDENTS (sizeof(metric_idents) / sizeof(metric_idents[0]))

static json_t *trait(const char *def, const char *ctype, const char *etype,
                     json_t *value)
{
    json_t *t = json_object();
    json_t *d = json_object();

    oset(d, "id", json_string(def));
    oset(d, "comparable_type", json_string(ctype));
    oset(d, "entity_type", json_string(etype));
    oset(t, "trait_definition", d);
    oset(t, "value", value);
    return t;
}

static json_t *filler_text(struct ts_rng *r, unsigned len)
{
    char *buf = malloc(len + 16);
    size_t n = 0;
    json_t *s;

    if (!buf)
        return json_string("");
    while (n < len) {
        const char *w = PICK(r, words);
        size_t wl = strlen(w);

        memcpy(buf + n, w, wl);
        n += wl;
        buf[n++] = ' ';
    }
    buf[len] = '\0';
    s = json_string(buf);
    free(buf);
    return s;
}

static json_t *company_traits(struct ts_gen *g, struct ts_meta *s)
{
    struct ts_rng *r = &g->rng;
    json_t *a = json_array();

    json_array_append_new(a, trait("trdf_industry", "string", "company",
                                   json_string(PICK(r, industries))));
    if (rng_pct(r, 80))
        json_array_append_new(a, trait("trdf_seats", "int", "company",
                                       jstrf("%u", 1 + rng_below(r, 500))));
    if (rng_pct(r, 50))
        json_array_append_new(
            a, trait("trdf_active", "bool", "company",
                     json_string(rng_pct(r, 70) ? "true" : "false")));
    if (rng_pct(r, 40))
        json_array_append_new(
            a, trait("trdf_renewal", "date", "company",
                     jstrf("2026-%02u-01", 1 + rng_below(r, 12))));
    if (rng_pct(r, 50))
        json_array_append_new(a, trait("trdf_region", "string", "company",
                                       json_string(PICK(r, regions))));
    if (s->filler)
        json_array_append_new(a, trait("trdf_notes", "string", "company",
                                       filler_text(r, s->filler)));
    return a;
}

static json_t *user_traits(struct ts_gen *g)
{
    struct ts_rng *r = &g->rng;
    json_t *a = json_array();

    json_array_append_new(
        a, trait("trdf_role", "string", "user", json_string(PICK(r, roles))));
    if (rng_pct(r, 60))
        json_array_append_new(a, trait("trdf_logins", "int", "user",
                                       jstrf("%u", rng_below(r, 10000))));
    if (rng_pct(r, 30))
        json_array_append_new(
            a, trait("trdf_beta", "bool", "user",
                     json_string(rng_pct(r, 50) ? "true" : "false")));
    return a;
}

/* Sets base_plan_id, billing_product_ids, plan_ids, plan_version_ids. */
static void company_plans(struct ts_gen *g, json_t *o)
{
    struct ts_rng *r = &g->rng;
    const char *base = PICK(r, base_plans);
    int no_base = rng_pct(r, 5);
    int sso = rng_pct(r, 30);
    int ai = rng_pct(r, 20);
    json_t *bp = json_array(), *pl = json_array(), *pv = json_array();

    if (no_base) {
        oset(o, "base_plan_id", json_null());
    } else {
        oset(o, "base_plan_id", json_string(base));
        json_array_append_new(pl, json_string(base));
        json_array_append_new(
            pv, jstrf("plnv_%s_v%u", base + 5, 1 + rng_below(r, 3)));
        json_array_append_new(bp, jstrf("bprod_%s_monthly", base + 5));
    }
    if (sso) {
        json_array_append_new(pl, json_string("plan_addon_sso"));
        json_array_append_new(pv, json_string("plnv_addon_sso_v1"));
        json_array_append_new(bp, json_string("bprod_addon_sso"));
    }
    if (ai) {
        json_array_append_new(pl, json_string("plan_addon_ai"));
        json_array_append_new(pv, json_string("plnv_addon_ai_v2"));
        json_array_append_new(bp, json_string("bprod_addon_ai"));
    }
    oset(o, "billing_product_ids", bp);
    oset(o, "plan_ids", pl);
    oset(o, "plan_version_ids", pv);
}

static json_t *metric(struct ts_gen *g, size_t n, size_t ident)
{
    const struct metric_ident *mi = &metric_idents[ident];
    long long created = T_SEP1 - (long long)rng_below(&g->rng, 200) * DAY;
    json_t *m = json_object();

    oset(m, "account_id", json_string(FLAG_ACCOUNT));
    oset(m, "environment_id", json_string(ENV_ID));
    oset(m, "company_id", jstrf("comp_%zu", n));
    oset(m, "event_subtype", json_string(mi->event));
    oset(m, "period", json_string(mi->period));
    oset(m, "month_reset", json_string(mi->reset));
    oset(m, "value", json_integer((json_int_t)rng_below(&g->rng, 5000)));
    oset(m, "created_at", jtime(created));
    if (strcmp(mi->period, "all_time") == 0)
        oset(m, "valid_until", json_null());
    else
        oset(m, "valid_until",
             jtime(T_SEP1 + (long long)(1 + rng_below(&g->rng, 30)) * DAY));
    return m;
}

static json_t *company_metrics(struct ts_gen *g, size_t n)
{
    json_t *a = json_array();

    for (size_t i = 0; i < N_IDENTS; i++)
        if (i == 0 || rng_pct(&g->rng, 15))
            json_array_append_new(a, metric(g, n, i));
    return a;
}

static json_t *credit_balances(struct ts_gen *g)
{
    json_t *o = json_object();

    if (rng_pct(&g->rng, 70))
        oset(o, "bcrd_ai_tokens",
             json_real(100.0 + rng_below(&g->rng, 4000) / 2.0));
    if (rng_pct(&g->rng, 30))
        oset(o, "bcrd_exports", json_real((double)rng_below(&g->rng, 300)));
    return o;
}

/* One FeatureEntitlement with only the fields the REST conversion carries
 * (consumption_rate, event_subtype, credit_reserved/settled are absent, so
 * they are omitted). */
static json_t *entitlement(struct ts_gen *g, int kind)
{
    struct ts_rng *r = &g->rng;
    json_t *e = json_object();

    oset(e, "allocation", json_null());
    oset(e, "credit_id", json_null());
    oset(e, "credit_remaining", json_null());
    oset(e, "credit_total", json_null());
    oset(e, "credit_used", json_null());
    oset(e, "event_name", json_null());
    oset(e, "feature_id", json_null());
    oset(e, "feature_key", json_null());
    oset(e, "metric_period", json_null());
    oset(e, "metric_reset_at", json_null());
    oset(e, "month_reset", json_null());
    oset(e, "soft_limit", json_null());
    oset(e, "usage", json_null());
    oset(e, "value_type", json_null());
    switch (kind) {
    case 0:
        oset(e, "allocation", json_integer(1000));
        oset(e, "event_name", json_string("api_calls"));
        oset(e, "feature_id", json_string("feat_api"));
        oset(e, "feature_key", json_string("api-access"));
        oset(e, "metric_period", json_string("current_month"));
        oset(e, "metric_reset_at", jtime(T_SEP1 + 30 * DAY));
        oset(e, "month_reset", json_string("first_of_month"));
        oset(e, "usage", json_integer((json_int_t)rng_below(r, 1500)));
        oset(e, "value_type", json_string("numeric"));
        break;
    case 1: {
        double total = 2000.0, used = (double)rng_below(r, 2000);

        oset(e, "credit_id", json_string("bcrd_ai_tokens"));
        oset(e, "credit_remaining", json_real(total - used));
        oset(e, "credit_total", json_real(total));
        oset(e, "credit_used", json_real(used));
        oset(e, "event_name", json_string("ai_tokens"));
        oset(e, "feature_id", json_string("feat_ai"));
        oset(e, "feature_key", json_string("ai-assistant"));
        oset(e, "value_type", json_string("credit"));
        break;
    }
    case 2:
        oset(e, "feature_id", json_string("feat_sso"));
        oset(e, "feature_key", json_string("sso"));
        oset(e, "value_type", json_string("boolean"));
        break;
    default:
        oset(e, "allocation", json_integer(50));
        oset(e, "event_name", json_string("exports"));
        oset(e, "feature_id", json_string("feat_exports"));
        oset(e, "feature_key", json_string("exports"));
        oset(e, "metric_period", json_string("current_month"));
        oset(e, "month_reset", json_string("billing_cycle"));
        oset(e, "soft_limit", json_integer(40));
        oset(e, "usage", json_integer((json_int_t)rng_below(r, 60)));
        oset(e, "value_type", json_string("numeric"));
        break;
    }
    return e;
}

static json_t *company_entitlements(struct ts_gen *g)
{
    json_t *a = json_array();

    for (int k = 0; k < 4; k++)
        if (rng_pct(&g->rng, 20))
            json_array_append_new(a, entitlement(g, k));
    return a;
}

static json_t *company_rules(struct ts_gen *g, size_t n)
{
    json_t *a = json_array();
    long nflags = (long)g->flag.n;

    if (nflags > 0 && rng_pct(&g->rng, 30)) {
        json_t *rule = json_object();
        uint32_t f = 1 + rng_below(&g->rng, (uint32_t)nflags);

        oset(rule, "id", jstrf("rule_ovr_c%zu_%lu", n, ++g->seq));
        oset(rule, "flag_id", jstrf("flag_%u", f));
        oset(rule, "account_id", json_string(ENTITY_ACCOUNT));
        oset(rule, "environment_id", json_string(ENV_ID));
        oset(rule, "rule_type", json_string("company_override"));
        oset(rule, "name", jstrf("Override for comp_%zu", n));
        oset(rule, "priority", json_integer(0));
        oset(rule, "conditions", json_array());
        oset(rule, "condition_groups", json_array());
        oset(rule, "value", json_boolean(rng_pct(&g->rng, 70)));
        json_array_append_new(a, rule);
    }
    return a;
}

static json_t *subscription(struct ts_gen *g, size_t n)
{
    json_t *o;
    long long start;

    if (rng_pct(&g->rng, 10))
        return json_null();
    start = T_SEP1 - (long long)rng_below(&g->rng, 28) * DAY;
    o = json_object();
    oset(o, "id", jstrf("bsub_%zu_%lu", n, ++g->seq));
    oset(o, "period_start", jtime(start));
    oset(o, "period_end", jtime(start + 30 * DAY));
    return o;
}

/* Keys of company n at version ver. The domain changes with the version
 * for some regenerations, which makes the old lookup key stale. */
static json_t *company_keys(struct ts_gen *g, size_t n, unsigned ver,
                            int change)
{
    json_t *k = json_object();

    if (!change || ver == 0)
        oset(k, "domain", jstrf("c%zu.example", n));
    else if (rng_pct(&g->rng, 20))
        oset(k, "domain", jstrf("C%zu-V%u.Example", n, ver));
    else
        oset(k, "domain", jstrf("c%zu-v%u.example", n, ver));
    oset(k, "id", jstrf("c%zu", n));
    if (change && rng_pct(&g->rng, 30))
        oset(k, "slug", jstrf("c%zu-s%lu", n, ++g->seq));
    return k;
}

static json_t *user_keys(struct ts_gen *g, size_t n, unsigned ver, int change)
{
    json_t *k = json_object();

    if (!change || ver == 0)
        oset(k, "email", jstrf("u%zu@example.test", n));
    else if (rng_pct(&g->rng, 20))
        oset(k, "email", jstrf("U%zu.V%u@Example.test", n, ver));
    else
        oset(k, "email", jstrf("u%zu.v%u@example.test", n, ver));
    oset(k, "id", jstrf("u%zu", n));
    return k;
}

/* A whole company in rulesengine struct order. */
static json_t *make_company(struct ts_gen *g, size_t n, struct ts_meta *s,
                            int change_keys)
{
    json_t *c = json_object();
    json_t *ents;

    oset(c, "id", jstrf("comp_%zu", n));
    oset(c, "account_id", json_string(ENTITY_ACCOUNT));
    oset(c, "environment_id", json_string(ENV_ID));
    company_plans(g, c);
    /* company_plans appends base_plan_id, billing_product_ids, plan_ids,
     * plan_version_ids; the remaining fields follow. */
    oset(c, "credit_balances", credit_balances(g));
    ents = company_entitlements(g);
    if (json_array_size(ents))
        oset(c, "entitlements", ents);
    else
        json_decref(ents);
    oset(c, "keys", company_keys(g, n, s->ver, change_keys));
    oset(c, "metrics", company_metrics(g, n));
    oset(c, "rules", company_rules(g, n));
    oset(c, "subscription", subscription(g, n));
    oset(c, "traits", company_traits(g, s));
    return c;
}

static json_t *make_user(struct ts_gen *g, size_t n, struct ts_meta *s,
                         int change_keys)
{
    json_t *u = json_object();

    oset(u, "id", jstrf("user_%zu", n));
    oset(u, "account_id", json_string(ENTITY_ACCOUNT));
    oset(u, "environment_id", json_string(ENV_ID));
    oset(u, "keys", user_keys(g, n, s->ver, change_keys));
    oset(u, "traits", user_traits(g));
    oset(u, "rules", json_array());
    return u;
}

/* ---- flags -------------------------------------------------------------- */

static json_t *tdef(const char *id, const char *ctype, const char *etype)
{
    json_t *d = json_object();

    oset(d, "id", json_string(id));
    oset(d, "comparable_type", json_string(ctype));
    oset(d, "entity_type", json_string(etype));
    return d;
}

static json_t *condition(struct ts_gen *g, const char *id, int kind)
{
    struct ts_rng *r = &g->rng;
    json_t *c = json_object();
    json_t *res = json_array();
    const char *ctype = "plan", *op = "eq";
    json_t *event = json_null(), *mval = json_null(), *mper = json_null();
    json_t *mreset = json_null(), *credit = json_null();
    json_t *rate = json_null(), *td = json_null();
    json_t *tval = json_string("");

    switch (kind) {
    case 0:
        json_array_append_new(res, json_string(PICK(r, base_plans)));
        break;
    case 1:
        ctype = "trait";
        json_decref(td);
        td = tdef("trdf_industry", "string", "company");
        json_decref(tval);
        tval = json_string(PICK(r, industries));
        break;
    case 2:
        ctype = "metric";
        op = "lt";
        json_decref(event);
        event = json_string("api_calls");
        json_decref(mval);
        mval = json_integer(100 + (json_int_t)rng_below(r, 2000));
        json_decref(mper);
        mper = json_string("current_month");
        json_decref(mreset);
        mreset = json_string("first_of_month");
        break;
    case 3:
        ctype = "company";
        json_array_append_new(res, jstrf("comp_%u", 1 + rng_below(r, 50)));
        break;
    case 4:
        ctype = "user";
        json_array_append_new(res, jstrf("user_%u", 1 + rng_below(r, 50)));
        break;
    case 5:
        ctype = "credit";
        op = "gte";
        json_decref(credit);
        credit = json_string("bcrd_ai_tokens");
        json_decref(rate);
        rate = json_real(1.5);
        break;
    case 6:
        ctype = "trait";
        op = "gt";
        json_decref(td);
        td = tdef("trdf_seats", "int", "company");
        json_decref(tval);
        tval = jstrf("%u", rng_below(r, 100));
        break;
    default:
        ctype = "billing_product";
        json_array_append_new(res, json_string("bprod_addon_sso"));
        break;
    }
    oset(c, "id", json_string(id));
    oset(c, "account_id", json_string(FLAG_ACCOUNT));
    oset(c, "environment_id", json_string(ENV_ID));
    oset(c, "condition_type", json_string(ctype));
    oset(c, "operator", json_string(op));
    oset(c, "resource_ids", res);
    oset(c, "event_subtype", event);
    oset(c, "metric_value", mval);
    oset(c, "metric_period", mper);
    oset(c, "metric_period_month_reset", mreset);
    oset(c, "credit_id", credit);
    oset(c, "consumption_rate", rate);
    oset(c, "trait_definition", td);
    oset(c, "trait_value", tval);
    oset(c, "comparison_trait_definition", json_null());
    return c;
}

static const char *const rule_types[] = {
    "standard", "standard", "plan_entitlement", "global_override", "default"};

static json_t *make_flag(struct ts_gen *g, size_t n)
{
    struct ts_rng *r = &g->rng;
    json_t *f = json_object();
    json_t *rules = json_array();
    unsigned nrules = rng_below(r, 4);
    char id[64];

    snprintf(id, sizeof(id), "flag_%zu", n);
    oset(f, "id", json_string(id));
    oset(f, "account_id", json_string(FLAG_ACCOUNT));
    oset(f, "environment_id", json_string(ENV_ID));
    /* Some keys are mixed case: the cache key is lower(key) (6.1). */
    if (n % 5 == 3)
        oset(f, "key", jstrf("Flag-%zu-MiXeD", n));
    else
        oset(f, "key", jstrf("flag-%zu", n));
    for (unsigned i = 0; i < nrules; i++) {
        json_t *rule = json_object();
        const char *rt = PICK(r, rule_types);
        json_t *conds = json_array(), *groups = json_array();
        char rid[80], cid[96];
        unsigned long sq = ++g->seq;

        snprintf(rid, sizeof(rid), "rule_%zu_%lu", n, sq);
        if (strcmp(rt, "standard") == 0 ||
            strcmp(rt, "plan_entitlement") == 0) {
            unsigned nc = 1 + rng_below(r, 2);

            for (unsigned k = 0; k < nc; k++) {
                snprintf(cid, sizeof(cid), "cond_%zu_%lu_%u", n, sq, k);
                json_array_append_new(conds,
                                      condition(g, cid, (int)rng_below(r, 8)));
            }
            if (rng_pct(r, 25)) {
                json_t *grp = json_object();
                json_t *gc = json_array();

                snprintf(cid, sizeof(cid), "cond_%zu_%lu_g", n, sq);
                json_array_append_new(gc,
                                      condition(g, cid, (int)rng_below(r, 8)));
                oset(grp, "conditions", gc);
                json_array_append_new(groups, grp);
            }
        }
        oset(rule, "id", json_string(rid));
        oset(rule, "flag_id", json_string(id));
        oset(rule, "account_id", json_string(FLAG_ACCOUNT));
        oset(rule, "environment_id", json_string(ENV_ID));
        oset(rule, "rule_type", json_string(rt));
        oset(rule, "name", jstrf("Rule %u of %s", i + 1, id));
        oset(rule, "priority", json_integer((json_int_t)i));
        oset(rule, "conditions", conds);
        oset(rule, "condition_groups", groups);
        oset(rule, "value", json_boolean(rng_pct(r, 60)));
        json_array_append_new(rules, rule);
    }
    oset(f, "rules", rules);
    oset(f, "default_value", json_boolean(rng_pct(r, 20)));
    return f;
}

/* ---- init --------------------------------------------------------------- */

/*
 * Picks the padding (one "notes" trait) that brings a company's normalised
 * JSON to about --company-bytes: measured once, on a few sample companies
 * drawn from a separate PRNG stream, and used for every company.
 */
static void company_filler(struct ts_gen *g, struct ts_meta *s)
{
    if (!g->filler_known) {
        struct ts_gen tmp = *g;
        struct ts_meta m = {0};
        long total = 0, want = g->o->company_bytes;

        tmp.rng.s = g->o->seed ^ 0x5eed5eed5eedULL;
        m.sized = 1;
        for (int i = 1; i <= 16; i++) {
            json_t *c = make_company(&tmp, (size_t)i, &m, 0);
            char err[128];
            char *js = oracle_normalize(SCH_COMPANY, c, err, sizeof(err));

            total += js ? (long)strlen(js) : 0;
            free(js);
            json_decref(c);
        }
        /* The notes trait costs about 110 bytes besides its text. */
        g->filler =
            want - total / 16 > 140 ? (unsigned)(want - total / 16 - 110) : 0;
        g->filler_known = 1;
    }
    s->filler = g->filler;
    s->sized = 1;
}

/* Builds entity n of t's type (version per its metadata). */
static json_t *make_entity(struct ts_gen *g, struct ts_table *t, size_t n,
                           int change_keys)
{
    table_grow(t, n);
    if (t->type == SCH_COMPANY) {
        if (!t->meta[n].sized)
            company_filler(g, &t->meta[n]);
        return make_company(g, n, &t->meta[n], change_keys);
    }
    if (t->type == SCH_USER)
        return make_user(g, n, &t->meta[n], change_keys);
    return make_flag(g, n);
}

int gen_init(struct ts_gen *g, const struct ts_opts *o, struct ts_world *w)
{
    const long counts[4] = {0, o->companies, o->users, o->flags};
    static const enum sch_type order[3] = {SCH_FLAG, SCH_COMPANY, SCH_USER};

    memset(g, 0, sizeof(*g));
    g->o = o;
    g->w = w;
    g->rng.s = o->seed;
    g->comp.type = SCH_COMPANY;
    g->user.type = SCH_USER;
    g->flag.type = SCH_FLAG;
    table_grow(&g->comp, 0);
    table_grow(&g->user, 0);
    table_grow(&g->flag, 0);
    for (int k = 0; k < 3; k++) {
        enum sch_type type = order[k];
        struct ts_table *t = table_of(g, type);

        for (long i = 1; i <= counts[type] && !g->failed; i++) {
            json_t *e = make_entity(g, t, (size_t)i, 0);
            char *s = norm(g, type, e);

            if (s) {
                table_set(t, (size_t)i, state_put(w, s, strlen(s)), NULL);
                remember_keys(t, (size_t)i, json_object_get(e, "keys"));
            }
            free(s);
            json_decref(e);
        }
    }
    for (int k = 1; k < 4; k++) {
        struct ts_table *t = table_of(g, (enum sch_type)k);

        w->init[k] = xrealloc(NULL, (t->n + 1) * sizeof(struct ts_val));
        memcpy(w->init[k], t->val, (t->n + 1) * sizeof(struct ts_val));
        w->nslot[k] = t->n;
    }
    w->init_len = w->states.len;
    return g->failed ? -1 : 0;
}

static void table_release(struct ts_table *t)
{
    for (size_t i = 0; i <= t->n && t->meta; i++)
        free(t->meta[i].last_keys);
    free(t->val);
    free(t->meta);
    memset(t, 0, sizeof(*t));
}

void gen_release(struct ts_gen *g)
{
    table_release(&g->comp);
    table_release(&g->user);
    table_release(&g->flag);
    free(g->scratch.p);
    memset(&g->scratch, 0, sizeof(g->scratch));
}

void world_release(struct ts_world *w)
{
    free(w->frames.p);
    free(w->states.p);
    free(w->off);
    free(w->delta);
    for (int k = 0; k < 4; k++)
        free(w->init[k]);
    memset(w, 0, sizeof(*w));
}

/* ---- frames ------------------------------------------------------------- */

static const char *type_name(enum sch_type t)
{
    switch (t) {
    case SCH_COMPANY:
        return "rulesengine.Company";
    case SCH_USER:
        return "rulesengine.User";
    default:
        return "rulesengine.Flag";
    }
}

/* Appends message g->pos's frame: {"data":<pre><data><post>,"entity_id":
 * ...,"stream_id":...}. Returns the offset of data in the frames buffer. */
static size_t frame_put(struct ts_gen *g, const char *pre, const char *data,
                        size_t dlen, const char *entity_id, enum sch_type type,
                        const char *mtype)
{
    struct ts_world *w = g->w;
    char tail[256];
    unsigned char h[10];
    size_t plen = strlen(pre), tlen, hl, at, total;

    tlen = (size_t)snprintf(tail, sizeof(tail),
                            ",\"entity_id\":\"%s\",\"entity_type\":\"%s\","
                            "\"message_type\":\"%s\",\"stream_id\":"
                            "\"%lld-0\"}",
                            entity_id, type_name(type), mtype,
                            ts_base_ms + g->pos);
    total = 8 + plen + dlen + tlen;
    hl = ws_header(h, 1, total);
    at = buf_reserve(&w->frames, hl + total);
    w->off[g->pos] = at;
    memcpy(w->frames.p + at, h, hl);
    at += hl;
    memcpy(w->frames.p + at, "{\"data\":", 8);
    memcpy(w->frames.p + at + 8, pre, plen);
    memcpy(w->frames.p + at + 8 + plen, data, dlen);
    memcpy(w->frames.p + at + 8 + plen + dlen, tail, tlen);
    return at + 8 + plen;
}

/* ---- stream messages ---------------------------------------------------- */

/* A full: regenerate (or create) entity n and cache it (7.1). */
static void step_full(struct ts_gen *g, struct ts_table *t, size_t n,
                      struct ts_delta *d)
{
    struct ts_rng *r = &g->rng;
    int change = rng_pct(r, 25), variant = (int)rng_below(r, 10);
    json_t *e;
    char *s, id[64];
    size_t at, len;

    table_grow(t, n);
    if (t->val[n].live || t->meta[n].last_keys)
        t->meta[n].ver++;
    e = make_entity(g, t, n, change);
    snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(e, "id")));
    s = norm(g, t->type, e);
    if (!s) {
        json_decref(e);
        return;
    }
    len = strlen(s);
    if (variant == 0) {
        /* Not every frame is normalised: unknown members are dropped by
         * the round trip (4.1)... */
        frame_put(g, "{\"legacy_field\":{\"x\":[1,2]},", s + 1, len - 1, id,
                  t->type, "full");
        table_set(t, n, state_put(g->w, s, len), d);
    } else if (variant == 1) {
        /* ...and member order and float formatting (1500.0) do not
         * matter either. */
        char *raw = json_dumps(e, JSON_COMPACT | JSON_SORT_KEYS);

        frame_put(g, "", raw, strlen(raw), id, t->type, "full");
        free(raw);
        table_set(t, n, state_put(g->w, s, len), d);
    } else {
        struct ts_val v = {0};

        at = frame_put(g, "", s, len, id, t->type, "full");
        v.off = at;
        v.len = (uint32_t)len;
        v.in_frames = 1;
        v.live = 1;
        table_set(t, n, v, d);
    }
    remember_keys(t, n, json_object_get(e, "keys"));
    free(s);
    json_decref(e);
}

/* A full for a fresh id with no keys: not cached at all (7.1 step 1). */
static void step_keyless(struct ts_gen *g, struct ts_table *t)
{
    struct ts_meta dummy = {0};
    json_t *e;
    char id[64];
    char *s;

    if (t->type == SCH_COMPANY) {
        e = make_company(g, 0, &dummy, 0);
        snprintf(id, sizeof(id), "comp_nokeys_%lu", ++g->seq);
    } else {
        e = make_user(g, 0, &dummy, 0);
        snprintf(id, sizeof(id), "user_nokeys_%lu", ++g->seq);
    }
    oset(e, "id", json_string(id));
    oset(e, "keys", json_object());
    s = norm(g, t->type, e);
    if (s)
        frame_put(g, "", s, strlen(s), id, t->type, "full");
    free(s);
    json_decref(e);
}

static json_t *partial_company(struct ts_gen *g, size_t n, struct ts_meta *s)
{
    struct ts_rng *r = &g->rng;
    json_t *p = json_object();
    unsigned aspects = 1 + rng_below(r, 3);

    if (rng_pct(r, 30))
        oset(p, "id", jstrf("comp_%zu", n));
    for (unsigned i = 0; i < aspects; i++) {
        switch (rng_below(r, 10)) {
        case 0:
            oset(p, "traits", company_traits(g, s));
            break;
        case 1: {
            /* Keys merge: a new slug replaces the old slug's value (its
             * lookup key becomes stale), a new domain the domain's. */
            json_t *k = json_object();

            if (rng_pct(r, 50))
                oset(k, "slug", jstrf("c%zu-s%lu", n, ++g->seq));
            else
                oset(k, "domain", jstrf("c%zu-p%lu.example", n, ++g->seq));
            oset(p, "keys", k);
            break;
        }
        case 2:
            company_plans(g, p);
            break;
        case 3:
        case 4: {
            json_t *m = json_array();
            unsigned nm = 1 + rng_below(r, 2);

            for (unsigned k = 0; k < nm; k++)
                json_array_append_new(
                    m, metric(g, n, rng_below(r, (uint32_t)N_IDENTS)));
            /* An empty list still counts as "metrics updated". */
            if (rng_pct(r, 3)) {
                json_decref(m);
                m = json_array();
            }
            oset(p, "metrics", m);
            break;
        }
        case 5:
        case 6:
            if (rng_pct(r, 5))
                oset(p, "credit_balances", json_null());
            else
                oset(p, "credit_balances", credit_balances(g));
            break;
        case 7:
            oset(p, "entitlements", company_entitlements(g));
            break;
        case 8:
            oset(p, "subscription", subscription(g, n));
            break;
        default:
            oset(p, "rules", company_rules(g, n));
            break;
        }
    }
    return p;
}

static json_t *partial_user(struct ts_gen *g, size_t n)
{
    struct ts_rng *r = &g->rng;
    json_t *p = json_object();

    if (rng_pct(r, 30))
        oset(p, "id", jstrf("user_%zu", n));
    if (rng_pct(r, 70))
        oset(p, "traits", user_traits(g));
    if (!json_object_size(p) || rng_pct(r, 30)) {
        json_t *k = json_object();

        oset(k, "email", jstrf("u%zu.p%lu@example.test", n, ++g->seq));
        oset(p, "keys", k);
    }
    return p;
}

/* A partial: merged into the cached entity, a no-op when it is absent
 * (5.1). */
static void step_partial(struct ts_gen *g, struct ts_table *t, size_t n,
                         struct ts_delta *d)
{
    json_t *p;
    char id[64], err[256];
    char *ps;
    size_t plen;

    table_grow(t, n);
    if (t->type == SCH_COMPANY) {
        snprintf(id, sizeof(id), "comp_%zu", n);
        p = partial_company(g, n, &t->meta[n]);
    } else {
        snprintf(id, sizeof(id), "user_%zu", n);
        p = partial_user(g, n);
    }
    ps = (char *)dump_text(g, p, &plen);
    frame_put(g, "", ps, plen, id, t->type, "partial");
    if (t->val[n].live) {
        const struct ts_val *base = &t->val[n];
        char *m = oracle_merge_text(t->type, ts_text(g->w, base), base->len,
                                    ps, plen, err, sizeof(err));

        if (!m) {
            fprintf(stderr, "testserver: merge failed for %s: %s\n", id, err);
            g->failed = 1;
        } else {
            table_set(t, n, state_put(g->w, m, strlen(m)), d);
            merge_keys(t, n, json_object_get(p, "keys"));
            free(m);
        }
    }
    json_decref(p);
}

/* A delete carries id + keys (7.3): the current keys, or the last ones the
 * entity had when it is already gone. */
static void step_delete(struct ts_gen *g, struct ts_table *t, size_t n,
                        struct ts_delta *d)
{
    json_t *data = json_object();
    json_t *keys = NULL;
    struct ts_val none = {0};
    char id[64];
    const char *ds;
    size_t dlen;

    table_grow(t, n);
    snprintf(id, sizeof(id), "%s_%zu", t->type == SCH_COMPANY ? "comp" : "user",
             n);
    if (t->meta[n].last_keys)
        keys = json_loads(t->meta[n].last_keys, 0, NULL);
    if (!keys)
        keys = t->type == SCH_COMPANY ? company_keys(g, n, 0, 0)
                                      : user_keys(g, n, 0, 0);
    oset(data, "id", json_string(id));
    oset(data, "account_id", json_string(ENTITY_ACCOUNT));
    oset(data, "environment_id", json_string(ENV_ID));
    oset(data, "keys", keys);
    ds = dump_text(g, data, &dlen);
    frame_put(g, "", ds, dlen, id, t->type, "delete");
    json_decref(data);
    table_set(t, n, none, d);
}

/* A single-flag full or delete (7.5). The last live flag is never
 * deleted: an empty snapshot deletes nothing (7.4), which would make the
 * expected state depend on the client's history. */
static void step_flag(struct ts_gen *g, struct ts_delta *d)
{
    struct ts_rng *r = &g->rng;
    struct ts_table *t = &g->flag;
    char id[64];
    size_t n;

    if (t->live > 1 && rng_pct(r, 30)) {
        struct ts_val none = {0};
        struct ts_val cur;
        char *text;

        n = 1 + rng_below(r, (uint32_t)t->n);
        while (!t->val[n].live)
            n = n % t->n + 1;
        cur = t->val[n];
        snprintf(id, sizeof(id), "flag_%zu", n);
        /* In practice a delete carries the whole flag (3.2). The text is
         * copied first: it may live in the buffer frame_put grows. */
        text = strndup(ts_text(g->w, &cur), cur.len);
        if (!text) {
            g->failed = 1;
            return;
        }
        frame_put(g, "", text, cur.len, id, SCH_FLAG, "delete");
        free(text);
        table_set(t, n, none, d);
        return;
    }
    if (t->n == 0 || rng_pct(r, 15))
        n = t->n + 1;
    else
        n = 1 + rng_below(r, (uint32_t)t->n);
    step_full(g, t, n, d);
}

static void gen_step(struct ts_gen *g)
{
    struct ts_rng *r = &g->rng;
    const struct ts_opts *o = g->o;
    struct ts_delta *d;
    uint32_t total = (uint32_t)(o->mix_full + o->mix_partial + o->mix_delete);

    g->pos++;
    d = &g->w->delta[g->pos];
    memset(d, 0, sizeof(*d));
    if (rng_pct(r, 5)) {
        step_flag(g, d);
    } else {
        struct ts_table *t;
        uint32_t op, x;
        size_t n;

        if (g->user.n == 0 || (g->comp.n > 0 && rng_pct(r, 65)))
            t = &g->comp;
        else
            t = &g->user;
        op = total ? rng_below(r, total) : 0;
        x = rng_below(r, 1000);
        if (t->n == 0 || x < 15) {
            /* A new entity. */
            n = t->n + 1;
            op = 0;
        } else {
            n = 1 + rng_below(r, (uint32_t)t->n);
        }
        if (total == 0 || op < (uint32_t)o->mix_full) {
            if (x >= 15 && x < 25)
                step_keyless(g, t);
            else
                step_full(g, t, n, d);
        } else if (op < (uint32_t)(o->mix_full + o->mix_partial)) {
            step_partial(g, t, n, d);
        } else {
            step_delete(g, t, n, d);
        }
    }
}

int gen_stream(struct ts_gen *g)
{
    struct ts_world *w = g->w;
    long n = g->o->messages;

    w->n = n;
    w->off = xrealloc(NULL, ((size_t)n + 2) * sizeof(*w->off));
    w->delta = xrealloc(NULL, ((size_t)n + 1) * sizeof(*w->delta));
    memset(&w->delta[0], 0, sizeof(w->delta[0]));
    w->off[0] = 0;
    while (g->pos < n && !g->failed)
        gen_step(g);
    w->off[n + 1] = w->frames.len;
    for (int k = 1; k < 4; k++) {
        struct ts_table *t = table_of(g, (enum sch_type)k);

        w->init[k] = xrealloc(w->init[k], (t->n + 1) * sizeof(struct ts_val));
        if (t->n > w->nslot[k])
            memset(w->init[k] + w->nslot[k] + 1, 0,
                   (t->n - w->nslot[k]) * sizeof(struct ts_val));
        w->nslot[k] = t->n;
    }
    return g->failed ? -1 : 0;
}

/* ---- outputs ------------------------------------------------------------ */

static int expect_table(const struct ts_gen *g, const struct ts_table *t,
                        json_t *out)
{
    const struct ts_opts *o = g->o;

    for (size_t i = 1; i <= t->n; i++) {
        const struct ts_val *v = &t->val[i];
        const char *text = ts_text(g->w, v);
        json_t *e;
        char *key;

        if (!v->live)
            continue;
        e = json_loadb(text, v->len, 0, NULL);
        if (!e) {
            fprintf(stderr, "testserver: expect: unparsable value\n");
            return -1;
        }
        if (t->type == SCH_FLAG) {
            key = sch_key_flag(o->key_prefix, o->cache_version,
                               json_string_value(json_object_get(e, "key")));
            json_object_set_new(out, key, json_stringn(text, v->len));
            free(key);
        } else {
            const char *id = json_string_value(json_object_get(e, "id"));
            const char *k;
            json_t *kv;
            char *lv = sch_lookup_value(id);

            key = sch_key_entity(o->key_prefix, t->type, o->cache_version, id);
            json_object_set_new(out, key, json_stringn(text, v->len));
            free(key);
            json_object_foreach(json_object_get(e, "keys"), k, kv)
            {
                key = sch_key_lookup(o->key_prefix, t->type, o->cache_version,
                                     k, json_string_value(kv));
                json_object_set_new(out, key, json_string(lv));
                free(key);
            }
            free(lv);
        }
        json_decref(e);
    }
    return 0;
}

int gen_write_expect(const struct ts_gen *g, const char *path)
{
    json_t *out = json_object();
    char tmp[4096];
    int rc = -1;

    if (expect_table(g, &g->flag, out) || expect_table(g, &g->comp, out) ||
        expect_table(g, &g->user, out) ||
        samples_expect(out, g->o->key_prefix, g->o->cache_version))
        goto out;
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (json_dump_file(out, tmp, JSON_INDENT(1) | JSON_SORT_KEYS) ||
        rename(tmp, path)) {
        fprintf(stderr, "testserver: cannot write %s\n", path);
        goto out;
    }
    rc = 0;
out:
    json_decref(out);
    return rc;
}
