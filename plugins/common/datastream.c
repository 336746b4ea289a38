/*
 * plugins/common/datastream.c: one Schematic datastream frame to one ferry
 * message (schematic-datastream.md section 3).
 *
 * The frame is checked in this order, and the first failure decides the
 * reason: UTF-8 (the whole frame, strictly), nesting depth (a byte scan, so
 * a megabyte of '[' never reaches the JSON parser's recursion), JSON syntax
 * and a top-level object, envelope field types, the stream_id syntax, then
 * the message-type specific checks.
 *
 * Everything here is reentrant: no static mutable state.
 */
#include "datastream.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "schematic.h"
#include "utf8.h"

struct ds_priv {
    json_t *root;
    char *payload;         /* malloc'd compact JSON, or NULL */
    char *owned_id;        /* malloc'd entity id (lower-cased flag key) */
    struct ferry_kv *keys; /* malloc'd, nkeys entries */
};

static const char ds_empty[] = "";

/* Copies text into detail, replacing control bytes so a hostile frame
 * cannot forge log lines, and dropping a UTF-8 sequence cut short by the
 * size limit. */
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

/*
 * Returns 0 when no array or object nests deeper than DS_MAX_DEPTH, else
 * -1 with the offending offset in *at. Strings are skipped (escapes
 * included), so brackets inside them do not count. The input is already
 * known to be valid UTF-8 but not yet valid JSON: garbage only makes the
 * count meaningless, and the JSON parser rejects it next.
 */
static int ds_depth_check(const char *buf, size_t len, size_t *at)
{
    size_t i;
    int depth = 0;

    for (i = 0; i < len; i++) {
        char c = buf[i];

        if (c == '"') {
            for (i++; i < len; i++) {
                if (buf[i] == '\\')
                    i++;
                else if (buf[i] == '"')
                    break;
            }
        } else if (c == '[' || c == '{') {
            if (++depth > DS_MAX_DEPTH) {
                *at = i;
                return -1;
            }
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return 0;
}

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
    snprintf(buf, len, "%" PRIu64 "-%" PRIu64, pos->ms, pos->seq);
    return buf;
}

/* A string member or NULL when absent or null; -1 for another type. */
static int ds_opt_string(json_t *obj, const char *name, const char **out)
{
    json_t *v = json_object_get(obj, name);

    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return -1;
    *out = json_string_value(v);
    return 0;
}

/* Fills msg->keys from data.keys (object of strings; a null member counts
 * as "" as Go decodes it). Returns 0, or -1 on a wrong type. */
static int ds_keys(struct ds_frame *f, struct ds_priv *p, json_t *data)
{
    json_t *keys = json_object_get(data, "keys");
    const char *k;
    json_t *v;
    size_t n = 0;

    if (!keys || json_is_null(keys))
        return 0;
    if (!json_is_object(keys)) {
        ds_detail(f, "data.keys is not an object");
        return -1;
    }
    if (json_object_size(keys) == 0)
        return 0;
    p->keys = calloc(json_object_size(keys), sizeof(*p->keys));
    if (!p->keys)
        abort();
    json_object_foreach(keys, k, v) {
        if (json_is_null(v)) {
            p->keys[n].value = ds_empty;
        } else if (json_is_string(v)) {
            p->keys[n].value = json_string_value(v);
        } else {
            ds_detail(f, "data.keys.%.64s is not a string", k);
            return -1;
        }
        p->keys[n].key = k;
        n++;
    }
    f->msg.keys = p->keys;
    f->msg.nkeys = (uint32_t)n;
    return 0;
}

static void ds_payload(struct ds_priv *p, struct ferry_msg *msg, json_t *v)
{
    p->payload = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!p->payload)
        abort();
    msg->payload = p->payload;
    msg->payload_len = strlen(p->payload);
}

/* Builds the error detail: the error text, then keys and entity_type when
 * present. */
static void ds_error_detail(struct ds_frame *f, json_t *data)
{
    const char *text = NULL, *etype = NULL;
    char *keys = NULL;

    if (json_is_object(data)) {
        json_t *k = json_object_get(data, "keys");

        if (ds_opt_string(data, "error", &text) < 0)
            text = NULL;
        if (ds_opt_string(data, "entity_type", &etype) < 0)
            etype = NULL;
        if (json_is_object(k))
            keys = json_dumps(k, JSON_COMPACT);
    }
    if (!text) {
        char *dump = data ? json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY)
                          : NULL;

        ds_detail(f, "%s", dump ? dump : "(no error text)");
        free(dump);
        return;
    }
    ds_detail(f, "%s%s%s%s%s", text, keys ? " keys=" : "", keys ? keys : "",
              etype ? " entity_type=" : "", etype ? etype : "");
    free(keys);
}

static int ds_is_known_op(const char *mt)
{
    return !strcmp(mt, "full") || !strcmp(mt, "partial") ||
           !strcmp(mt, "delete");
}

