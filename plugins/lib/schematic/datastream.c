/*
 * plugins/lib/schematic/datastream.c: one Schematic datastream frame to one ferry
 * message (schematic-datastream.md section 3).
 *
 * The frame is checked in this order, and the first failure decides the
 * reason: UTF-8 (the whole frame, strictly), then the JSON grammar with
 * the nesting limit (so a megabyte of '[' is refused at depth
 * DS_MAX_DEPTH + 1), then envelope field types, the stream_id syntax, and
 * the message-type specific checks. The first two are one pass of the
 * shared scanner (jsonscan.h), which validates UTF-8 inside strings as it
 * goes and, on any failure, reports the first bad UTF-8 byte of the frame
 * when there is one.
 *
 * Why not jansson: building a jansson tree of a 2 KB company frame and
 * dumping `data` again costs ~100 us here (10k frames/s), far from the
 * source's 200k frames/s budget. Why not a jv tree either: it decodes
 * every string and number and keeps no raw spans. The scanner validates
 * the whole frame exactly as strictly as jansson does; this file pulls its
 * tokens, records only the members ferry needs (envelope fields,
 * data.id/key/keys/error/entity_type, pagination.*) as raw spans, lets
 * js_skip() run through every other object and array without handing out
 * tokens, and copies `data` once with insignificant whitespace removed.
 * Duplicate member names resolve as in jansson: the last one wins (in
 * data.keys the first position is kept, with the last value).
 *
 * Everything here is reentrant: no static mutable state.
 */
#include "schematic/datastream.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/jsonscan.h"
#include "json/utf8.h"

/* A scanned JSON value. For strings, s/len is the raw content between the
 * quotes and esc tells whether it holds a backslash. */
struct ds_tok {
    const char *s;
    size_t len;
    char type; /* 0 absent, 'n', 't', 'f', '0' number, '"', '{', '[' */
    char esc;
    char ws; /* an object or array with whitespace between its tokens */
};

struct ds_kvtok {
    struct ds_tok k;
    struct ds_tok v;
};

enum {
    R_DATA,
    R_ENTITY_ID,
    R_ENTITY_TYPE,
    R_MESSAGE_TYPE,
    R_STREAM_ID,
    R_PAGINATION,
    R_N
};
enum { D_ID, D_KEY, D_KEYS, D_ERROR, D_ENTITY_TYPE, D_N };
enum { P_HAS_MORE, P_PAGE, P_TOTAL, P_N };
enum { CTX_NONE, CTX_ROOT, CTX_DATA, CTX_PAG, CTX_KEYS };

struct ds_name {
    const char *name;
    size_t len;
};

#define DS_NAME(s)                                                             \
    {                                                                          \
        s, sizeof(s) - 1                                                       \
    }

static const struct ds_name ds_root_names[R_N] = {
    DS_NAME("data"),         DS_NAME("entity_id"), DS_NAME("entity_type"),
    DS_NAME("message_type"), DS_NAME("stream_id"), DS_NAME("pagination")};
static const struct ds_name ds_data_names[D_N] = {
    DS_NAME("id"), DS_NAME("key"), DS_NAME("keys"), DS_NAME("error"),
    DS_NAME("entity_type")};
static const struct ds_name ds_pag_names[P_N] = {
    DS_NAME("has_more"), DS_NAME("page"), DS_NAME("total")};

/* The members recorded in each context. */
static const struct {
    const struct ds_name *names;
    int n;
} ds_names[] = {[CTX_ROOT] = {ds_root_names, R_N},
                [CTX_DATA] = {ds_data_names, D_N},
                [CTX_PAG] = {ds_pag_names, P_N}};

#define DS_KV_INLINE 8

struct ds_scan {
    struct js_scan js;
    struct ds_tok root[R_N];
    struct ds_tok data[D_N];
    struct ds_tok pag[P_N];
    struct ds_kvtok *kv;
    size_t nkv;
    size_t kvcap;
    struct ds_kvtok kv_inline[DS_KV_INLINE];
};

