/*
 * plugins/lib/schematic/schematic.h: Schematic's cached data model
 * (schematic-datastream.md sections 4, 5, 6, 10): normalised JSON exactly as
 * the Go reference writes it, partial-merge rules, REST conversion, and the
 * Redis key names. Used by sink_redis and source_websocket; the bundled test
 * server computes the expected cache with the independent oracle
 * (tests/oracle/oracle.h) and compares.
 *
 * The library's files: model.c (schema tables, errors, times), write.c (the
 * text writer), normalize.c and merge.c (the entity API), rest.c (REST
 * conversion), keys.c (key names, sch_lower), datastream.c (frames).
 *
 * Ownership: functions returning json_t * return a new reference (caller
 * json_decref()s); char * results are malloc'd (caller free()s). Inputs are
 * borrowed.
 */
#ifndef FERRY_COMMON_SCHEMATIC_H
#define FERRY_COMMON_SCHEMATIC_H

#include <stddef.h>

#include <jansson.h>

enum sch_type { SCH_COMPANY = 1, SCH_USER = 2, SCH_FLAG = 3 };

/*
 * msg->flags bit (a FERRY_MSG_F_PLUGIN_FIRST convention): the payload of
 * this FERRY_OP_FULL message is already the normalised cached form, its
 * entity_id is the entity's id and its keys are the normalised keys map
 * (sorted, string values). A sink that understands it writes the payload
 * as it is, without parsing it again. Set by the REST initial load, whose
 * items are converted to the cached form once, in the source.
 */
#define SCH_MSG_F_NORMALIZED (1u << 16)

/* One member of an entity's keys map. */
struct sch_kv {
    char *key;   /* as written in the normalised value (not lower-cased) */
    char *value; /* likewise */
};

/*
 * What one normalisation (or merge) produced, learnt in the same walk so
 * that nobody parses the result again:
 *   json, len  the normalised cached form (compact JSON, NUL-terminated);
 *   id         the entity's "id" (never empty on success);
 *   flag_key   SCH_FLAG: the "key" member, NULL when absent or empty
 *              (such a flag is not cached, 7.4); NULL for other types;
 *   keys       SCH_COMPANY / SCH_USER: the keys map exactly as written in
 *              json (sorted by key), nkeys entries; NULL and 0 otherwise.
 * Every pointer is owned by the struct: sch_entity_release() frees them
 * and zeroes it. A zeroed struct is a valid empty one.
 */
struct sch_entity {
    char *json;
    size_t len;
    char *id;
    char *flag_key;
    struct sch_kv *keys;
    size_t nkeys;
};

void sch_entity_release(struct sch_entity *e);

/*
 * The normaliser's rules (sch_entity_normalize, and
 * the result of every merge and REST conversion). An entity payload is
 * written the way Go's encoding/json writes the rulesengine struct: every
 * field of the structure in struct order (unknown fields dropped, lists
 * never null, absent optional values null, omit-empty fields omitted, map
 * keys sorted, int64 fields integral, float64 as Go
 * formats them, UTF-8 and Go's escaping of <, >, &), compact. It fails
 * with a reason when a field has the wrong JSON type or a required id is
 * missing.
 *
 * Decoding follows Go's encoding/json into the rulesengine structures
 * (sections 4.1 and 4.3; field order and omit-empty fields as in 4.3 and
 * the cache-* samples):
 *   - member names match exactly, else case-insensitively; the last
 *     matching member wins; unknown members are dropped;
 *   - null in a string / bool / int64 / time field gives its zero value
 *     ("", false, 0, "0001-01-01T00:00:00Z"); absent likewise;
 *   - a null element of a list of structures stays null; a null element
 *     of a list of strings becomes ""; a null map value becomes "" / 0;
 *   - int64: a JSON integer, or a real with an integral value (1200.0 ->
 *     1200, a deliberate leniency: Go itself would refuse it); a
 *     fractional real (12.5) is an error, as the WASM engine fails on it;
 *   - time: strict RFC 3339 as Go >= 1.20 parses it (offsets allowed,
 *     upper-case T and Z, fraction truncated to nanoseconds), re-written in
 *     UTC with 'Z' and trailing fraction zeros dropped; anything else is
 *     an error (Go refuses it too), so is a year outside 0..9999 after the
 *     shift to UTC;
 *   - any other JSON type mismatch is an error (Go's Unmarshal fails, and
 *     the reference skips such a message);
 *   - the entity must be an object with a non-empty "id".
 * Strings are written with Go >= 1.22's escaping (\b and \f as such).
 */

