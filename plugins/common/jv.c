/*
 * plugins/common/jv.c: parse JSON into a read-only arena document (jv.h).
 *
 * Children of an open array or object are collected on a scratch stack and
 * copied into the arena when it closes, so every container is one
 * contiguous block. The grammar and limits follow jansson's json_loadb
 * with no flags, so that a jv document exists exactly when a jansson tree
 * would (the unit tests compare the two).
 */
#include "jv.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

/* Deeper documents are refused (ferry's payloads nest at most 64 levels;
 * the limit bounds the recursion). */
#define JV_MAX_DEPTH 256

struct jv_block {
    struct jv_block *next;
    size_t used;
    size_t cap;
    max_align_t data[];
};

struct jv_doc {
    struct jv_block *blocks;
    struct jv root;
};

struct jv_parser {
    const char *p;
    const char *end;
    const char *buf;
    struct jv_doc *doc;
    int depth;
    char *err;
    size_t errlen;
    int failed;
    /* scratch stacks */
    struct jv *items;
    size_t nitems;
    size_t capitems;
    struct jv_member *members;
    size_t nmembers;
    size_t capmembers;
};

static void *jv_xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p)
        abort();
    return p;
}

static void *jv_alloc(struct jv_doc *doc, size_t n)
{
    struct jv_block *b = doc->blocks;
    size_t a = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);

    if (!b || b->used + a > b->cap) {
        size_t cap = a > 16384 ? a : 16384;

        b = jv_xrealloc(NULL, sizeof(*b) + cap);
        b->next = doc->blocks;
        b->used = 0;
        b->cap = cap;
        doc->blocks = b;
    }
    b->used += a;
    return (char *)b->data + b->used - a;
}

static int jv_fail(struct jv_parser *ps, const char *at, const char *what)
{
    if (!ps->failed) {
        ps->failed = 1;
        if (ps->err && ps->errlen)
            snprintf(ps->err, ps->errlen, "byte %zu: %s",
                     (size_t)(at - ps->buf), what);
    }
    return -1;
}

