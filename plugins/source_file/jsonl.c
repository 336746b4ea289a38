/*
 * plugins/source_file/jsonl.c: one JSON object a line to one ferry message
 * (jsonl.h says what the message holds and what is refused).
 *
 * Why the scanner and not a jv tree: a tree decodes every string and
 * number of the line, while only three members matter and the payload is
 * the line itself, minus whitespace. The scanner validates the whole line
 * exactly as strictly (UTF-8, grammar, depth) without building anything.
 */
#include "jsonl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/jsonscan.h"

/* The last value seen for one of the three members. */
struct file_jsonl_val {
    int type; /* enum js_type; JS_END: absent */
    struct js_str text;
};

/* The longest raw op string that can be "set" or "delete": six letters,
 * each at most a six-byte \u escape. */
#define FILE_JSONL_OP_RAW_MAX 36

enum { FILE_JSONL_ID, FILE_JSONL_TYPE, FILE_JSONL_OP, FILE_JSONL_NFIELDS };

/* Returns a name for a JSON value type, for details. */
static const char *file_jsonl_type_name(int type)
{
    switch (type) {
    case JS_OBJ_BEGIN:
        return "an object";
    case JS_ARR_BEGIN:
        return "an array";
    case JS_STR:
        return "a string";
    case JS_INT:
        return "an integer";
    case JS_REAL:
        return "a real number";
    case JS_TRUE:
    case JS_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

static void file_jsonl_reject(struct file_jsonl *l, const char *reason,
                              const char *fmt, ...) FERRY_PRINTF(3, 4);

static void file_jsonl_reject(struct file_jsonl *l, const char *reason,
                              const char *fmt, ...)
{
    va_list ap;

    l->reason = reason;
    va_start(ap, fmt);
    vsnprintf(l->detail, sizeof(l->detail), fmt, ap);
    va_end(ap);
}

/* Makes l->buf hold at least n bytes. */
static void file_jsonl_reserve(struct file_jsonl *l, size_t n)
{
    char *grown;

    if (n <= l->cap)
        return;
    grown = realloc(l->buf, n);
    if (grown == NULL)
        abort();
    l->buf = grown;
    l->cap = n;
}

/* Nonzero when a scanned member name is `name`. Escaped names are decoded
 * into l->buf first (nothing else lives there while the line is
 * scanned). */
static int file_jsonl_key_is(struct file_jsonl *l, const struct js_str *key,
                             const char *name, size_t nlen)
{
    size_t n;

    if (!key->esc)
        return key->len == nlen && memcmp(key->s, name, nlen) == 0;
    /* An escape is at least two bytes for one: a shorter name cannot
     * match, a longer raw form still may. */
    if (key->len < nlen)
        return 0;
    file_jsonl_reserve(l, key->len + 1);
    n = js_decode(key->s, key->len, l->buf);
    return n == nlen && memcmp(l->buf, name, nlen) == 0;
}

/* Scans the members of the root object (its '{' read already) and keeps
 * the last value of each named member in v. Returns 0 with the scanner
 * just past the closing '}', or -1 (sc->err says why). */
static int file_jsonl_members(struct file_jsonl *l, struct js_scan *sc,
                              const struct file_jsonl_fields *f,
                              struct file_jsonl_val *v)
{
    const char *names[FILE_JSONL_NFIELDS] = {f->id, f->type, f->op};
    size_t lens[FILE_JSONL_NFIELDS];
    struct js_tok t;
    int type, i;

    for (i = 0; i < FILE_JSONL_NFIELDS; i++)
        lens[i] = strlen(names[i]);
    while ((type = js_next(sc, &t)) != JS_OBJ_END) {
        if (type == JS_ERROR)
            return -1;
        for (i = 0; i < FILE_JSONL_NFIELDS; i++) {
            if (!file_jsonl_key_is(l, &t.key, names[i], lens[i]))
                continue;
            v[i].type = type;
            v[i].text = t.text;
        }
        if ((type == JS_OBJ_BEGIN || type == JS_ARR_BEGIN) && js_skip(sc) < 0)
            return -1;
    }
    return 0;
}

/* Records why a scan failed. */
static void file_jsonl_scan_error(struct file_jsonl *l,
                                  const struct js_scan *sc)
{
    if (sc->utf8)
        file_jsonl_reject(l, FILE_JSONL_UTF8, "invalid UTF-8 at byte %zu",
                          sc->err_at);
    else if (sc->too_deep)
        file_jsonl_reject(l, FILE_JSONL_DEPTH,
                          "nesting deeper than %d at byte %zu",
                          FILE_JSONL_MAX_DEPTH, sc->err_at);
    else
        file_jsonl_reject(l, FILE_JSONL_JSON, "byte %zu: %s", sc->err_at,
                          sc->err);
}

/* Checks the id or type member: 0 when it can be used, else -1 with the
 * line rejected. Integers are accepted for the id only. */
static int file_jsonl_check_name(struct file_jsonl *l,
                                 const struct file_jsonl_val *v,
                                 const char *member, int is_id)
{
    if (v->type == JS_END) {
        file_jsonl_reject(
            l, is_id ? FILE_JSONL_MISSING_ID : FILE_JSONL_MISSING_TYPE,
            "no member \"%s\"", member);
        return -1;
    }
    if (v->type != JS_STR && !(is_id && v->type == JS_INT)) {
        file_jsonl_reject(l, FILE_JSONL_WRONG_TYPE,
                          "member \"%s\" is %s, not a string%s", member,
                          file_jsonl_type_name(v->type),
                          is_id ? " or an integer" : "");
        return -1;
    }
    if (v->text.len == 0) {
        file_jsonl_reject(l,
                          is_id ? FILE_JSONL_EMPTY_ID : FILE_JSONL_EMPTY_TYPE,
                          "member \"%s\" is empty", member);
        return -1;
    }
    return 0;
}

/* Maps the op member to an operation: 0 and *op set, or -1 with the line
 * rejected. The value itself is not logged: it is the line's data. */
static int file_jsonl_op(struct file_jsonl *l, const struct file_jsonl_val *v,
                         const char *member, uint32_t *op)
{
    char raw[FILE_JSONL_OP_RAW_MAX + 1];
    size_t n;

    if (v->type == JS_END) {
        *op = FERRY_OP_FULL;
        return 0;
    }
    if (v->type != JS_STR) {
        file_jsonl_reject(l, FILE_JSONL_WRONG_TYPE,
                          "member \"%s\" is %s, not a string", member,
                          file_jsonl_type_name(v->type));
        return -1;
    }
    if (v->text.len <= FILE_JSONL_OP_RAW_MAX) {
        n = js_decode(v->text.s, v->text.len, raw);
        if (n == 3 && memcmp(raw, "set", 3) == 0) {
            *op = FERRY_OP_FULL;
            return 0;
        }
        if (n == 6 && memcmp(raw, "delete", 6) == 0) {
            *op = FERRY_OP_DELETE;
            return 0;
        }
    }
    file_jsonl_reject(l, FILE_JSONL_UNKNOWN_OP,
                      "member \"%s\" is neither \"set\" nor \"delete\"",
                      member);
    return -1;
}

/* Writes a string member's decoded value (or an integer's text) at p and
 * returns the byte after its NUL. */
static char *file_jsonl_put(const struct file_jsonl_val *v, char *p)
{
    size_t n;

    if (v->type == JS_STR && v->text.esc) {
        n = js_decode(v->text.s, v->text.len, p);
    } else {
        memcpy(p, v->text.s, v->text.len);
        n = v->text.len;
    }
    p[n] = '\0';
    return p + n + 1;
}

/* Fills l->msg from a scanned object obj[0..olen) and its members;
 * compact tells that the object holds no whitespace. */
static void file_jsonl_fill(struct file_jsonl *l, const char *obj, size_t olen,
                            int compact, const struct file_jsonl_val *v,
                            uint32_t op)
{
    struct ferry_msg *msg = &l->msg;
    char *p;

    file_jsonl_reserve(l, v[FILE_JSONL_ID].text.len +
                              v[FILE_JSONL_TYPE].text.len + olen + 3);
    p = l->buf;
    msg->entity_id = p;
    p = file_jsonl_put(&v[FILE_JSONL_ID], p);
    msg->entity_type = p;
    p = file_jsonl_put(&v[FILE_JSONL_TYPE], p);
    if (compact) {
        memcpy(p, obj, olen);
        msg->payload_len = olen;
    } else {
        msg->payload_len = js_minify(obj, olen, p);
    }
    p[msg->payload_len] = '\0';
    msg->payload = p;
    msg->op = op;
}

void file_jsonl_init(struct file_jsonl *l)
{
    memset(l, 0, sizeof(*l));
}

void file_jsonl_parse(struct file_jsonl *l, const struct file_jsonl_fields *f,
                      const char *line, size_t len)
{
    struct file_jsonl_val v[FILE_JSONL_NFIELDS];
    struct ferry_msg *msg = &l->msg;
    struct js_scan sc;
    struct js_tok t;
    const char *obj;
    unsigned long nws;
    size_t olen = 0;
    uint32_t op;
    int type, i, compact = 0;

    memset(msg, 0, sizeof(*msg));
    msg->struct_size = sizeof(*msg);
    msg->entity_type = msg->entity_id = msg->order_key = msg->payload = "";
    l->reason = NULL;
    l->detail[0] = '\0';
    for (i = 0; i < FILE_JSONL_NFIELDS; i++)
        v[i].type = JS_END;

    js_init(&sc, line, len, FILE_JSONL_MAX_DEPTH);
    type = js_next(&sc, &t);
    obj = type == JS_ERROR ? line : t.text.s;
    nws = sc.nws;
    if (type == JS_OBJ_BEGIN) {
        if (file_jsonl_members(l, &sc, f, v) == 0) {
            /* Just past the '}': the payload's end. */
            olen = (size_t)(sc.p - obj);
            compact = sc.nws == nws;
            js_finish(&sc, "end of line expected");
        }
    } else if (type == JS_ARR_BEGIN) {
        if (js_skip(&sc) == 0)
            js_finish(&sc, "end of line expected");
    } else if (type != JS_ERROR) {
        js_finish(&sc, "end of line expected");
    }
    if (sc.err) {
        file_jsonl_scan_error(l, &sc);
        return;
    }
    if (type != JS_OBJ_BEGIN) {
        file_jsonl_reject(l, FILE_JSONL_NOT_OBJECT, "the line is %s",
                          file_jsonl_type_name(type));
        return;
    }
    if (file_jsonl_check_name(l, &v[FILE_JSONL_ID], f->id, 1) < 0 ||
        file_jsonl_check_name(l, &v[FILE_JSONL_TYPE], f->type, 0) < 0 ||
        file_jsonl_op(l, &v[FILE_JSONL_OP], f->op, &op) < 0)
        return;
    file_jsonl_fill(l, obj, olen, compact, v, op);
}

void file_jsonl_release(struct file_jsonl *l)
{
    free(l->buf);
    memset(l, 0, sizeof(*l));
}
