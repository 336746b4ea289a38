/*
 * tests/plugins/policy_verdict.c: a policy whose admit() answers a fixed
 * verdict (block, coalesce, drop_newest or drop_oldest) once a route
 * channel holds at_depth messages (0: only when it is full), so scheduler
 * tests can drive each admission path without depending on
 * policy_backpressure.
 */
#include <string.h>

#include "ferry/plugin.h"

struct verdict {
    const struct ferry_host *host;
    int verdict;
    size_t at_depth;
};

static const char *const verdict_names[] = {"block", "coalesce", "drop_newest",
                                            "drop_oldest", NULL};

static const int verdict_values[] = {FERRY_ADMIT_BLOCK, FERRY_ADMIT_COALESCE,
                                     FERRY_ADMIT_DROP_NEWEST,
                                     FERRY_ADMIT_DROP_OLDEST};

static const struct ferry_option verdict_options[] = {
    {"verdict", FERRY_OPT_ENUM, "block", 0, 0, verdict_names, 0,
     "what admit() answers"},
    {"at_depth", FERRY_OPT_INT, "0", 0, 1e9, NULL, 0,
     "answer it from this depth on (0: when full)"},
    {NULL, 0, NULL, 0, 0, NULL, 0, NULL},
};

static int verdict_init(const struct ferry_host *host, struct ferry_ctx *ctx,
                        void **state)
{
    struct verdict *v = host->alloc(sizeof(*v));
    const char *name = host->opt_str(ctx, "verdict");

    v->host = host;
    v->verdict = FERRY_ADMIT_BLOCK;
    for (size_t i = 0; verdict_names[i]; i++)
        if (strcmp(verdict_names[i], name) == 0)
            v->verdict = verdict_values[i];
    v->at_depth = (size_t)host->opt_int(ctx, "at_depth");
    *state = v;
    return FERRY_OK;
}

static void verdict_fini(void *state)
{
    struct verdict *v = state;

    v->host->free(v);
}

static int verdict_admit(void *state, const struct ferry_admission *a)
{
    const struct verdict *v = state;
    size_t at = v->at_depth ? v->at_depth : a->capacity;

    return a->depth >= at ? v->verdict : FERRY_ADMIT_BLOCK;
}

FERRY_PLUGIN_EXPORT const struct ferry_plugin ferry_plugin = {
    FERRY_PLUGIN_HEADER(FERRY_KIND_POLICY, "verdict"),
    .version = "1.0.0",
    .description = "test policy: a fixed admission verdict",
    .options = verdict_options,
    .init = verdict_init,
    .fini = verdict_fini,
    .admit = verdict_admit,
};
