/*
 * plugins/sink_redis/run.c: the primitives every step of a run uses
 * (run.h): the run's messages and types, queueing SET and DEL.
 */
#include <stdlib.h>
#include <string.h>

#include "run.h"

const struct ferry_msg *redis_msg(const struct redis_run *run, size_t k)
{
    return run->b->msgs[run->idx[k]];
}

enum sch_type redis_sch_type(int t)
{
    return t == REDIS_T_COMPANY ? SCH_COMPANY : SCH_USER;
}

const char *redis_type_name(int t)
{
    return t == REDIS_T_COMPANY ? "company" : "user";
}

int redis_type_of(const struct ferry_msg *m)
{
    if (strcmp(m->entity_type, "company") == 0)
        return REDIS_T_COMPANY;
    if (strcmp(m->entity_type, "user") == 0)
        return REDIS_T_USER;
    if (strcmp(m->entity_type, "flags") == 0)
        return REDIS_T_FLAGS;
    return -1;
}

void redis_q_set(struct redis_run *run, const char *key, const char *val,
                 size_t vlen)
{
    redis_cmd_set(run->w->conn, key, strlen(key), val, vlen, run->s->ttl_arg);
    run->n_set++;
}

void redis_q_del(struct redis_run *run, const char *key0,
                 const struct redis_strv *more)
{
    size_t n = (key0 ? 1 : 0) + (more ? more->n : 0), i, a = 0;
    const char **keys;

    if (n == 0)
        return;
    keys = redis_xalloc(n * sizeof(*keys));
    if (key0)
        keys[a++] = key0;
    for (i = 0; more && i < more->n; i++)
        keys[a++] = more->v[i];
    redis_cmd_del(run->w->conn, n, keys, NULL);
    run->n_del += n;
    free(keys);
}

void redis_strv_release(struct redis_strv *sv)
{
    size_t i;

    for (i = 0; i < sv->n; i++)
        free(sv->v[i]);
    free(sv->v);
    memset(sv, 0, sizeof(*sv));
}