/*
 * The merge rules (sch_entity_merge): a partial (section 5)
 * is applied to base and the merged entity normalised. It fails when base
 * is not a valid entity, partial is not an object, or a partial member has
 * the wrong type (then nothing must be written: Go's merge fails the same
 * way).
 *
 * This follows schematic-go datastream/merge.go (what the reference runs)
 * where section 5 is silent:
 *   - partial member names match exactly (no case folding);
 *   - id / account_id / environment_id: null leaves the value unchanged;
 *   - subscription: an object is decoded INTO the existing subscription
 *     (members it lacks keep their values); null clears it;
 *   - metrics: an incoming metric replaces the LAST existing element with
 *     its identity; new identities are appended (several incoming metrics
 *     with the same new identity are all appended);
 *   - a company's keys map always exists after a merge ({} at least), and
 *     credit_balances becomes {} when the partial carries it as null;
 *   - a user's keys become {} when the partial carries keys (even null);
 *   - SCH_FLAG: the partial is the whole flag: its canonical form.
 */

/*
 * The REST conversion (sch_rest_entity, below): a REST CompanyDetail /
 * UserDetail item (section 10.3) to the cached model. It fails on a
 * malformed item: not an object, a member of the wrong JSON type, an
 * unparsable time, or an empty id.
 *
 * REST shapes assumed (the items of GET /companies and GET /users; absent
 * or null members are fine everywhere, unknown members are ignored):
 *
 *   CompanyDetail {
 *     "id": "comp_1", "environment_id": "env_1",
 *     "keys": [{"key": "domain", "value": "acme.test"}, ...],
 *     "entity_traits": [{"definition": {"id": "trdf_1",
 *         "trait_type": "string|boolean|bool|number|int|integer|date|..."},
 *         "value": "fintech"}, ...],       (no definition: dropped)
 *     "plan": {"id": "plan_1", "plan_version_id": "plnv_1"},
 *     "add_ons": [{"id": "plan_2", "plan_version_id": "plnv_2"}, ...],
 *     "plans": [{"id": "plan_1"}, ...],
 *     "billing_subscriptions": [{"products": [{"id": "bprod_1"}]}, ...],
 *     "billing_subscription": {"id": "bsub_1", "period_start": 1767225600,
 *         "period_end": 1769904000, "products": [{"id": "bprod_1"}]},
 *                                          (periods: Unix seconds, 0: zero)
 *     "billing_credit_balances": {"bcrd_1": 1500.5},
 *     "metrics": [{"account_id", "environment_id", "company_id",
 *         "event_subtype", "value": 250 (a real is truncated),
 *         "created_at": RFC 3339, "valid_until": RFC 3339 or null,
 *         "period": "current_day|current_month|all_time" (else all_time),
 *         "month_reset": "first|billing_cycle" (else first_of_month)}],
 *     "rules": [{"id", "flag_id", "account_id", "environment_id",
 *         "rule_type", "name", "priority", "value",
 *         "conditions": [Condition], "condition_groups":
 *         [{"conditions": [Condition]}]}],
 *                    (only company_override / _usage_exceeded are kept)
 *     "entitlements": [{"feature_id", "feature_key", "value_type",
 *         "allocation", "usage", "soft_limit" (numbers, truncated to
 *         integers), "event_name", "metric_period", "month_reset",
 *         "metric_reset_at": RFC 3339 or null, "credit_id",
 *         "credit_total", "credit_used", "credit_remaining"}]
 *   }
 *   Condition { "id", "account_id", "environment_id", "condition_type"
 *     (unknown -> ""), "operator" (equals|not_equals|greater_than|
 *     less_than|greater_than_or_equal|less_than_or_equal or the short
 *     forms, is_empty, not_empty; unknown -> "eq"), "resource_ids",
 *     "event_subtype", "metric_value", "metric_period" (unknown ->
 *     all_time), "metric_period_month_reset" (unknown -> first_of_month),
 *     "credit_id", "consumption_rate", "trait_value",
 *     "trait_definition" / "comparison_trait_definition": {"id",
 *     "comparable_type" (mapped like trait_type), "entity_type"} }
 *   UserDetail { "id", "environment_id", "keys", "entity_traits" as above }
 *
 * Result: account_id "" (not in the REST items); traits' trait_definition
 * {"id", "comparable_type", "entity_type": "company"|"user"};
 * plan_version_ids = plan's then add-ons' (non-empty); billing_product_ids
 * = every billing_subscriptions product id, then billing_subscription's
 * not already present; credit_balances {} when absent; user rules [].
 * A rule keeps its REST account_id (the reference leaves it "").
 */