/* Frame-owned memory: this header and, behind it, the arena that holds
 * the payload, the entity id and the keys. One allocation per message. */
struct ds_priv {
    size_t used;
    size_t cap;
    union {
        struct ferry_kv align_kv;
        long double align_ld;
    } arena[];
};

static const char ds_empty[] = "";

/* ---- detail text ----------------------------------------------------------
 */

/* Formats into detail, replacing control bytes so a hostile frame cannot
 * forge log lines, and dropping a UTF-8 sequence cut short by the size
 * limit. */
static void ds_detail(struct ds_frame *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void ds_detail(struct ds_frame *f, const char *fmt, ...)
{
    va_list ap;
    size_t n, i;

    va_start(ap, fmt);
    vsnprintf(f->detail, sizeof(f->detail), fmt, ap);
    va_end(ap);
    n = strlen(f->detail);
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)f->detail[i];

        if (c < 0x20 || c == 0x7f)
            f->detail[i] = '?';
    }
    n = utf8_check(f->detail, n);
    f->detail[n] = '\0';
}

static void ds_invalid(struct ds_frame *f, const char *reason)
{
    f->kind = DS_INVALID;
    f->reason = reason;
}

/* ---- reading the frame ----------------------------------------------------
 */

/* Decodes a scanned string into out (room for tok->len + 1 bytes) and
 * returns the decoded length. */
static size_t ds_decode(const struct ds_tok *tok, char *out)
{
    if (!tok->esc) {
        memcpy(out, tok->s, tok->len);
        out[tok->len] = '\0';
        return tok->len;
    }
    return js_decode(tok->s, tok->len, out);
}

/* Returns the index of the member name k in names, or -1. */
static int ds_match(const struct ds_tok *k, const struct ds_name *names, int n)
{
    /* An escape takes at most 6 raw bytes per decoded byte; no name of
     * ours is longer than 15 bytes. */
    char tmp[16 * 6 + 1];
    const char *name = k->s;
    size_t len = k->len;
    int i;

    if (k->esc) {
        if (len >= sizeof(tmp))
            return -1;
        len = js_decode(k->s, k->len, tmp);
        name = tmp;
    }
    for (i = 0; i < n; i++) {
        if (names[i].len == len && !memcmp(names[i].name, name, len))
            return i;
    }
    return -1;
}

static void ds_kv_push(struct ds_scan *sc, const struct ds_tok *k,
                       const struct ds_tok *v)
{
    if (sc->nkv == sc->kvcap) {
        size_t cap = sc->kvcap * 2;
        struct ds_kvtok *kv;

        if (sc->kv == sc->kv_inline) {
            kv = malloc(cap * sizeof(*kv));
            if (kv)
                memcpy(kv, sc->kv, sc->nkv * sizeof(*kv));
        } else {
            kv = realloc(sc->kv, cap * sizeof(*kv));
        }
        if (!kv)
            abort();
        sc->kv = kv;
        sc->kvcap = cap;
    }
    sc->kv[sc->nkv].k = *k;
    sc->kv[sc->nkv].v = *v;
    sc->nkv++;
}

static int ds_value(struct ds_scan *sc, int ctx, int type,
                    const struct js_tok *t, struct ds_tok *tok);

/* The members of an object whose '{' was just read, recorded as ctx
 * asks. */
