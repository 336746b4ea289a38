/*
 * plugins/sink_redis/keys.c: the Schematic key shapes (keys.h).
 */
#include "keys.h"

#include <string.h>

int redis_key_segments(const char *prefix, const char *key, size_t len)
{
    size_t plen = strlen(prefix), i;
    int segs = 1;

    if (len <= plen || memcmp(key, prefix, plen) != 0 || key[plen] != ':')
        return -1;
    for (i = plen + 1; i < len; i++)
        if (key[i] == ':')
            segs++;
    return segs;
}

/* Appends src to buf escaping SCAN glob characters. */
static size_t redis_glob_escape(char *buf, size_t pos, size_t len,
                                const char *src)
{
    for (; *src && pos + 2 < len; src++) {
        if (strchr("*?[]\\", *src))
            buf[pos++] = '\\';
        buf[pos++] = *src;
    }
    buf[pos] = '\0';
    return pos;
}

void redis_match_pattern(const char *prefix, const char *mid, char *buf,
                         size_t len)
{
    size_t pos = redis_glob_escape(buf, 0, len, prefix);

    if (pos + 2 < len)
        buf[pos++] = ':';
    pos = redis_glob_escape(buf, pos, len, mid);
    if (pos + 1 < len)
        buf[pos++] = '*';
    buf[pos] = '\0';
}