/* Lower-cases UTF-8 the way the SDKs' ToLower does (Unicode simple
 * lower-casing; invalid bytes copied as they are). Returns malloc'd. */
char *sch_lower(const char *s);

/*
 * Key names. prefix is "schematic" by default (NULL means the default),
 * version the cache version:
 *   flag:    {prefix}:flags:{v}:{lower(key)}
 *   id key:  {prefix}:company:{v}:{id}     (user: {prefix}:user:{v}:{id})
 *   lookup:  {prefix}:company:{v}:{lower(k)}:{lower(val)}
 * Each returns a malloc'd string (NULL for a NULL argument).
 * sch_key_entity(SCH_FLAG, ...) is sch_key_flag; sch_key_lookup(SCH_FLAG)
 * is NULL (flags have no lookup keys).
 */
char *sch_key_flag(const char *prefix, const char *version,
                   const char *flag_key);
char *sch_key_entity(const char *prefix, enum sch_type type,
                     const char *version, const char *id);
char *sch_key_lookup(const char *prefix, enum sch_type type,
                     const char *version, const char *k, const char *val);
/* The lookup value: the id as a JSON string, quotes included, escaped as
 * Go's json.Marshal escapes it. */
char *sch_lookup_value(const char *id);


/* ---- the entity API: one parse per payload ------------------------------
 *
 * Each function below parses its input once and returns everything a sink
 * needs from it in a struct sch_entity (out is overwritten, not released,
 * on entry; on failure it is left zeroed). They return 0, or -1 with a
 * reason in err (errlen bytes). Thread-safe.
 */

/* Normalises the entity JSON text json[0..len) (the rules of the
 * normaliser described above) into out. */
int sch_entity_normalize(enum sch_type type, const char *json, size_t len,
                         struct sch_entity *out, char *err, size_t errlen);

/* Merges partial into base (normally the cached value, ferry's own
 * output) by section 5's rules and normalises the result into out. When
 * base_out is not NULL it receives base's id, flag_key and keys (json
 * NULL), from the same parse: the lookups that may go stale. */
int sch_entity_merge(enum sch_type type, const char *base, size_t base_len,
                     const char *partial, size_t partial_len,
                     struct sch_entity *out, struct sch_entity *base_out,
                     char *err, size_t errlen);

/* The id, flag_key and keys of a stored value (json NULL): for a cached
 * value whose lookups may go stale. Lenient where the value is not a
 * valid entity: whatever keys map it has is returned. */
int sch_entity_keys(enum sch_type type, const char *json, size_t len,
                    struct sch_entity *out, char *err, size_t errlen);

/* A flags snapshot (a JSON array of flags): calls each() once per element
 * in order, with the normalised flag and why NULL; or, when that element
 * is invalid, with flag->json NULL, flag->flag_key the element's "key"
 * member if it has a non-empty string one (read leniently, so a sink can
 * keep that flag's cached value rather than evict it) and the reason in
 * why (the caller skips the element). flag is never NULL. each() may take
 * the flag's contents (it is released after the call). Returns -1 only
 * when json is not an array; each() returning nonzero stops the walk
 * (and is returned). */
int sch_flags_each(const char *json, size_t len,
                   int (*each)(void *arg, struct sch_entity *flag,
                               const char *why),
                   void *arg, char *err, size_t errlen);

/* Converts a REST CompanyDetail / UserDetail item (the shapes and rules of
 * "The REST conversion" above) straight to the cached form in out: what a
 * source emits with SCH_MSG_F_NORMALIZED. */
int sch_rest_entity(enum sch_type type, json_t *detail, struct sch_entity *out,
                    char *err, size_t errlen);

#endif