static int ds_members(struct ds_scan *sc, int ctx)
{
    for (;;) {
        struct js_tok t;
        struct ds_tok k, v, *slot = NULL;
        int idx = -1, child = CTX_NONE;
        int type = js_next(&sc->js, &t);

        if (type == JS_OBJ_END)
            return 0;
        if (type == JS_ERROR)
            return -1;
        k.type = '"';
        k.s = t.key.s;
        k.len = t.key.len;
        k.esc = (char)t.key.esc;
        k.ws = 0;
        if (ctx == CTX_ROOT || ctx == CTX_DATA || ctx == CTX_PAG) {
            idx = ds_match(&k, ds_names[ctx].names, ds_names[ctx].n);
            if (idx >= 0)
                slot = (ctx == CTX_ROOT   ? sc->root
                        : ctx == CTX_DATA ? sc->data
                                          : sc->pag) +
                       idx;
        }
        if (ctx == CTX_ROOT && idx == R_DATA) {
            /* A later "data" replaces an earlier one entirely. */
            memset(sc->data, 0, sizeof(sc->data));
            sc->nkv = 0;
            child = CTX_DATA;
        } else if (ctx == CTX_ROOT && idx == R_PAGINATION) {
            memset(sc->pag, 0, sizeof(sc->pag));
            child = CTX_PAG;
        } else if (ctx == CTX_DATA && idx == D_KEYS) {
            sc->nkv = 0;
            child = CTX_KEYS;
        }
        if (ds_value(sc, child, type, &t, &v) < 0)
            return -1;
        if (slot)
            *slot = v;
        if (ctx == CTX_KEYS)
            ds_kv_push(sc, &k, &v);
    }
}

/* Reads the value that starts with token t. An object is recorded member
 * by member as ctx asks (CTX_NONE: not at all); a container's token is
 * its raw span. */
static int ds_value(struct ds_scan *sc, int ctx, int type,
                    const struct js_tok *t, struct ds_tok *tok)
{
    static const char types[] = {
        [JS_OBJ_BEGIN] = '{', [JS_ARR_BEGIN] = '[', [JS_STR] = '"',
        [JS_INT] = '0',       [JS_REAL] = '0',      [JS_TRUE] = 't',
        [JS_FALSE] = 'f',     [JS_NULL] = 'n'};
    unsigned long nws = sc->js.nws;
    int r;

    /* JS_ERROR; JS_END and end brackets do not start a value. */
    if (type < 0 || !types[type])
        return -1;
    tok->type = types[type];
    tok->s = t->text.s;
    tok->len = t->text.len;
    tok->esc = (char)t->text.esc;
    tok->ws = 0;
    if (type != JS_OBJ_BEGIN && type != JS_ARR_BEGIN)
        return 0;
    if (type == JS_OBJ_BEGIN && ctx != CTX_NONE)
        r = ds_members(sc, ctx);
    else
        r = js_skip(&sc->js);
    if (r < 0)
        return -1;
    tok->len = (size_t)(sc->js.p - t->text.s);
    tok->ws = sc->js.nws != nws;
    return 0;
}

/* ---- arena ----------------------------------------------------------------
 */

static void *ds_alloc(struct ds_priv *p, size_t n, size_t align)
{
    char *base = (char *)p->arena;
    size_t at = (p->used + align - 1) & ~(align - 1);

    if (at + n > p->cap)
        abort(); /* sizes are computed in advance: a bug */
    p->used = at + n;
    return base + at;
}

/* ---- positions ------------------------------------------------------------
 */

int ds_pos_parse(const char *s, struct ferry_pos *pos)
{
    uint64_t part[2] = {0, 0};
    int k;

    if (!s)
        return -1;
    for (k = 0; k < 2; k++) {
        const char *start = s;

        while (*s >= '0' && *s <= '9') {
            unsigned d = (unsigned)(*s - '0');

            if (part[k] > (UINT64_MAX - d) / 10)
                return -1;
            part[k] = part[k] * 10 + d;
            s++;
        }
        if (s == start)
            return -1;
        if (k == 0) {
            if (*s != '-')
                return -1;
            s++;
        }
    }
    if (*s != '\0')
        return -1;
    pos->ms = part[0];
    pos->seq = part[1];
    pos->set = 1;
    return 0;
}

char *ds_pos_format(const struct ferry_pos *pos, char *buf, size_t len)
{
    return ferry_pos_format(pos, buf, len);
}

