/*
 * plugins/lib/redis/keyset.c: see keyset.h.
 */
#include <stdlib.h>
#include <string.h>

#include "redis/keyset.h"
#include "redis/util.h"

uint64_t redis_key_hash(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    size_t i;

    /* FNV-1a, then a splitmix64 finaliser so that the low bits used for
     * the slot index are well mixed. */
    for (i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h ? h : 1;
}

static void redis_keyset_insert(uint64_t *slots, size_t cap, uint64_t h)
{
    size_t i = (size_t)h & (cap - 1);

    while (slots[i] != 0) {
        if (slots[i] == h)
            return;
        i = (i + 1) & (cap - 1);
    }
    slots[i] = h;
}

static void redis_keyset_grow(struct redis_keyset *ks)
{
    size_t cap = ks->cap ? ks->cap * 2 : 64, i;
    uint64_t *slots = redis_xcalloc(cap, sizeof(*slots));

    for (i = 0; i < ks->cap; i++)
        if (ks->slots[i])
            redis_keyset_insert(slots, cap, ks->slots[i]);
    free(ks->slots);
    ks->slots = slots;
    ks->cap = cap;
}

void redis_keyset_add_hash(struct redis_keyset *ks, uint64_t h)
{
    size_t i;

    if ((ks->count + 1) * 2 > ks->cap)
        redis_keyset_grow(ks);
    i = (size_t)h & (ks->cap - 1);
    while (ks->slots[i] != 0) {
        if (ks->slots[i] == h)
            return;
        i = (i + 1) & (ks->cap - 1);
    }
    ks->slots[i] = h;
    ks->count++;
}

void redis_keyset_add(struct redis_keyset *ks, const char *s, size_t n)
{
    redis_keyset_add_hash(ks, redis_key_hash(s, n));
}

int redis_keyset_has_hash(const struct redis_keyset *ks, uint64_t h)
{
    size_t i;

    if (ks->cap == 0)
        return 0;
    i = (size_t)h & (ks->cap - 1);
    while (ks->slots[i] != 0) {
        if (ks->slots[i] == h)
            return 1;
        i = (i + 1) & (ks->cap - 1);
    }
    return 0;
}

int redis_keyset_has(const struct redis_keyset *ks, const char *s, size_t n)
{
    return redis_keyset_has_hash(ks, redis_key_hash(s, n));
}

void redis_keyset_merge(struct redis_keyset *dst,
                        const struct redis_keyset *src)
{
    size_t i;

    for (i = 0; i < src->cap; i++)
        if (src->slots[i])
            redis_keyset_add_hash(dst, src->slots[i]);
}

void redis_keyset_release(struct redis_keyset *ks)
{
    free(ks->slots);
    memset(ks, 0, sizeof(*ks));
}