/* rulesengine.Company / rulesengine.User. */
static void ds_entity(struct ds_frame *f, struct ds_priv *p, const char *mt,
                      const char *eid, json_t *data)
{
    struct ferry_msg *msg = &f->msg;
    const char *id = NULL;

    if (!json_is_object(data)) {
        ds_invalid(f, DS_REASON_TYPE);
        ds_detail(f, "data of a %s %s is not an object", msg->entity_type,
                  mt);
        return;
    }
    if (!strcmp(mt, "full")) {
        msg->op = FERRY_OP_FULL;
    } else if (!strcmp(mt, "partial")) {
        msg->op = FERRY_OP_PARTIAL;
    } else {
        msg->op = FERRY_OP_DELETE;
    }
    /* entity_id is required for a partial (it names the stored entity to
     * merge into); a full or delete carries the whole entity, so its
     * data.id stands in when entity_id is null. */
    if (eid && *eid) {
        id = eid;
    } else if (msg->op != FERRY_OP_PARTIAL) {
        if (ds_opt_string(data, "id", &id) < 0) {
            ds_invalid(f, DS_REASON_TYPE);
            ds_detail(f, "data.id is not a string");
            return;
        }
    }
    if (!id || !*id) {
        ds_invalid(f, DS_REASON_MISSING_ID);
        ds_detail(f, "%s %s without entity_id", msg->entity_type, mt);
        return;
    }
    if (ds_keys(f, p, data) < 0) {
        ds_invalid(f, DS_REASON_TYPE);
        return;
    }
    msg->entity_id = id;
    ds_payload(p, msg, data);
    f->kind = DS_MESSAGE;
}

/* rulesengine.Flag: one flag. */
static void ds_flag(struct ds_frame *f, struct ds_priv *p, const char *mt,
                    json_t *data)
{
    struct ferry_msg *msg = &f->msg;
    const char *key = NULL, *id = NULL;

    if (!json_is_object(data)) {
        ds_invalid(f, DS_REASON_TYPE);
        ds_detail(f, "data of a flag %s is not an object", mt);
        return;
    }
    if (ds_opt_string(data, "key", &key) < 0 ||
        ds_opt_string(data, "id", &id) < 0) {
        ds_invalid(f, DS_REASON_TYPE);
        ds_detail(f, "data.key or data.id of a flag is not a string");
        return;
    }
    /* full and partial both carry the whole flag: SET it (7.5). */
    msg->op = strcmp(mt, "delete") ? FERRY_OP_FULL : FERRY_OP_DELETE;
    if (!key || !*key) {
        /* Only a delete may name the flag by id (7.5). */
        key = msg->op == FERRY_OP_DELETE ? id : NULL;
    }
    if (!key || !*key) {
        ds_invalid(f, DS_REASON_MISSING_ID);
        ds_detail(f, "flag %s without key", mt);
        return;
    }
    p->owned_id = sch_lower(key);
    if (!p->owned_id)
        abort();
    msg->entity_id = p->owned_id;
    ds_payload(p, msg, data);
    f->kind = DS_MESSAGE;
}

/* rulesengine.Flags full: the snapshot (or one page of it). */
static void ds_flags(struct ds_frame *f, struct ds_priv *p, json_t *data,
                     int has_more)
{
    struct ferry_msg *msg = &f->msg;

    if (!json_is_array(data)) {
        ds_invalid(f, DS_REASON_TYPE);
        ds_detail(f, "data of a flags snapshot is not an array");
        return;
    }
    msg->op = FERRY_OP_SNAPSHOT;
    if (has_more)
        msg->flags |= FERRY_MSG_F_MORE;
    ds_payload(p, msg, data);
    f->kind = DS_MESSAGE;
}

/* Checks the pagination object; fills f->page, f->total, *has_more. */
static int ds_pagination(struct ds_frame *f, json_t *pg, int *has_more)
{
    json_t *v;

    *has_more = 0;
    if (!pg || json_is_null(pg))
        return 0;
    if (!json_is_object(pg)) {
        ds_detail(f, "pagination is not an object");
        return -1;
    }
    v = json_object_get(pg, "has_more");
    if (v && !json_is_null(v)) {
        if (!json_is_boolean(v)) {
            ds_detail(f, "pagination.has_more is not a boolean");
            return -1;
        }
        *has_more = json_is_true(v);
    }
    v = json_object_get(pg, "page");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            ds_detail(f, "pagination.page is not a count");
            return -1;
        }
        f->page = json_integer_value(v);
    }
    v = json_object_get(pg, "total");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            ds_detail(f, "pagination.total is not a count");
            return -1;
        }
        f->total = json_integer_value(v);
    }
    f->paginated = 1;
    return 0;
}