/* ---- the mapping ----------------------------------------------------------
 */

static int ds_is_str(const struct ds_tok *t)
{
    return t->type == '"';
}

static int ds_is_absent(const struct ds_tok *t)
{
    return t->type == 0 || t->type == 'n';
}

/* Decodes a short string for messages (truncated to cap - 1 bytes). */
static void ds_small(const struct ds_tok *t, char *out, size_t cap)
{
    char *tmp;

    if (t->len < cap) {
        ds_decode(t, out);
        return;
    }
    tmp = malloc(t->len + 1);
    if (!tmp)
        abort();
    ds_decode(t, tmp);
    snprintf(out, cap, "%s", tmp);
    free(tmp);
}

/* Compares a scanned string with a literal. */
static int ds_str_eq(const struct ds_tok *t, const char *lit)
{
    char buf[32];
    size_t n = strlen(lit);

    if (!ds_is_str(t))
        return 0;
    if (!t->esc)
        return t->len == n && !memcmp(t->s, lit, n);
    if (t->len >= sizeof(buf))
        return 0;
    return ds_decode(t, buf) == n && !memcmp(buf, lit, n);
}

static void ds_error_detail(struct ds_frame *f, struct ds_scan *sc)
{
    const struct ds_tok *data = &sc->root[R_DATA];
    char text[sizeof(f->detail)], etype[64], *keys = NULL;
    const struct ds_tok *kt = &sc->data[D_KEYS];

    if (data->type != '{' || !ds_is_str(&sc->data[D_ERROR])) {
        char *dump;

        if (data->type == 0) {
            ds_detail(f, "(no error text)");
            return;
        }
        dump = malloc(data->len + 1);
        if (!dump)
            abort();
        js_minify(data->s, data->len, dump);
        ds_detail(f, "%s", dump);
        free(dump);
        return;
    }
    ds_small(&sc->data[D_ERROR], text, sizeof(text));
    etype[0] = '\0';
    if (ds_is_str(&sc->data[D_ENTITY_TYPE]))
        ds_small(&sc->data[D_ENTITY_TYPE], etype, sizeof(etype));
    if (kt->type == '{') {
        keys = malloc(kt->len + 1);
        if (!keys)
            abort();
        js_minify(kt->s, kt->len, keys);
    }
    ds_detail(f, "%s%s%s%s%s", text, keys ? " keys=" : "", keys ? keys : "",
              etype[0] ? " entity_type=" : "", etype);
    free(keys);
}

/* Checks data.keys: an object of strings (a null member counts as "", as
 * Go decodes it). Returns 0 or -1 with detail set. */
static int ds_check_keys(struct ds_frame *f, struct ds_scan *sc)
{
    const struct ds_tok *kt = &sc->data[D_KEYS];
    size_t i;

    if (ds_is_absent(kt)) {
        sc->nkv = 0;
        return 0;
    }
    if (kt->type != '{') {
        ds_detail(f, "data.keys is not an object");
        return -1;
    }
    for (i = 0; i < sc->nkv; i++) {
        const struct ds_kvtok *kv = &sc->kv[i];

        if (!ds_is_str(&kv->v) && kv->v.type != 'n') {
            char name[65];

            ds_small(&kv->k, name, sizeof(name));
            ds_detail(f, "data.keys.%s is not a string", name);
            return -1;
        }
    }
    return 0;
}

static int ds_kv_cmp(const void *a, const void *b)
{
    const struct ferry_kv *x = *(const struct ferry_kv *const *)a;
    const struct ferry_kv *y = *(const struct ferry_kv *const *)b;
    int c = strcmp(x->key, y->key);

    if (c)
        return c;
    return x < y ? -1 : x > y;
}

/* Removes duplicate key names the way a JSON object keeps them: the first
 * position, the last value. Sorting keeps a frame with 100k keys from
 * costing 10^10 comparisons. Returns the new count. */
