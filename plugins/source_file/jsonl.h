/*
 * plugins/source_file/jsonl.h: one line of a `format = jsonl` file (any
 * JSON object a line) to one ferry message.
 *
 * The line is scanned once with the shared pull scanner (json/jsonscan.h),
 * which checks UTF-8 and the grammar as it goes; the id, type and op
 * members are picked up in that pass (top level only; nested objects and
 * arrays are skipped without handing out tokens), and the object is then
 * copied once with insignificant whitespace removed.
 *
 * The message:
 *  - entity_type: the type member, a non-empty string (escapes decoded);
 *  - entity_id: the id member, a non-empty string, or an integer written
 *    as its JSON text (42 -> "42", -7 -> "-7"; JSON integers have one
 *    spelling, so the key is stable). A real (4.0), a boolean, null, an
 *    object or an array is refused: 4.0 and 4 would name different keys;
 *  - op: the op member "set" (FERRY_OP_FULL) or "delete"
 *    (FERRY_OP_DELETE); an absent op is "set". Anything else is refused;
 *  - payload: the whole object, id, type and op members included, as
 *    compact JSON (member order, escapes and number spellings as written).
 * A member name repeated at the top level resolves as in jansson and Go:
 * the last one wins. The position is left unset: the caller gives it.
 *
 * Everything here is reentrant: a struct file_jsonl belongs to one thread
 * at a time, distinct ones are independent.
 */
#ifndef FERRY_SOURCE_FILE_JSONL_H
#define FERRY_SOURCE_FILE_JSONL_H

#include <stddef.h>

#include <ferry/ferry.h>

/* Rejected-line reasons, the `reason` label of
 * ferry_source_invalid_messages_total. */
#define FILE_JSONL_JSON "invalid_json"
#define FILE_JSONL_UTF8 "invalid_utf8"
#define FILE_JSONL_DEPTH "too_deep"
#define FILE_JSONL_NOT_OBJECT "not_object"
#define FILE_JSONL_MISSING_ID "missing_id"
#define FILE_JSONL_MISSING_TYPE "missing_type"
#define FILE_JSONL_EMPTY_ID "empty_id"
#define FILE_JSONL_EMPTY_TYPE "empty_type"
#define FILE_JSONL_WRONG_TYPE "wrong_type"
#define FILE_JSONL_UNKNOWN_OP "unknown_op"

/* Deepest nesting accepted, as for datastream frames. */
#define FILE_JSONL_MAX_DEPTH 64

/* The member names to read (NUL-terminated, borrowed). */
struct file_jsonl_fields {
    const char *id;
    const char *type;
    const char *op;
};

/* One parsed line. */
struct file_jsonl {
    /* NULL: msg is a message to emit; else a FILE_JSONL_* reason and a
     * detail (never bytes of the line's values: they may be secret). */
    const char *reason;
    char detail[128];
    /* Points into buf; valid until the next parse or release. */
    struct ferry_msg msg;
    /* private: the id, type and payload bytes, reused by the next
     * parse. */
    char *buf;
    size_t cap;
};

/* Prepares l (caller-owned memory) for file_jsonl_parse(). */
void file_jsonl_init(struct file_jsonl *l);

/* Parses line[0..len) (need not be NUL-terminated) with the member names
 * in f. Always fills l: a message (l->reason NULL) or a reason. What l
 * held before is overwritten; its buffer is reused. Aborts on
 * out-of-memory. Any thread, for its own l. */
void file_jsonl_parse(struct file_jsonl *l, const struct file_jsonl_fields *f,
                      const char *line, size_t len);

/* Frees what l holds; l may be parsed again after file_jsonl_init(). */
void file_jsonl_release(struct file_jsonl *l);

#endif
