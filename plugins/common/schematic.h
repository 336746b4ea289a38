/*
 * plugins/common/schematic.h: Schematic's cached data model
 * (schematic-datastream.md sections 4, 5, 6, 10): normalised JSON exactly as
 * the Go reference writes it, partial-merge rules, REST conversion, and the
 * Redis key names. Used by sink_redis and by the bundled test server (which
 * computes the expected final cache state with it).
 *
 * Values are jansson trees. Ownership: functions returning json_t * return
 * a new reference (caller json_decref()s); char * results are malloc'd
 * (caller free()s). Inputs are borrowed.
 */
#ifndef FERRY_COMMON_SCHEMATIC_H
#define FERRY_COMMON_SCHEMATIC_H

#include <stddef.h>

#include <jansson.h>

enum sch_type {
    SCH_COMPANY = 1,
    SCH_USER = 2,
    SCH_FLAG = 3
};

/*
 * Serialises an entity payload the way Go's encoding/json writes the
 * rulesengine struct: every field of the structure in struct order (unknown
 * fields dropped, lists never null, absent optional values null, omit-empty
 * fields omitted, map keys sorted, int64 fields integral, float64 as Go
 * formats them, UTF-8 and Go's escaping of <, >, &), compact. Returns NULL
 * and a reason in err when a field has the wrong JSON type or a required
 * id is missing.
 */
char *sch_normalize(enum sch_type type, json_t *entity, char *err,
                    size_t errlen);

/* Applies a partial (section 5) to a deep copy of base and returns the
 * merged entity. */
json_t *sch_merge(enum sch_type type, json_t *base, json_t *partial);

/* Converts a REST CompanyDetail / UserDetail (section 10.3) to the cached
 * model. NULL on a malformed item. */
json_t *sch_from_rest(enum sch_type type, json_t *detail);

/* Lower-cases UTF-8 the way the SDKs' ToLower does (Unicode simple
 * lower-casing; invalid bytes copied as they are). Returns malloc'd. */
char *sch_lower(const char *s);

/*
 * Key names. prefix is "schematic" by default, version the cache version:
 *   flag:    {prefix}:flags:{v}:{lower(key)}
 *   id key:  {prefix}:company:{v}:{id}
 *   lookup:  {prefix}:company:{v}:{lower(k)}:{lower(val)}
 * Each returns a malloc'd string.
 */
char *sch_key_flag(const char *prefix, const char *version,
                   const char *flag_key);
char *sch_key_entity(const char *prefix, enum sch_type type,
                     const char *version, const char *id);
char *sch_key_lookup(const char *prefix, enum sch_type type,
                     const char *version, const char *k, const char *val);
/* The lookup value: the id as a JSON string, quotes included. */
char *sch_lookup_value(const char *id);

#endif