static size_t ds_kv_dedupe(struct ferry_kv *kv, size_t n)
{
    const struct ferry_kv **order;
    char *drop;
    size_t i, j, out;

    if (n < 2)
        return n;
    order = malloc(n * sizeof(*order));
    drop = calloc(n, 1);
    if (!order || !drop)
        abort();
    for (i = 0; i < n; i++)
        order[i] = &kv[i];
    qsort(order, n, sizeof(*order), ds_kv_cmp);
    for (i = 0; i < n; i = j) {
        for (j = i + 1; j < n && !strcmp(order[i]->key, order[j]->key); j++)
            drop[order[j] - kv] = 1;
        if (j - i > 1)
            kv[order[i] - kv].value = order[j - 1]->value;
    }
    for (i = out = 0; i < n; i++) {
        if (!drop[i])
            kv[out++] = kv[i];
    }
    free(order);
    free(drop);
    return out;
}

/* Allocates the frame's arena and fills payload, entity_id and keys. id is
 * the token of the entity id (NULL for none); lower asks for lower-casing
 * (flag keys). */
static void ds_fill(struct ds_frame *f, struct ds_scan *sc,
                    const struct ds_tok *id, int lower)
{
    struct ferry_msg *msg = &f->msg;
    const struct ds_tok *data = &sc->root[R_DATA];
    struct ds_priv *p;
    struct ferry_kv *kv = NULL;
    size_t need, i;

    need = data->len + 1 + sc->nkv * sizeof(struct ferry_kv) + 16;
    if (id)
        need += UTF8_LOWER_MAX(id->len) + id->len + 1;
    for (i = 0; i < sc->nkv; i++)
        need += sc->kv[i].k.len + 1 + sc->kv[i].v.len + 1;
    p = malloc(sizeof(*p) + need);
    if (!p)
        abort();
    p->used = 0;
    p->cap = need;
    f->priv_ = p;

    if (sc->nkv) {
        kv = ds_alloc(p, sc->nkv * sizeof(*kv), _Alignof(struct ferry_kv));
        for (i = 0; i < sc->nkv; i++) {
            const struct ds_kvtok *t = &sc->kv[i];
            char *k = ds_alloc(p, t->k.len + 1, 1);
            char *v = ds_alloc(p, t->v.len + 1, 1);

            ds_decode(&t->k, k);
            if (t->v.type == '"')
                ds_decode(&t->v, v);
            else
                v[0] = '\0';
            kv[i].key = k;
            kv[i].value = v;
        }
        msg->keys = kv;
        msg->nkeys = (uint32_t)ds_kv_dedupe(kv, sc->nkv);
    }
    if (id) {
        char *raw = ds_alloc(p, id->len + 1, 1);
        size_t n = ds_decode(id, raw);

        if (lower) {
            char *low = ds_alloc(p, UTF8_LOWER_MAX(n), 1);

            utf8_lower(raw, n, low);
            msg->entity_id = low;
        } else {
            msg->entity_id = raw;
        }
    }
    {
        char *out = ds_alloc(p, data->len + 1, 1);

        /* The server sends compact JSON: then this is one memcpy. */
        if (data->ws) {
            msg->payload_len = js_minify(data->s, data->len, out);
        } else {
            memcpy(out, data->s, data->len);
            out[data->len] = '\0';
            msg->payload_len = data->len;
        }
        msg->payload = out;
    }
    f->kind = DS_MESSAGE;
}

