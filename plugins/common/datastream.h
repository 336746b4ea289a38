/*
 * plugins/common/datastream.h: one Schematic datastream frame (a JSON text
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
 */
#ifndef FERRY_COMMON_DATASTREAM_H
#define FERRY_COMMON_DATASTREAM_H

#include <stddef.h>

#include "ferry/message.h"

enum ds_kind {
    DS_MESSAGE = 0,      /* a ferry message in frame->msg: emit it */
    DS_SUBSCRIBED = 1,   /* rulesengine.Companies / Users confirmation */
    DS_ERROR = 2,        /* message_type "error": log it (frame->error) */
    DS_IGNORED = 3,      /* valid but nothing to do (unknown entity type,
                          * Flags with a type other than full) */
    DS_INVALID = 4       /* reject: frame->reason, frame->detail */
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
    int kind;                /* enum ds_kind */
    struct ferry_msg msg;    /* DS_MESSAGE: points into this struct */
    const char *reason;      /* DS_INVALID: a DS_REASON_* */
    char detail[160];        /* DS_INVALID / DS_ERROR: what and where */
    char stream_id[48];      /* the raw stream_id, "" when absent */
    /* private */
    void *priv_;
};

/* Parses one frame (not necessarily NUL-terminated). Always fills f (free
 * it with ds_frame_release, whatever kind). Never fails otherwise. */
void ds_frame_parse(struct ds_frame *f, const char *buf, size_t len);
void ds_frame_release(struct ds_frame *f);

/* Parses "<ms>-<seq>" (both decimal, no sign). Returns 0 or -1. */
int ds_pos_parse(const char *s, struct ferry_pos *pos);
/* Formats a position as "<ms>-<seq>" into buf (>= FERRY_POS_STRLEN). */
char *ds_pos_format(const struct ferry_pos *pos, char *buf, size_t len);

#endif
