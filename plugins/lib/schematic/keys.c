/*
 * plugins/lib/schematic/keys.c: Redis key names and the lookup value
 * (schematic.h; schematic-datastream.md section 6).
 */
#include "schematic/schematic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/gojson.h"
#include "json/utf8.h"

/* ---- keys
 * --------------------------------------------------------------------- */

static const char *sch_segment(enum sch_type type)
{
    switch (type) {
    case SCH_COMPANY:
        return "company";
    case SCH_USER:
        return "user";
    case SCH_FLAG:
        return "flags";
    }
    return NULL;
}

static char *sch_join(const char *a, const char *b, const char *c,
                      const char *d, const char *e)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + strlen(d) +
               (e ? strlen(e) + 1 : 0) + 4;
    char *out = malloc(n);

    if (!out)
        return NULL;
    if (e)
        snprintf(out, n, "%s:%s:%s:%s:%s", a, b, c, d, e);
    else
        snprintf(out, n, "%s:%s:%s:%s", a, b, c, d);
    return out;
}

char *sch_key_flag(const char *prefix, const char *version,
                   const char *flag_key)
{
    char *low, *out;

    if (!version || !flag_key)
        return NULL;
    low = sch_lower(flag_key);
    if (!low)
        return NULL;
    out = sch_join(prefix ? prefix : "schematic", "flags", version, low, NULL);
    free(low);
    return out;
}

char *sch_key_entity(const char *prefix, enum sch_type type,
                     const char *version, const char *id)
{
    if (type == SCH_FLAG)
        return sch_key_flag(prefix, version, id);
    if (!sch_segment(type) || !version || !id)
        return NULL;
    /* ID keys keep the id's case (observed: SDKs do not lower-case it). */
    return sch_join(prefix ? prefix : "schematic", sch_segment(type), version,
                    id, NULL);
}

char *sch_key_lookup(const char *prefix, enum sch_type type,
                     const char *version, const char *k, const char *val)
{
    char *lk, *lv, *out = NULL;

    if (type == SCH_FLAG || !sch_segment(type) || !version || !k || !val)
        return NULL;
    lk = sch_lower(k);
    lv = sch_lower(val);
    if (lk && lv)
        out = sch_join(prefix ? prefix : "schematic", sch_segment(type),
                       version, lk, lv);
    free(lk);
    free(lv);
    return out;
}

char *sch_lookup_value(const char *id)
{
    struct gj_buf b;

    if (!id)
        return NULL;
    /* SDKs json-parse the lookup value into the id string, so it is the
     * id as JSON: quotes included, escaped as Go's json.Marshal does. */
    gj_init(&b);
    gj_str(&b, id, strlen(id));
    return gj_take(&b);
}

char *sch_lower(const char *s)
{
    size_t len = strlen(s);
    char *out = malloc(UTF8_LOWER_MAX(len));

    if (!out)
        return NULL;
    utf8_lower(s, len, out);
    return out;
}