/* rulesengine.Company / rulesengine.User. */
static void ds_entity(struct ds_frame *f, struct ds_scan *sc, int op)
{
    struct ferry_msg *msg = &f->msg;
    const struct ds_tok *eid = &sc->root[R_ENTITY_ID], *id = NULL;

    if (sc->root[R_DATA].type != '{') {
        ds_invalid(f, DS_REASON_TYPE);
        ds_detail(f, "data of a %s message is not an object", msg->entity_type);
        return;
    }
    msg->op = (uint32_t)op;
    /* entity_id is required for a partial (it names the stored entity to
     * merge into); a full or delete carries the whole entity, so its
     * data.id stands in when entity_id is null or empty. */
    if (ds_is_str(eid) && eid->len > 0) {
        id = eid;
    } else if (op != FERRY_OP_PARTIAL) {
        const struct ds_tok *did = &sc->data[D_ID];

        if (!ds_is_absent(did) && !ds_is_str(did)) {
            ds_invalid(f, DS_REASON_TYPE);
            ds_detail(f, "data.id is not a string");
            return;
        }
        if (ds_is_str(did) && did->len > 0)
            id = did;
    }
    if (!id) {
        ds_invalid(f, DS_REASON_MISSING_ID);
        ds_detail(f, "%s %s without entity_id", msg->entity_type,
                  op == FERRY_OP_FULL      ? "full"
                  : op == FERRY_OP_PARTIAL ? "partial"
                                           : "delete");
        return;
    }
    if (ds_check_keys(f, sc) < 0) {
        ds_invalid(f, DS_REASON_TYPE);
        return;
    }
    ds_fill(f, sc, id, 0);
}

/* rulesengine.Flag: one flag. */
static void ds_flag(struct ds_frame *f, struct ds_scan *sc, int op)
{
    const struct ds_tok *key = &sc->data[D_KEY], *id = &sc->data[D_ID];

    if (sc->root[R_DATA].type != '{') {
        ds_invalid(f, DS_REASON_TYPE);
        ds_detail(f, "data of a flag message is not an object");
        return;
    }
    if ((!ds_is_absent(key) && !ds_is_str(key)) ||
        (!ds_is_absent(id) && !ds_is_str(id))) {
        ds_invalid(f, DS_REASON_TYPE);
        ds_detail(f, "data.key or data.id of a flag is not a string");
        return;
    }
    /* full and partial both carry the whole flag: SET it (7.5). Only a
     * delete may name the flag by id. */
    f->msg.op = op == FERRY_OP_DELETE ? FERRY_OP_DELETE : FERRY_OP_FULL;
    if (!ds_is_str(key) || key->len == 0)
        key = op == FERRY_OP_DELETE && ds_is_str(id) && id->len ? id : NULL;
    if (!key) {
        ds_invalid(f, DS_REASON_MISSING_ID);
        ds_detail(f, "flag message without key");
        return;
    }
    sc->nkv = 0;
    ds_fill(f, sc, key, 1);
}

/* Checks the pagination object; fills f->page, f->total, *has_more. */
static int ds_pagination(struct ds_frame *f, struct ds_scan *sc, int *has_more)
{
    const struct ds_tok *pg = &sc->root[R_PAGINATION];
    const char *names[2] = {"page", "total"};
    long long *out[2] = {&f->page, &f->total};
    int i;

    *has_more = 0;
    if (ds_is_absent(pg))
        return 0;
    if (pg->type != '{') {
        ds_detail(f, "pagination is not an object");
        return -1;
    }
    if (!ds_is_absent(&sc->pag[P_HAS_MORE])) {
        char t = sc->pag[P_HAS_MORE].type;

        if (t != 't' && t != 'f') {
            ds_detail(f, "pagination.has_more is not a boolean");
            return -1;
        }
        *has_more = t == 't';
    }
    for (i = 0; i < 2; i++) {
        const struct ds_tok *t = &sc->pag[P_PAGE + i];
        size_t k;
        long long v = 0;

        if (ds_is_absent(t))
            continue;
        /* A non-negative integer literal (at most 18 digits). */
        if (t->type != '0' || t->len > 18 || t->s[0] == '-') {
            ds_detail(f, "pagination.%s is not a count", names[i]);
            return -1;
        }
        for (k = 0; k < t->len; k++) {
            if (t->s[k] < '0' || t->s[k] > '9') {
                ds_detail(f, "pagination.%s is not a count", names[i]);
                return -1;
            }
            v = v * 10 + (t->s[k] - '0');
        }
        *out[i] = v;
    }
    f->paginated = 1;
    return 0;
}

