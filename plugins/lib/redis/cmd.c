/*
 * plugins/lib/redis/cmd.c: queued commands and scripts (cmd.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "redis/cmd.h"
#include "redis/util.h"

const char redis_cursor_script[] =
    "local function cmp(a, b)\n"
    "  a = (string.gsub(a, '^0+', ''))\n"
    "  b = (string.gsub(b, '^0+', ''))\n"
    "  if #a ~= #b then if #a < #b then return -1 end return 1 end\n"
    "  if a == b then return 0 end\n"
    "  if a < b then return -1 end return 1\n"
    "end\n"
    "local ms, seq = string.match(ARGV[1], '^(%d+)%-(%d+)$')\n"
    "if not ms then return redis.error_reply('ERR bad position') end\n"
    "local cur = redis.call('GET', KEYS[1])\n"
    "if cur then\n"
    "  local cms, cseq = string.match(cur, '^(%d+)%-(%d+)$')\n"
    "  if cms then\n"
    "    local c = cmp(ms, cms)\n"
    "    if c < 0 or (c == 0 and cmp(seq, cseq) <= 0) then return 0 end\n"
    "  end\n"
    "end\n"
    "redis.call('SET', KEYS[1], ARGV[1])\n"
    "return 1\n";

const char redis_renew_script[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  return redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "end\n"
    "return 0\n";

const char redis_release_script[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  return redis.call('DEL', KEYS[1])\n"
    "end\n"
    "return 0\n";

void redis_cmd_set(struct redis_conn *c, const char *key, size_t klen,
                   const char *val, size_t vlen, const char *ttl_arg)
{
    const char *argv[5] = {"SET", key, val, "PX", ttl_arg};
    size_t lens[5] = {3, klen, vlen, 2, ttl_arg ? strlen(ttl_arg) : 0};

    redis_conn_cmd_argv(c, ttl_arg ? 5 : 3, argv, lens);
}

void redis_cmd_del(struct redis_conn *c, size_t n, const char *const *keys,
                   const size_t *lens)
{
    const char **argv;
    size_t *alens, i;

    if (n == 0)
        return;
    argv = redis_xalloc((n + 1) * sizeof(*argv));
    alens = redis_xalloc((n + 1) * sizeof(*alens));
    argv[0] = "DEL";
    alens[0] = 3;
    for (i = 0; i < n; i++) {
        argv[i + 1] = keys[i];
        alens[i + 1] = lens ? lens[i] : strlen(keys[i]);
    }
    redis_conn_cmd_argv(c, (int)(n + 1), argv, alens);
    free(argv);
    free(alens);
}

void redis_cmd_cursor(struct redis_conn *c, const char *key,
                      const struct ferry_pos *pos)
{
    char p[FERRY_POS_STRLEN];

    ferry_pos_format(pos, p, sizeof(p));
    redis_conn_cmd(c, "EVAL", redis_cursor_script, "1", key, p, NULL);
}

/* Parses a decimal uint64 from s up to the first non-digit. */
static const char *redis_pos_num(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = s;

    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');

        if (v > (UINT64_MAX - d) / 10)
            return NULL;
        v = v * 10 + d;
    }
    if (p == s)
        return NULL;
    *out = v;
    return p;
}

int redis_pos_parse(const char *s, struct ferry_pos *out)
{
    struct ferry_pos p = {0, 0, 1};

    if (!s)
        return -1;
    s = redis_pos_num(s, &p.ms);
    if (!s || *s != '-')
        return -1;
    s = redis_pos_num(s + 1, &p.seq);
    if (!s || *s != '\0')
        return -1;
    *out = p;
    return 0;
}
