/*
 * tests/oracle/oracle.h: test-only reference implementations the product
 * is compared with (build/tests/liboracle.a, linked into unit tests and
 * the test server).
 *
 * The Schematic model oracle (sch_tree.c) normalises and merges entities
 * as jansson trees, by the rules schematic.h states for the product's text
 * path, so a unit test can check that both give the same bytes and accept
 * and reject the same inputs, and the test server can compute the
 * expected cache independently of the sink's code.
 *
 * Ownership: json_t * results are new references (json_decref them);
 * char * results are malloc'd (free them); inputs are borrowed and not
 * modified. Errors: NULL with a reason in err (errlen bytes, may be 0).
 * Thread-safe.
 */
#ifndef FERRY_TESTS_ORACLE_H
#define FERRY_TESTS_ORACLE_H

#include <stddef.h>

#include <jansson.h>

#include "schematic/schematic.h"

/* The canonical tree of an entity: every field of the structure in Go's
 * order, maps sorted, int64 as integers, float64 as reals, times
 * re-written; NULL when the entity is invalid (the rules at
 * sch_entity_normalize). Idempotent. */
json_t *oracle_canonical(enum sch_type type, json_t *entity, char *err,
                         size_t errlen);

/* oracle_canonical written as Go writes it: the bytes the product's
 * sch_entity_normalize must produce. */
char *oracle_normalize(enum sch_type type, json_t *entity, char *err,
                       size_t errlen);

/* Applies partial to a copy of base by section 5's rules (schematic.h,
 * sch_entity_merge) and returns the merged canonical tree. For SCH_FLAG
 * the partial is the whole flag and base is not read (may be NULL). */
json_t *oracle_merge(enum sch_type type, json_t *base, json_t *partial,
                     char *err, size_t errlen);

/* oracle_normalize of JSON text (parsed by json_loadb, any root). */
char *oracle_normalize_text(enum sch_type type, const char *json, size_t len,
                            char *err, size_t errlen);

/* oracle_merge then oracle_normalize, on JSON text. */
char *oracle_merge_text(enum sch_type type, const char *base, size_t base_len,
                        const char *partial, size_t partial_len, char *err,
                        size_t errlen);

#endif