static int ds_op_of(const struct ds_tok *mt)
{
    if (ds_str_eq(mt, "full"))
        return FERRY_OP_FULL;
    if (ds_str_eq(mt, "partial"))
        return FERRY_OP_PARTIAL;
    if (ds_str_eq(mt, "delete"))
        return FERRY_OP_DELETE;
    return 0;
}

static void ds_map(struct ds_frame *f, struct ds_scan *sc)
{
    struct ferry_msg *msg = &f->msg;
    const struct ds_tok *et = &sc->root[R_ENTITY_TYPE];
    const struct ds_tok *mt = &sc->root[R_MESSAGE_TYPE];
    const struct ds_tok *eid = &sc->root[R_ENTITY_ID];
    const struct ds_tok *sid = &sc->root[R_STREAM_ID];
    char ets[65], mts[65];
    int has_more = 0, op;

    if (!ds_is_absent(et) && !ds_is_str(et)) {
        ds_invalid(f, DS_REASON_TYPE);
        ds_detail(f, "entity_type is not a string");
        return;
    }
    if (!ds_is_absent(mt) && !ds_is_str(mt)) {
        ds_invalid(f, DS_REASON_TYPE);
        ds_detail(f, "message_type is not a string");
        return;
    }
    if (!ds_is_absent(eid) && !ds_is_str(eid)) {
        ds_invalid(f, DS_REASON_TYPE);
        ds_detail(f, "entity_id is not a string or null");
        return;
    }
    if (!ds_is_absent(sid)) {
        char s[sizeof(f->stream_id)];

        if (!ds_is_str(sid)) {
            ds_invalid(f, DS_REASON_TYPE);
            ds_detail(f, "stream_id is not a string");
            return;
        }
        if (sid->len > 0) {
            /* Escapes are not part of a valid stream id: no decoding. */
            if (sid->len >= sizeof(s) || sid->esc) {
                ds_invalid(f, DS_REASON_BAD_STREAM_ID);
                ds_detail(f, "bad stream_id (%zu bytes)", sid->len);
                return;
            }
            memcpy(s, sid->s, sid->len);
            s[sid->len] = '\0';
            if (ds_pos_parse(s, &msg->pos) < 0) {
                ds_invalid(f, DS_REASON_BAD_STREAM_ID);
                ds_detail(f, "bad stream_id \"%s\"", s);
                return;
            }
            memcpy(f->stream_id, s, sid->len + 1);
        }
    }
    if (ds_pagination(f, sc, &has_more) < 0) {
        ds_invalid(f, DS_REASON_TYPE);
        return;
    }

    if (ds_str_eq(mt, "error")) {
        f->kind = DS_ERROR;
        ds_error_detail(f, sc);
        return;
    }
    if (ds_str_eq(mt, "reload")) {
        msg->op = FERRY_OP_RELOAD;
        msg->entity_type = "control";
        msg->order_key = "control";
        f->kind = DS_MESSAGE;
        return;
    }
    ets[0] = mts[0] = '\0';
    if (ds_is_str(et))
        ds_small(et, ets, sizeof(ets));
    if (ds_is_str(mt))
        ds_small(mt, mts, sizeof(mts));
    if (ds_str_eq(et, "rulesengine.Companies") ||
        ds_str_eq(et, "rulesengine.Users")) {
        f->kind = DS_SUBSCRIBED;
        ds_detail(f, "%s %s", ets, mts);
        return;
    }
    if (!ds_str_eq(et, "rulesengine.Company") &&
        !ds_str_eq(et, "rulesengine.User") &&
        !ds_str_eq(et, "rulesengine.Flag") &&
        !ds_str_eq(et, "rulesengine.Flags")) {
        f->kind = DS_IGNORED;
        ds_detail(f, "unknown entity_type \"%s\"", ets);
        return;
    }
    op = ds_op_of(mt);
    if (!op) {
        ds_invalid(f, DS_REASON_UNKNOWN_OP);
        ds_detail(f, "unknown message_type \"%s\"", mts);
        return;
    }
    if (ds_str_eq(et, "rulesengine.Flags")) {
        if (op != FERRY_OP_FULL) {
            f->kind = DS_IGNORED;
            ds_detail(f, "%s %s", ets, mts);
            return;
        }
        if (sc->root[R_DATA].type != '[') {
            ds_invalid(f, DS_REASON_TYPE);
            ds_detail(f, "data of a flags snapshot is not an array");
            return;
        }
        msg->entity_type = "flags";
        msg->order_key = "flags";
        msg->op = FERRY_OP_SNAPSHOT;
        if (has_more)
            msg->flags |= FERRY_MSG_F_MORE;
        sc->nkv = 0;
        ds_fill(f, sc, NULL, 0);
    } else if (ds_str_eq(et, "rulesengine.Flag")) {
        msg->entity_type = "flags";
        msg->order_key = "flags";
        ds_flag(f, sc, op);
    } else {
        msg->entity_type =
            ds_str_eq(et, "rulesengine.Company") ? "company" : "user";
        ds_entity(f, sc, op);
    }
}

