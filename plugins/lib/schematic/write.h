/*
 * plugins/lib/schematic/write.h: private to plugins/lib/schematic. The
 * text normaliser's pieces shared by normalize.c (sch_entity_normalize,
 * sch_entity_keys, sch_flags_each) and merge.c (sch_entity_merge): jv
 * readers that apply Go's member matching, and writers that emit a field
 * the way Go's encoding/json does, into a gj_buf.
 *
 * Writers return 0, or -1 with the reason recorded in the sch_ctx; on -1
 * the buffer holds a partial value (callers discard it). Inputs are
 * borrowed; nothing here keeps a pointer. Thread-safe.
 */
#ifndef FERRY_SCHEMATIC_WRITE_H
#define FERRY_SCHEMATIC_WRITE_H

#include <stddef.h>

#include "json/gojson.h"
#include "json/jv.h"
#include "schematic/model.h"

/* ---- reading a jv document by Go's rules ---- */

/* "object", "array", "string", "number", "bool" or "null". */
const char *sch_jv_tname(const struct jv *v);
/* slot[i] (s->n entries) = the last member of obj that decodes into field
 * i, or NULL; all NULL when obj is not an object. */
void sch_jv_slots(const struct sch_schema *s, const struct jv *obj,
                  const struct jv **slot);
/* The last member of obj named exactly `name`, or NULL. */
const struct jv *sch_jv_get(const struct jv *obj, const char *name);
/* The *string field `field` of o: NULL for null, absent or another type. */
const char *sch_jv_pstr(const struct sch_schema *s, const struct jv *o,
                        const char *field);

/* ---- writing ---- */

/* A field written with a fixed value instead of its member (re-derived
 * entitlements). */
struct sch_ovr {
    const char *name;
    int is_int;
    long long i;
    double d;
};

/* One member of a merged map. */
struct sch_mapent {
    const struct jv_member *m;
    size_t order;
};

/*
 * Decodes object obj as structure s and writes it. into, when not NULL, is
 * a value obj is decoded into (Go's Unmarshal into an existing struct):
 * fields obj lacks come from it. ovr[0..novr) replace fields' values. At
 * the top level (c->depth 0) with c->cap set, records the id, flag key and
 * keys map in c->cap.
 */
int sch_write_struct(struct sch_ctx *c, struct gj_buf *b,
                     const struct sch_schema *s, const struct jv *obj,
                     const struct jv *into, const struct sch_ovr *ovr,
                     int novr);
/* A present member v of field f; base: the value a struct is decoded into
 * (or NULL). */
int sch_write_value(struct sch_ctx *c, struct gj_buf *b,
                    const struct sch_field *f, const struct jv *v,
                    const struct jv *base);
/* Field f's value src, or its kind's zero value when src is NULL. */
int sch_write_value_or_zero(struct sch_ctx *c, struct gj_buf *b,
                            const struct sch_field *f, const struct jv *src);
/* The zero value of a field kind (enum sch_kind). */
void sch_write_zero(struct gj_buf *b, int kind);
/* A map from up to two objects (m2's members over m1's, later members
 * over earlier ones), keys sorted: strings (null: "") or, with floats,
 * float64 (null: 0). Records it in c->cap when c->cap_keys is set. */
int sch_write_map(struct sch_ctx *c, struct gj_buf *b, int floats,
                  const struct jv *m1, const struct jv *m2);
/* "name": after a comma unless *first (then cleared). */
void sch_write_key(struct gj_buf *b, int *first, const char *name);
/* Whether omit-empty field f with source v is left out. */
int sch_omitted(const struct sch_field *f, const struct jv *v);

/* ---- capturing what is written ---- */

/* The members of m1 and m2 as sch_write_map merges them, in *out
 * (malloc'd, the caller frees it; *n entries). -1 when one is not an
 * object. */
int sch_map_members(struct sch_ctx *c, const struct jv *m1, const struct jv *m2,
                    struct sch_mapent **out, size_t *n);
/* Records kv[0..n) as c->cap's keys (string and null values only). */
void sch_cap_map(struct sch_ctx *c, const struct sch_mapent *kv, size_t n);
/* Before top-level field f is written from src (NULL: zero): records the
 * id or flag key in c->cap, or arms c->cap_keys for the keys map. */
void sch_cap_field(struct sch_ctx *c, const struct sch_field *f,
                   const struct jv *src);

/* ---- whole entities (normalize.c) ---- */

/* Parses json[0..len) and checks that the root is an object (`what`
 * names it in the error). Returns the document (root in *root; the
 * caller jv_free()s it) or NULL with the reason in c. */
struct jv_doc *sch_ent_parse(struct sch_ctx *c, const char *json, size_t len,
                             const char *what, const struct jv **root);
/* Normalises object root as structure s into out (zeroed by the caller;
 * released on failure). Returns 0 or -1. */
int sch_ent_write(struct sch_ctx *c, const struct sch_schema *s,
                  const struct jv *root, struct sch_entity *out);
/* After writing an entity into b with c->cap == out: checks the id, drops
 * an empty flag key and moves b's text into out. Returns 0 or -1 (b is
 * then left to the caller to release). */
int sch_ent_finish(struct sch_ctx *c, struct gj_buf *b, struct sch_entity *out);
/* The id, flag key and keys of object root, read leniently (no member
 * type is an error) into out (zeroed by the caller). */
void sch_ent_keys_of(enum sch_type type, const struct jv *root,
                     struct sch_entity *out);

#endif