void ds_frame_parse(struct ds_frame *f, const char *buf, size_t len)
{
    struct ferry_msg *msg = &f->msg;
    struct ds_priv *p;
    json_error_t jerr;
    json_t *root, *data, *sid;
    const char *et = NULL, *mt = NULL, *eid = NULL;
    size_t at;
    int has_more = 0;

    memset(f, 0, sizeof(*f));
    msg->struct_size = sizeof(*msg);
    msg->entity_type = ds_empty;
    msg->entity_id = ds_empty;
    msg->order_key = ds_empty;
    msg->payload = ds_empty;
    f->reason = ds_empty;
    p = calloc(1, sizeof(*p));
    if (!p)
        abort();
    f->priv_ = p;

    at = utf8_check(buf, len);
    if (at != len) {
        ds_invalid(f, DS_REASON_UTF8);
        ds_detail(f, "invalid UTF-8 at byte %zu", at);
        return;
    }
    if (ds_depth_check(buf, len, &at) < 0) {
        ds_invalid(f, DS_REASON_DEPTH);
        ds_detail(f, "nesting deeper than %d at byte %zu", DS_MAX_DEPTH, at);
        return;
    }
    root = json_loadb(buf, len, 0, &jerr);
    if (!root) {
        ds_invalid(f, DS_REASON_JSON);
        ds_detail(f, "byte %d: %s", jerr.position, jerr.text);
        return;
    }
    p->root = root;
    if (!json_is_object(root)) {
        ds_invalid(f, DS_REASON_JSON);
        ds_detail(f, "frame is not a JSON object");
        return;
    }

    if (ds_opt_string(root, "entity_type", &et) < 0) {
        ds_invalid(f, DS_REASON_TYPE);
        ds_detail(f, "entity_type is not a string");
        return;
    }
    if (ds_opt_string(root, "message_type", &mt) < 0) {
        ds_invalid(f, DS_REASON_TYPE);
        ds_detail(f, "message_type is not a string");
        return;
    }
    if (ds_opt_string(root, "entity_id", &eid) < 0) {
        ds_invalid(f, DS_REASON_TYPE);
        ds_detail(f, "entity_id is not a string or null");
        return;
    }
    if (!et)
        et = ds_empty;
    if (!mt)
        mt = ds_empty;
    sid = json_object_get(root, "stream_id");
    if (sid && !json_is_null(sid)) {
        const char *s;

        if (!json_is_string(sid)) {
            ds_invalid(f, DS_REASON_TYPE);
            ds_detail(f, "stream_id is not a string");
            return;
        }
        s = json_string_value(sid);
        if (*s) {
            if (strlen(s) >= sizeof(f->stream_id) ||
                ds_pos_parse(s, &msg->pos) < 0) {
                ds_invalid(f, DS_REASON_BAD_STREAM_ID);
                ds_detail(f, "bad stream_id \"%.64s\"", s);
                return;
            }
            memcpy(f->stream_id, s, strlen(s) + 1);
        }
    }
    if (ds_pagination(f, json_object_get(root, "pagination"), &has_more) <
        0) {
        ds_invalid(f, DS_REASON_TYPE);
        return;
    }
    data = json_object_get(root, "data");

    if (!strcmp(mt, "error")) {
        f->kind = DS_ERROR;
        ds_error_detail(f, data);
        return;
    }
    if (!strcmp(mt, "reload")) {
        msg->op = FERRY_OP_RELOAD;
        msg->entity_type = "control";
        msg->order_key = "control";
        f->kind = DS_MESSAGE;
        return;
    }
    if (!strcmp(et, "rulesengine.Companies") ||
        !strcmp(et, "rulesengine.Users")) {
        f->kind = DS_SUBSCRIBED;
        ds_detail(f, "%s %s", et, mt);
        return;
    }
    if (strcmp(et, "rulesengine.Company") && strcmp(et, "rulesengine.User") &&
        strcmp(et, "rulesengine.Flag") && strcmp(et, "rulesengine.Flags")) {
        f->kind = DS_IGNORED;
        ds_detail(f, "unknown entity_type \"%.64s\"", et);
        return;
    }
    if (!ds_is_known_op(mt)) {
        ds_invalid(f, DS_REASON_UNKNOWN_OP);
        ds_detail(f, "unknown message_type \"%.64s\"", mt);
        return;
    }
    if (!strcmp(et, "rulesengine.Flags")) {
        if (strcmp(mt, "full")) {
            f->kind = DS_IGNORED;
            ds_detail(f, "%s %s", et, mt);
            return;
        }
        msg->entity_type = "flags";
        msg->order_key = "flags";
        ds_flags(f, p, data, has_more);
    } else if (!strcmp(et, "rulesengine.Flag")) {
        msg->entity_type = "flags";
        msg->order_key = "flags";
        ds_flag(f, p, mt, data);
    } else {
        msg->entity_type =
            !strcmp(et, "rulesengine.Company") ? "company" : "user";
        ds_entity(f, p, mt, eid, data);
    }
    if (f->kind != DS_MESSAGE) {
        /* Never leave a half-filled message behind an invalid verdict. */
        msg->op = 0;
        msg->flags = 0;
        msg->nkeys = 0;
        msg->keys = NULL;
        msg->entity_type = ds_empty;
        msg->entity_id = ds_empty;
        msg->order_key = ds_empty;
        msg->payload = ds_empty;
        msg->payload_len = 0;
    }
}

void ds_frame_release(struct ds_frame *f)
{
    struct ds_priv *p = f->priv_;

    if (!p)
        return;
    json_decref(p->root);
    free(p->payload);
    free(p->owned_id);
    free(p->keys);
    free(p);
    f->priv_ = NULL;
}