/* An empty message (every pointer to ""). */
static void ds_msg_init(struct ferry_msg *msg)
{
    memset(msg, 0, sizeof(*msg));
    msg->struct_size = sizeof(*msg);
    msg->entity_type = ds_empty;
    msg->entity_id = ds_empty;
    msg->order_key = ds_empty;
    msg->payload = ds_empty;
}

void ds_frame_parse(struct ds_frame *f, const char *buf, size_t len)
{
    struct ferry_msg *msg = &f->msg;
    struct ds_scan sc;
    struct ds_tok root;
    struct js_tok t;
    int type;

    memset(f, 0, sizeof(*f));
    ds_msg_init(msg);
    f->reason = ds_empty;

    memset(&sc, 0, offsetof(struct ds_scan, kv_inline));
    js_init(&sc.js, buf, len, DS_MAX_DEPTH);
    sc.kv = sc.kv_inline;
    sc.kvcap = DS_KV_INLINE;
    type = js_next(&sc.js, &t);
    if (ds_value(&sc, CTX_ROOT, type, &t, &root) == 0)
        js_finish(&sc.js, "end of frame expected");
    if (sc.js.err) {
        if (sc.js.utf8) {
            ds_invalid(f, DS_REASON_UTF8);
            ds_detail(f, "invalid UTF-8 at byte %zu", sc.js.err_at);
        } else if (sc.js.too_deep) {
            ds_invalid(f, DS_REASON_DEPTH);
            ds_detail(f, "nesting deeper than %d at byte %zu", DS_MAX_DEPTH,
                      sc.js.err_at);
        } else {
            ds_invalid(f, DS_REASON_JSON);
            ds_detail(f, "byte %zu: %s", sc.js.err_at, sc.js.err);
        }
        goto done;
    }
    if (root.type != '{') {
        ds_invalid(f, DS_REASON_JSON);
        ds_detail(f, "frame is not a JSON object");
        goto done;
    }
    ds_map(f, &sc);
    if (f->kind != DS_MESSAGE) {
        /* Never leave a half-filled message behind another verdict. */
        struct ferry_pos pos = msg->pos;

        ds_msg_init(msg);
        msg->pos = pos;
        free(f->priv_);
        f->priv_ = NULL;
    }
done:
    if (sc.kv != sc.kv_inline)
        free(sc.kv);
}

void ds_frame_release(struct ds_frame *f)
{
    free(f->priv_);
    f->priv_ = NULL;
}
