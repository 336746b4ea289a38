/*
 * plugins/lib/schematic/datastream.h: one Schematic datastream frame (a JSON text
 * frame) to one ferry message. Shared by source_websocket and source_file.
 *
 * Mapping (schematic-datastream.md section 3):
 *   entity_type rulesengine.Company -> "company", rulesengine.User -> "user",
 *   rulesengine.Flags / rulesengine.Flag -> "flags" (order_key "flags" for
 *   both, so a snapshot and single-flag changes stay in order);
 *   message_type full/partial/delete -> FERRY_OP_FULL/PARTIAL/DELETE,
 *   Flags + full -> FERRY_OP_SNAPSHOT (FERRY_MSG_F_MORE when
 *   pagination.has_more), reload -> FERRY_OP_RELOAD;
 *   entity_id: the frame's entity_id (company/user), the lower-cased flag
 *   key (single flag), "" otherwise; keys: data.keys (company/user);
 *   payload: compact JSON of data; pos: stream_id parsed as "<ms>-<seq>".
 *
 * The payload is `data` exactly as received with the whitespace between
 * tokens removed (escapes and number spellings kept): compact JSON, one
 * memcpy when the server already sent it compact. The frame is validated
 * as strictly as jansson parses (json_loadb with no flags accepts exactly
 * the payloads this accepts), so a sink can json_loadb() every payload.
 *
 * Details of the mapping (decided here, section numbers of the spec):
 *   - Company/User full and delete: entity_id, or data.id when entity_id
 *     is null or "" (the payload carries the whole entity); partial: the
 *     frame's entity_id only (missing -> DS_REASON_MISSING_ID). data must
 *     be an object for all three (else DS_REASON_TYPE). keys: data.keys in
 *     document order; a null member value counts as "" (as Go decodes it).
 *   - rulesengine.Flag full AND partial -> FERRY_OP_FULL (both carry the
 *     whole flag and are SET, 7.5); delete -> FERRY_OP_DELETE. entity_id =
 *     lower(data.key); a delete falls back to data.id when key is absent or
 *     "". A full/partial without a key is DS_REASON_MISSING_ID.
 *   - rulesengine.Flags full -> FERRY_OP_SNAPSHOT, entity_type "flags",
 *     entity_id "", payload the compact JSON array (must be an array, else
 *     DS_REASON_TYPE); page/total/paginated filled from pagination.
 *     Flags partial/delete -> DS_IGNORED.
 *   - message_type "reload" (any entity_type) -> DS_MESSAGE with
 *     FERRY_OP_RELOAD, entity_type "control", order_key "control",
 *     entity_id "", payload "" (length 0).
 *   - message_type "error" (any entity_type) -> DS_ERROR; detail = the
 *     error text, then " keys={...}" and " entity_type=..." when present.
 *   - rulesengine.Companies / rulesengine.Users with any other message
 *     type -> DS_SUBSCRIBED. Unknown or empty entity_type -> DS_IGNORED.
 *   - A known entity type with a message_type other than full, partial,
 *     delete, error, reload -> DS_REASON_UNKNOWN_OP.
 *   - Absent or null entity_type / message_type / stream_id count as "";
 *     present with another JSON type -> DS_REASON_TYPE. An empty stream_id
 *     means "no position".
 *   - "\u0000" inside a JSON string is refused (DS_REASON_JSON): ids and
 *     keys are C strings, and the sink's parser refuses it as well.
 *   - msg.pos is filled whenever the stream_id parsed, whatever the kind,
 *     so a source can still account for the position of a rejected frame.
 *   - Every detail text has control bytes replaced by '?' (safe to log).
 *   - Checks run in this order: UTF-8 over the whole frame, then one scan
 *     of grammar and depth together (DS_REASON_DEPTH when a level beyond
 *     DS_MAX_DEPTH, the envelope being level 1, is reached before any
 *     syntax error; recursion never goes deeper), then the mapping above.
 */
#ifndef FERRY_COMMON_DATASTREAM_H
#define FERRY_COMMON_DATASTREAM_H

#include <stddef.h>

#include "ferry/message.h"

enum ds_kind {
    DS_MESSAGE = 0,    /* a ferry message in frame->msg: emit it */
    DS_SUBSCRIBED = 1, /* rulesengine.Companies / Users confirmation */
    DS_ERROR = 2,      /* message_type "error": log it (frame->detail) */
    DS_IGNORED = 3,    /* valid but nothing to do (unknown entity type,
                        * Flags with a type other than full) */
    DS_INVALID = 4     /* reject: frame->reason, frame->detail */
};

/* Invalid-frame reasons, used as the `reason` label of
 * ferry_source_invalid_messages_total. */
#define DS_REASON_JSON "invalid_json"
#define DS_REASON_UTF8 "invalid_utf8"
#define DS_REASON_DEPTH "too_deep"
#define DS_REASON_TYPE "wrong_type"
#define DS_REASON_MISSING_ID "missing_entity_id"
#define DS_REASON_BAD_STREAM_ID "bad_stream_id"
#define DS_REASON_UNKNOWN_OP "unknown_message_type"

/* Deepest JSON nesting accepted. */
#define DS_MAX_DEPTH 64

struct ds_frame {
    int kind;             /* enum ds_kind */
    struct ferry_msg msg; /* DS_MESSAGE: points into this struct */
    const char *reason;   /* DS_INVALID: a DS_REASON_* */
    char detail[160];     /* DS_INVALID / DS_ERROR: what and where */
    char stream_id[48];   /* the raw stream_id, "" when absent */
    /* Flags snapshot pages (section 3.3): paginated is 1 when the frame
     * had a pagination object; page and total are 0 when absent. */
    int paginated;
    long long page;
    long long total;
    /* private */
    void *priv_;
};

/* Parses one frame (not necessarily NUL-terminated). Always fills f (free
 * it with ds_frame_release, whatever kind; f's previous contents are
 * overwritten, not freed). Never fails otherwise. Every pointer in f->msg
 * points into f and lives until ds_frame_release. Reentrant: any thread,
 * any number of frames at once. Aborts on out-of-memory. */
void ds_frame_parse(struct ds_frame *f, const char *buf, size_t len);
void ds_frame_release(struct ds_frame *f);

/* Parses "<ms>-<seq>" (both decimal, no sign). Returns 0 or -1. */
int ds_pos_parse(const char *s, struct ferry_pos *pos);
/* Formats a position as "<ms>-<seq>" into buf (>= FERRY_POS_STRLEN). */
char *ds_pos_format(const struct ferry_pos *pos, char *buf, size_t len);

#endif
