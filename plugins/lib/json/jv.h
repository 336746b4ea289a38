/*
 * plugins/lib/json/jv.h: a small read-only JSON document in one arena, for
 * hot paths where building a jansson tree costs too much (a 2 KB company
 * takes ~70 us in json_loadb here, ~5 us in jv_parse).
 *
 * The grammar is jsonscan.h's, shared with datastream.c: it accepts exactly
 * what json_loadb(buf, len, JSON_DECODE_ANY) accepts (strict UTF-8, no
 * "\u0000", paired surrogate escapes only, integers within 64 bits, reals
 * that do not overflow a double) up to 256 levels of nesting (jansson
 * takes 2048), and keeps duplicate object members in document order
 * (readers decide which one wins).
 *
 * A document is used by one thread at a time; distinct documents are
 * independent.
 */
#ifndef FERRY_COMMON_JV_H
#define FERRY_COMMON_JV_H

#include <stddef.h>
#include <stdint.h>

enum jv_type {
    JV_NULL,
    JV_FALSE,
    JV_TRUE,
    JV_INT,
    JV_REAL,
    JV_STR,
    JV_ARR,
    JV_OBJ
};

struct jv_member;

struct jv {
    unsigned char type; /* enum jv_type */
    uint32_t n;         /* JV_STR: bytes; JV_ARR / JV_OBJ: entries */
    union {
        long long i;                     /* JV_INT */
        double d;                        /* JV_REAL */
        const char *s;                   /* JV_STR: decoded, NUL-terminated */
        const struct jv *items;          /* JV_ARR */
        const struct jv_member *members; /* JV_OBJ */
    } u;
};

struct jv_member {
    const char *key; /* decoded, NUL-terminated */
    uint32_t klen;
    struct jv val;
};

struct jv_doc;

/* Parses buf[0..len). Returns the document (root in *root, valid until
 * jv_free), or NULL with a reason in err (errlen bytes, may be 0):
 * "byte N: what", the first bad UTF-8 byte whenever there is one. */
struct jv_doc *jv_parse(const char *buf, size_t len, const struct jv **root,
                        char *err, size_t errlen);
void jv_free(struct jv_doc *doc);

#endif
