/*
 * tests/support/testserver/samples.c: --samples DIR adds the spec's sample
 * entities (schematic-datastream.md 6.2) to the workload, so that a test
 * can ask an SDK questions whose answers it knows (12.7): the six sample
 * flags join every flags snapshot, and the sample company and user (msg-02,
 * msg-03) are sent as full messages, without a stream position, right
 * after every snapshot. The random workload never touches them (its ids
 * are comp_N, user_N, flag_N), and the expected state includes them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schematic/schematic.h"
#include "testserver.h"

struct ts_samples ts_samples;

static json_t *load(const char *dir, const char *name)
{
    char path[1024];
    json_error_t e;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    json_t *j = json_load_file(path, 0, &e);
    if (!j)
        fprintf(stderr, "testserver: --samples: %s: %s\n", path, e.text);
    return j;
}

/* The frame of a sample message without its stream_id, compact. */
static char *frame_without_position(json_t *msg)
{
    json_object_del(msg, "stream_id");
    return json_dumps(msg, JSON_COMPACT | JSON_PRESERVE_ORDER);
}

int samples_load(const char *dir)
{
    json_t *flags = load(dir, "msg-01-flags-full.json");
    json_t *comp = load(dir, "msg-02-company-full.json");
    json_t *user = load(dir, "msg-03-user-full.json");
    int rc = -1;

    if (!flags || !comp || !user)
        goto out;
    json_t *arr = json_object_get(flags, "data");
    if (!json_is_array(arr))
        goto out;
    ts_samples.nflags = json_array_size(arr);
    ts_samples.flags = calloc(ts_samples.nflags, sizeof(char *));
    for (size_t i = 0; i < ts_samples.nflags; i++)
        ts_samples.flags[i] = json_dumps(json_array_get(arr, i),
                                         JSON_COMPACT | JSON_PRESERVE_ORDER);
    ts_samples.company_frame = frame_without_position(comp);
    ts_samples.user_frame = frame_without_position(user);
    ts_samples.company = json_incref(json_object_get(comp, "data"));
    ts_samples.user = json_incref(json_object_get(user, "data"));
    ts_samples.flag_objs = json_incref(arr);
    ts_samples.on = 1;
    rc = 0;
out:
    json_decref(flags);
    json_decref(comp);
    json_decref(user);
    return rc;
}

static int put_entity(json_t *out, const char *prefix, const char *v,
                      enum sch_type type, json_t *e)
{
    char err[256];
    char *val = oracle_normalize(type, e, err, sizeof(err));
    const char *id = json_string_value(json_object_get(e, "id"));
    json_t *keys = json_object_get(e, "keys");
    const char *k;
    json_t *kv;

    if (!val || !id)
        return -1;
    char *key = sch_key_entity(prefix, type, v, id);
    json_object_set_new(out, key, json_string(val));
    free(key);
    free(val);
    char *quoted = sch_lookup_value(id);
    json_object_foreach(keys, k, kv)
    {
        char *lk = sch_key_lookup(prefix, type, v, k, json_string_value(kv));
        json_object_set_new(out, lk, json_string(quoted));
        free(lk);
    }
    free(quoted);
    return 0;
}

int samples_expect(json_t *out, const char *prefix, const char *version)
{
    char err[256];
    size_t i;
    json_t *f;

    if (!ts_samples.on)
        return 0;
    json_array_foreach(ts_samples.flag_objs, i, f)
    {
        char *val = oracle_normalize(SCH_FLAG, f, err, sizeof(err));
        if (!val)
            return -1;
        char *key = sch_key_flag(prefix, version,
                                 json_string_value(json_object_get(f, "key")));
        json_object_set_new(out, key, json_string(val));
        free(key);
        free(val);
    }
    if (put_entity(out, prefix, version, SCH_COMPANY, ts_samples.company) ||
        put_entity(out, prefix, version, SCH_USER, ts_samples.user))
        return -1;
    return 0;
}

void samples_release(void)
{
    for (size_t i = 0; i < ts_samples.nflags; i++)
        free(ts_samples.flags[i]);
    free(ts_samples.flags);
    free(ts_samples.company_frame);
    free(ts_samples.user_frame);
    json_decref(ts_samples.company);
    json_decref(ts_samples.user);
    json_decref(ts_samples.flag_objs);
    memset(&ts_samples, 0, sizeof(ts_samples));
}
