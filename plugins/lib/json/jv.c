/*
 * plugins/lib/json/jv.c: parse JSON into a read-only arena document (jv.h).
 *
 * The grammar is the shared scanner's (jsonscan.h), the one datastream.c
 * uses too, so a jv document exists exactly when a jansson tree would (the
 * unit tests compare the two). This file only builds the tree from its
 * tokens, without recursion: children of an open array or object are
 * collected on a scratch stack (items as members without a name) and
 * copied into the arena when it closes, so every container is one
 * contiguous block.
 */
#include "json/jv.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/jsonscan.h"

/* Deeper documents are refused (ferry's payloads nest at most 64 levels;
 * jansson would take 2048). */
#define JV_MAX_DEPTH JS_DEPTH_LIMIT

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

/* An open object or array: where its children start on the scratch
 * stack, and the member or item that holds it (-1: the root). */
struct jv_level {
    size_t base;
    long slot;
    int obj;
};

struct jv_parser {
    struct js_scan sc;
    struct jv_doc *doc;
    /* the scratch stack */
    struct jv_member *kids;
    size_t nkids;
    size_t capkids;
    struct jv_level levels[JV_MAX_DEPTH];
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

/* Decodes a scanned string into the arena. */
static int jv_string(struct jv_parser *ps, const struct js_str *t,
                     const char **out, uint32_t *len)
{
    char *dst;

    if (t->len >= UINT32_MAX)
        return js_fail(&ps->sc, t->s - 1, "string too long");
    dst = jv_alloc(ps->doc, t->len + 1);
    if (t->esc) {
        *len = (uint32_t)js_decode(t->s, t->len, dst);
    } else {
        memcpy(dst, t->s, t->len);
        dst[t->len] = '\0';
        *len = (uint32_t)t->len;
    }
    *out = dst;
    return 0;
}

static struct jv_member *jv_push(struct jv_parser *ps)
{
    struct jv_member *m;

    if (ps->nkids == ps->capkids) {
        ps->capkids = ps->capkids ? ps->capkids * 2 : 64;
        ps->kids = jv_xrealloc(ps->kids, ps->capkids * sizeof(*ps->kids));
    }
    m = &ps->kids[ps->nkids++];
    memset(m, 0, sizeof(*m));
    return m;
}

/* Closes the innermost container: its children move from the scratch
 * stack into one arena block. */
static void jv_close(struct jv_parser *ps, const struct jv_level *l,
                     struct jv *v)
{
    size_t n = ps->nkids - l->base, i;
    const struct jv_member *kids = ps->kids + l->base;

    v->type = l->obj ? JV_OBJ : JV_ARR;
    v->n = (uint32_t)n;
    if (n && l->obj) {
        struct jv_member *dst = jv_alloc(ps->doc, n * sizeof(*dst));

        memcpy(dst, kids, n * sizeof(*dst));
        v->u.members = dst;
    } else if (n) {
        struct jv *dst = jv_alloc(ps->doc, n * sizeof(*dst));

        for (i = 0; i < n; i++)
            dst[i] = kids[i].val;
        v->u.items = dst;
    }
    ps->nkids = l->base;
}

/* Reads the root value into *root. Returns 0 or -1 (error in ps->sc). */
static int jv_build(struct jv_parser *ps, struct jv *root)
{
    int top = 0; /* open containers */

    for (;;) {
        struct js_tok t;
        struct jv v;
        struct jv_member *m = NULL;
        struct jv_level *l;
        int type = js_next(&ps->sc, &t);

        memset(&v, 0, sizeof(v));
        if (type == JS_OBJ_END || type == JS_ARR_END) {
            l = &ps->levels[--top];
            jv_close(ps, l, &v);
            if (l->slot < 0) {
                *root = v;
                return 0;
            }
            ps->kids[l->slot].val = v;
            continue;
        }
        if (type == JS_ERROR)
            return -1;
        /* A value: the root, a member (with its name) or an item. */
        if (top > 0) {
            m = jv_push(ps);
            if (t.key.s && jv_string(ps, &t.key, &m->key, &m->klen) < 0)
                return -1;
        }
        switch (type) {
        case JS_OBJ_BEGIN:
        case JS_ARR_BEGIN:
            /* The scanner keeps the depth within JV_MAX_DEPTH. */
            l = &ps->levels[top++];
            l->obj = type == JS_OBJ_BEGIN;
            l->slot = m ? (long)(m - ps->kids) : -1;
            l->base = ps->nkids;
            continue;
        case JS_STR:
            v.type = JV_STR;
            if (jv_string(ps, &t.text, &v.u.s, &v.n) < 0)
                return -1;
            break;
        case JS_INT:
            v.type = JV_INT;
            v.u.i = t.i;
            break;
        case JS_REAL:
            v.type = JV_REAL;
            v.u.d = js_real(t.text.s, t.text.len);
            break;
        case JS_TRUE:
            v.type = JV_TRUE;
            break;
        case JS_FALSE:
            v.type = JV_FALSE;
            break;
        case JS_NULL:
            v.type = JV_NULL;
            break;
        default:
            return -1; /* JS_END comes after the root value only */
        }
        if (!m) {
            *root = v;
            return 0;
        }
        m->val = v;
    }
}

struct jv_doc *jv_parse(const char *buf, size_t len, const struct jv **root,
                        char *err, size_t errlen)
{
    struct jv_parser ps;
    struct jv_doc *doc;

    if (err && errlen)
        err[0] = '\0';
    doc = jv_xrealloc(NULL, sizeof(*doc));
    doc->blocks = NULL;
    memset(&ps, 0, offsetof(struct jv_parser, levels));
    ps.doc = doc;
    js_init(&ps.sc, buf, len, JV_MAX_DEPTH);
    if (jv_build(&ps, &doc->root) == 0)
        js_finish(&ps.sc, "end of input expected");
    free(ps.kids);
    if (ps.sc.err) {
        if (err && errlen)
            snprintf(err, errlen, "byte %zu: %s", ps.sc.err_at, ps.sc.err);
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
