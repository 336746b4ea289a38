/*
 * plugins/lib/redis/keyset.h: a set of Redis key names, stored as 64-bit
 * hashes.
 *
 * Used for "keys written by this initial load" (7.7) and "flags in this
 * snapshot" (7.4), which decide what SCAN-driven eviction deletes. A load
 * can write millions of keys; 16 bytes a key instead of the names keeps
 * that affordable. A hash collision can only make a stale key look
 * written, so eviction errs on the side of keeping a key, never of
 * deleting a live one (probability about n^2 / 2^65: 3e-7 for 3M keys).
 *
 * Not thread-safe: callers lock.
 */
#ifndef FERRY_REDIS_KEYSET_H
#define FERRY_REDIS_KEYSET_H

#include <stddef.h>
#include <stdint.h>

struct redis_keyset {
    uint64_t *slots; /* 0 = empty */
    size_t cap;      /* a power of two, or 0 */
    size_t count;
};

/* The hash of s[0..n) (never 0). */
uint64_t redis_key_hash(const char *s, size_t n);

/* An empty set needs no init beyond zeroing. */
void redis_keyset_add(struct redis_keyset *ks, const char *s, size_t n);
void redis_keyset_add_hash(struct redis_keyset *ks, uint64_t h);
int redis_keyset_has(const struct redis_keyset *ks, const char *s, size_t n);
int redis_keyset_has_hash(const struct redis_keyset *ks, uint64_t h);
/* Adds every member of src to dst. */
void redis_keyset_merge(struct redis_keyset *dst,
                        const struct redis_keyset *src);
/* Frees the slots; the set is empty and usable again. */
void redis_keyset_release(struct redis_keyset *ks);

#endif
