/*
 * plugins/lib/schematic/normalize.c: the entity API's normalising entry
 * points (schematic.h): sch_entity_normalize, sch_entity_keys,
 * sch_flags_each. Each
 * parses its payload once (jv_parse) and learns the id, flag key and keys
 * map while write.c writes them.
 */
#include "schematic/schematic.h"

#include <stdlib.h>
#include <string.h>

#include "schematic/write.h"

void sch_entity_release(struct sch_entity *e)
{
    size_t i;

    if (!e)
        return;
    free(e->json);
    free(e->id);
    free(e->flag_key);
    for (i = 0; i < e->nkeys; i++) {
        free(e->keys[i].key);
        free(e->keys[i].value);
    }
    free(e->keys);
    memset(e, 0, sizeof(*e));
}

/* Completes an entity written into b with c->cap == out: checks its id
 * (Go's reference skips an entity without one), drops an empty flag key
 * and moves the text into out. */
int sch_ent_finish(struct sch_ctx *c, struct gj_buf *b, struct sch_entity *out)
{
    c->cap_keys = 0;
    c->cap = NULL;
    if (!out->id || !*out->id) {
        sch_fail(c, "id is missing or empty");
        return -1;
    }
    if (out->flag_key && !*out->flag_key) {
        free(out->flag_key);
        out->flag_key = NULL;
    }
    out->len = b->len;
    out->json = gj_take(b);
    return 0;
}

/* Normalises object root as structure s into out (released on failure). */
int sch_ent_write(struct sch_ctx *c, const struct sch_schema *s,
                  const struct jv *root, struct sch_entity *out)
{
    struct gj_buf b;

    gj_init(&b);
    c->cap = out;
    if (sch_write_struct(c, &b, s, root, NULL, NULL, 0) < 0 ||
        sch_ent_finish(c, &b, out) < 0) {
        c->cap = NULL;
        gj_release(&b);
        sch_entity_release(out);
        return -1;
    }
    return 0;
}

/* The id, flag key and keys of object root read leniently (the decoding
 * rules of the normaliser, but no member type is an error). */
void sch_ent_keys_of(enum sch_type type, const struct jv *root,
                     struct sch_entity *out)
{
    const struct sch_schema *s = sch_schema_of(type);
    const struct jv *slot[SCH_MAX_FIELDS];
    struct sch_ctx c;
    size_t i, n;

    sch_jv_slots(s, root, slot);
    sch_ctx_init(&c, NULL, 0);
    c.cap = out;
    for (i = 0; i < s->n; i++) {
        const struct jv *v = slot[i];
        const char *name = s->fields[i].name;
        struct sch_mapent *kv;

        if (!v)
            continue;
        if (v->type == JV_STR && *v->u.s && !strcmp(name, "id"))
            out->id = sch_check(strdup(v->u.s));
        if (v->type == JV_STR && *v->u.s && !strcmp(name, "key"))
            out->flag_key = sch_check(strdup(v->u.s));
        if (v->type == JV_OBJ && !strcmp(name, "keys") &&
            sch_map_members(&c, v, NULL, &kv, &n) == 0) {
            sch_cap_map(&c, kv, n);
            free(kv);
        }
    }
}

/* Parses json as an object for entity type `type` (what names the
 * object in an error). Returns the document or NULL. */
struct jv_doc *sch_ent_parse(struct sch_ctx *c, const char *json, size_t len,
                             const char *what, const struct jv **root)
{
    struct jv_doc *doc = jv_parse(json, len, root, c->err, c->errlen);

    if (!doc) {
        c->failed = 1;
        return NULL;
    }
    if ((*root)->type != JV_OBJ) {
        sch_fail(c, "%s is not an object", what);
        jv_free(doc);
        return NULL;
    }
    return doc;
}

int sch_entity_normalize(enum sch_type type, const char *json, size_t len,
                         struct sch_entity *out, char *err, size_t errlen)
{
    const struct sch_schema *s = sch_schema_of(type);
    const struct jv *root;
    struct jv_doc *doc;
    struct sch_ctx c;
    int rc;

    memset(out, 0, sizeof(*out));
    sch_ctx_init(&c, err, errlen);
    if (!s) {
        sch_fail(&c, "unknown entity type %d", (int)type);
        return -1;
    }
    doc = sch_ent_parse(&c, json, len, s->name, &root);
    if (!doc)
        return -1;
    rc = sch_ent_write(&c, s, root, out);
    jv_free(doc);
    return rc;
}

int sch_entity_keys(enum sch_type type, const char *json, size_t len,
                    struct sch_entity *out, char *err, size_t errlen)
{
    const struct sch_schema *s = sch_schema_of(type);
    const struct jv *root;
    struct jv_doc *doc;
    struct sch_ctx c;

    memset(out, 0, sizeof(*out));
    sch_ctx_init(&c, err, errlen);
    if (!s) {
        sch_fail(&c, "unknown entity type %d", (int)type);
        return -1;
    }
    doc = sch_ent_parse(&c, json, len, s->name, &root);
    if (!doc)
        return -1;
    sch_ent_keys_of(type, root, out);
    jv_free(doc);
    return 0;
}

/* For an invalid snapshot element: its "key" member when it is a
 * non-empty string (exact name, the last one wins), so that a sink can
 * keep that flag's cached value instead of evicting it. */
static void sch_flag_key_lenient(const struct jv *item, struct sch_entity *f)
{
    const char *key = NULL;
    uint32_t i;

    if (item->type != JV_OBJ)
        return;
    for (i = 0; i < item->n; i++) {
        const struct jv_member *mb = &item->u.members[i];

        if (strcmp(mb->key, "key") == 0)
            key = mb->val.type == JV_STR && mb->val.n > 0 ? mb->val.u.s : NULL;
    }
    if (key)
        f->flag_key = strdup(key);
    if (key && !f->flag_key)
        abort();
}

int sch_flags_each(const char *json, size_t len,
                   int (*each)(void *arg, struct sch_entity *flag,
                               const char *why),
                   void *arg, char *err, size_t errlen)
{
    const struct jv *root;
    struct jv_doc *doc;
    struct sch_ctx c;
    uint32_t i;
    int r = 0;

    sch_ctx_init(&c, err, errlen);
    doc = jv_parse(json, len, &root, err, errlen);
    if (!doc)
        return -1;
    if (root->type != JV_ARR) {
        sch_fail(&c, "flags snapshot is not a JSON array");
        jv_free(doc);
        return -1;
    }
    for (i = 0; i < root->n && r == 0; i++) {
        const struct jv *item = &root->u.items[i];
        struct sch_entity f;
        struct sch_ctx ec;
        char why[256];
        int rc = -1;

        memset(&f, 0, sizeof(f));
        sch_ctx_init(&ec, why, sizeof(why));
        if (item->type != JV_OBJ)
            sch_fail(&ec, "%s is not an object", sch_schema_flag.name);
        else
            rc = sch_ent_write(&ec, &sch_schema_flag, item, &f);
        if (rc < 0)
            sch_flag_key_lenient(item, &f);
        r = each(arg, &f, rc == 0 ? NULL : why);
        sch_entity_release(&f);
    }
    jv_free(doc);
    return r;
}