static void jv_ws(struct jv_parser *ps)
{
    const char *p = ps->p;

    while (p < ps->end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    ps->p = p;
}

static int jv_hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    int i;

    for (i = 0; i < 4; i++) {
        char c = p[i];

        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

#define JV_ONES 0x0101010101010101ull
#define JV_HIGHS 0x8080808080808080ull

/* The first byte in [p, end) that is '"', '\\' or a control character,
 * or end. Eight bytes at a time while none is. */
static const char *jv_span(const char *p, const char *end)
{
    while (end - p >= 8) {
        uint64_t w, q, b;

        memcpy(&w, p, 8);
        q = w ^ (JV_ONES * '"');
        b = w ^ (JV_ONES * '\\');
        if ((((q - JV_ONES) & ~q) | ((b - JV_ONES) & ~b) |
             ((w - JV_ONES * 0x20) & ~w)) &
            JV_HIGHS)
            break;
        p += 8;
    }
    while (p < end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
        p++;
    return p;
}

/* ps->p at the opening quote. Decodes into the arena. */
static int jv_string(struct jv_parser *ps, const char **out, uint32_t *len)
{
    const char *p = ps->p + 1, *end = ps->end, *q;
    char *dst;
    size_t o = 0;

    /* Common case: no escape, no control character. */
    q = jv_span(p, end);
    if (q < end && *q == '"' && (size_t)(q - p) < UINT32_MAX) {
        dst = jv_alloc(ps->doc, (size_t)(q - p) + 1);
        memcpy(dst, p, (size_t)(q - p));
        dst[q - p] = '\0';
        *out = dst;
        *len = (uint32_t)(q - p);
        ps->p = q + 1;
        return 0;
    }
    /* The decoded form is never longer than the raw one. */
    for (q = p; q < end && *q != '"'; q++) {
        if (*q == '\\')
            q++;
    }
    if (q >= end)
        return jv_fail(ps, ps->p, "unterminated string");
    if ((size_t)(q - p) >= UINT32_MAX)
        return jv_fail(ps, ps->p, "string too long");
    dst = jv_alloc(ps->doc, (size_t)(q - p) + 1);
    while (p < q) {
        unsigned char c = (unsigned char)*p;
        unsigned cp, lo;

        if (c >= 0x20 && c != '\\') {
            dst[o++] = (char)c;
            p++;
            continue;
        }
        if (c < 0x20)
            return jv_fail(ps, p, "control character in a string");
        switch (p[1]) {
        case '"':
        case '\\':
        case '/':
            dst[o++] = p[1];
            p += 2;
            continue;
        case 'b':
            dst[o++] = '\b';
            p += 2;
            continue;
        case 'f':
            dst[o++] = '\f';
            p += 2;
            continue;
        case 'n':
            dst[o++] = '\n';
            p += 2;
            continue;
        case 'r':
            dst[o++] = '\r';
            p += 2;
            continue;
        case 't':
            dst[o++] = '\t';
            p += 2;
            continue;
        case 'u':
            break;
        default:
            return jv_fail(ps, p, "invalid escape");
        }
        if (q - p < 6 || jv_hex4(p + 2, &cp) < 0)
            return jv_fail(ps, p, "invalid \\u escape");
        if (cp == 0)
            return jv_fail(ps, p, "\\u0000 is not allowed");
        if (cp >= 0xDC00 && cp <= 0xDFFF)
            return jv_fail(ps, p, "unpaired surrogate");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (q - p < 12 || p[6] != '\\' || p[7] != 'u' ||
                jv_hex4(p + 8, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
                return jv_fail(ps, p, "unpaired surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            p += 6;
        }
        p += 6;
        o += utf8_encode(cp, dst + o);
    }
    dst[o] = '\0';
    *out = dst;
    *len = (uint32_t)o;
    ps->p = q + 1;
    return 0;
}

static int jv_number(struct jv_parser *ps, struct jv *v)
{
    const char *p = ps->p, *end = ps->end, *start = ps->p, *digits;
    int neg = 0, real = 0;
    size_t ndig;

    if (*p == '-') {
        neg = 1;
        p++;
    }
    digits = p;
    if (p < end && *p == '0') {
        p++;
    } else if (p < end && *p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    } else {
        return jv_fail(ps, start, "invalid number");
    }
    ndig = (size_t)(p - digits);
    if (p < end && *p == '.') {
        p++;
        real = 1;
        if (p == end || *p < '0' || *p > '9')
            return jv_fail(ps, start, "invalid number");
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        real = 1;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p == end || *p < '0' || *p > '9')
            return jv_fail(ps, start, "invalid number");
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (!real) {
        unsigned long long u = 0;
        size_t k;

        if (ndig > 19)
            return jv_fail(ps, start, "integer out of 64-bit range");
        for (k = 0; k < ndig; k++)
            u = u * 10 + (unsigned long long)(digits[k] - '0');
        if (ndig == 19 &&
            memcmp(digits, neg ? "9223372036854775808" : "9223372036854775807",
                   19) > 0)
            return jv_fail(ps, start, "integer out of 64-bit range");
        v->type = JV_INT;
        v->u.i = neg ? (long long)(0 - u) : (long long)u;
    } else {
        size_t n = (size_t)(p - start);
        char small[64], *copy = n < sizeof(small) ? small : malloc(n + 1);

        if (!copy)
            abort();
        memcpy(copy, start, n);
        copy[n] = '\0';
        v->type = JV_REAL;
        v->u.d = strtod(copy, NULL);
        if (copy != small)
            free(copy);
        if (isinf(v->u.d))
            return jv_fail(ps, start, "real number overflow");
    }
    ps->p = p;
    return 0;
}

static int jv_value(struct jv_parser *ps, struct jv *v);

static int jv_object(struct jv_parser *ps, struct jv *v)
{
    size_t base = ps->nmembers, n;
    struct jv_member *m;

    if (++ps->depth > JV_MAX_DEPTH)
        return jv_fail(ps, ps->p, "nesting too deep");
    ps->p++;
    jv_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
    } else {
        for (;;) {
            if (ps->p == ps->end || *ps->p != '"')
                return jv_fail(ps, ps->p, "string or '}' expected");
            if (ps->nmembers == ps->capmembers) {
                ps->capmembers = ps->capmembers ? ps->capmembers * 2 : 64;
                ps->members = jv_xrealloc(
                    ps->members, ps->capmembers * sizeof(*ps->members));
            }
            m = &ps->members[ps->nmembers];
            if (jv_string(ps, &m->key, &m->klen) < 0)
                return -1;
            jv_ws(ps);
            if (ps->p == ps->end || *ps->p != ':')
                return jv_fail(ps, ps->p, "':' expected");
            ps->p++;
            ps->nmembers++;
            {
                struct jv val;

                if (jv_value(ps, &val) < 0)
                    return -1;
                /* members may have moved while parsing val */
                ps->members[ps->nmembers - 1].val = val;
            }
            jv_ws(ps);
            if (ps->p < ps->end && *ps->p == ',') {
                ps->p++;
                jv_ws(ps);
                continue;
            }
            if (ps->p < ps->end && *ps->p == '}') {
                ps->p++;
                break;
            }
            return jv_fail(ps, ps->p, "',' or '}' expected");
        }
    }
    n = ps->nmembers - base;
    v->type = JV_OBJ;
    v->n = (uint32_t)n;
    if (n) {
        struct jv_member *dst = jv_alloc(ps->doc, n * sizeof(*dst));

        memcpy(dst, ps->members + base, n * sizeof(*dst));
        v->u.members = dst;
    } else {
        v->u.members = NULL;
    }
    ps->nmembers = base;
    ps->depth--;
    return 0;
}

static int jv_array(struct jv_parser *ps, struct jv *v)
{
    size_t base = ps->nitems, n;

    if (++ps->depth > JV_MAX_DEPTH)
        return jv_fail(ps, ps->p, "nesting too deep");
    ps->p++;
    jv_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
    } else {
        for (;;) {
            struct jv item;

            if (jv_value(ps, &item) < 0)
                return -1;
            if (ps->nitems == ps->capitems) {
                ps->capitems = ps->capitems ? ps->capitems * 2 : 64;
                ps->items =
                    jv_xrealloc(ps->items, ps->capitems * sizeof(*ps->items));
            }
            ps->items[ps->nitems++] = item;
            jv_ws(ps);
            if (ps->p < ps->end && *ps->p == ',') {
                ps->p++;
                continue;
            }
            if (ps->p < ps->end && *ps->p == ']') {
                ps->p++;
                break;
            }
            return jv_fail(ps, ps->p, "',' or ']' expected");
        }
    }
    n = ps->nitems - base;
    v->type = JV_ARR;
    v->n = (uint32_t)n;
    if (n) {
        struct jv *dst = jv_alloc(ps->doc, n * sizeof(*dst));

        memcpy(dst, ps->items + base, n * sizeof(*dst));
        v->u.items = dst;
    } else {
        v->u.items = NULL;
    }
    ps->nitems = base;
    ps->depth--;
    return 0;
}

static int jv_literal(struct jv_parser *ps, struct jv *v, const char *lit,
                      size_t n, int type)
{
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, lit, n))
        return jv_fail(ps, ps->p, "invalid token");
    ps->p += n;
    v->type = (unsigned char)type;
    return 0;
}

static int jv_value(struct jv_parser *ps, struct jv *v)
{
    memset(v, 0, sizeof(*v));
    jv_ws(ps);
    if (ps->p == ps->end)
        return jv_fail(ps, ps->p, "value expected");
    switch (*ps->p) {
    case '{':
        return jv_object(ps, v);
    case '[':
        return jv_array(ps, v);
    case '"':
        v->type = JV_STR;
        return jv_string(ps, &v->u.s, &v->n);
    case 't':
        return jv_literal(ps, v, "true", 4, JV_TRUE);
    case 'f':
        return jv_literal(ps, v, "false", 5, JV_FALSE);
    case 'n':
        return jv_literal(ps, v, "null", 4, JV_NULL);
    default:
        if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9'))
            return jv_number(ps, v);
        return jv_fail(ps, ps->p, "invalid token");
    }
}

struct jv_doc *jv_parse(const char *buf, size_t len, const struct jv **root,
                        char *err, size_t errlen)
{
    struct jv_parser ps;
    struct jv_doc *doc;
    size_t bad;

    memset(&ps, 0, sizeof(ps));
    ps.err = err;
    ps.errlen = errlen;
    if (err && errlen)
        err[0] = '\0';
    bad = utf8_check(buf, len);
    if (bad != len) {
        if (err && errlen)
            snprintf(err, errlen, "byte %zu: invalid UTF-8", bad);
        return NULL;
    }
    doc = jv_xrealloc(NULL, sizeof(*doc));
    doc->blocks = NULL;
    ps.doc = doc;
    ps.buf = ps.p = buf;
    ps.end = buf + len;
    if (jv_value(&ps, &doc->root) == 0) {
        jv_ws(&ps);
        if (ps.p != ps.end)
            jv_fail(&ps, ps.p, "end of input expected");
    }
    free(ps.items);
    free(ps.members);
    if (ps.failed) {
        jv_free(doc);
        return NULL;
    }
    *root = &doc->root;
    return doc;
}

void jv_free(struct jv_doc *doc)
{
    struct jv_block *b, *next;

    if (!doc)
        return;
    for (b = doc->blocks; b; b = next) {
        next = b->next;
        free(b);
    }
    free(doc);
}
