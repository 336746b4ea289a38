/*
 * core/loader.c: loading plugins with dlopen and checking their descriptor.
 *
 * A plugin's descriptor is untrusted data from another build: the loader
 * reads it field by field in the order that makes each read safe (magic,
 * ABI major and minor and struct_size first, since they sit in the first 12
 * bytes every descriptor shape has; the rest of the header only once the
 * size says it is there), and copies no more than the plugin says it has.
 * Every refusal is one line naming the file and both values.
 */
#include "loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Longest plugin (and option) name accepted. */
#define LOADER_NAME_MAX 64
/* Longest option table accepted: a guard against a table without its NULL
 * terminator. */
#define LOADER_OPTIONS_MAX 256

/* The bytes read before struct_size is checked: magic, abi_major,
 * abi_minor and struct_size itself. */
#define LOADER_PREFIX_SIZE                                                     \
    (offsetof(struct ferry_plugin_header, struct_size) + sizeof(uint32_t))

static const char *const loader_kinds[] = {NULL, "source", "sink", "policy"};

static const char *const loader_opt_types[] = {NULL,   "string",   "int",
                                               "bool", "duration", "size",
                                               "enum", "list",     "double"};

const char *loader_kind_name(int kind)
{
    if (kind < FERRY_KIND_SOURCE || kind > FERRY_KIND_POLICY)
        return NULL;
    return loader_kinds[kind];
}

int loader_kind_parse(const char *name)
{
    int k;

    if (name == NULL)
        return 0;
    for (k = FERRY_KIND_SOURCE; k <= FERRY_KIND_POLICY; k++)
        if (strcmp(name, loader_kinds[k]) == 0)
            return k;
    return 0;
}

const char *loader_opt_type_name(int type)
{
    if (type < FERRY_OPT_STRING || type > FERRY_OPT_DOUBLE)
        return NULL;
    return loader_opt_types[type];
}

char *loader_path(char *buf, size_t len, const char *dir, int kind,
                  const char *name)
{
    const char *k = loader_kind_name(kind);

    snprintf(buf, len, "%s/%s_%s.so", dir, k ? k : "unknown", name);
    return buf;
}

int loader_name_valid(const char *name)
{
    size_t i, n;

    if (name == NULL)
        return 0;
    n = strnlen(name, LOADER_NAME_MAX + 1);
    if (n == 0 || n > LOADER_NAME_MAX)
        return 0;
    for (i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

void loader_copy_desc(struct ferry_plugin *dst, const void *src,
                      size_t src_size)
{
    size_t n = src_size < sizeof(*dst) ? src_size : sizeof(*dst);

    memcpy(dst, src, n);
    memset((char *)dst + n, 0, sizeof(*dst) - n);
}

/* Checks the callbacks the plugin's kind requires. */
static int loader_check_callbacks(const char *path,
                                  const struct ferry_plugin *d, char *err,
                                  size_t errlen)
{
    const char *kind = loader_kind_name((int)d->hdr.kind);
    const char *missing = NULL;

    if (d->init == NULL)
        missing = "init";
    else if (d->fini == NULL)
        missing = "fini";
    else if (d->hdr.kind == FERRY_KIND_SOURCE && d->run == NULL)
        missing = "run";
    else if (d->hdr.kind == FERRY_KIND_SOURCE && d->stop == NULL)
        missing = "stop";
    else if (d->hdr.kind == FERRY_KIND_SINK && d->write == NULL)
        missing = "write";
    if (missing != NULL) {
        snprintf(err, errlen, "%s: %s plugin '%s' has no %s() callback", path,
                 kind, d->hdr.name, missing);
        return -1;
    }
    if (d->hdr.kind == FERRY_KIND_POLICY && d->admit == NULL &&
        d->before_write == NULL && d->after_write == NULL) {
        snprintf(err, errlen,
                 "%s: policy plugin '%s' has none of admit(), "
                 "before_write(), after_write()",
                 path, d->hdr.name);
        return -1;
    }
    return 0;
}

/* Checks the option table: terminated, names valid and unique, types
 * known, enums with values. */
static int loader_check_options(const char *path, const struct ferry_plugin *d,
                                char *err, size_t errlen)
{
    const struct ferry_option *o = d->options;
    size_t i, j;

    if (o == NULL)
        return 0;
    for (i = 0; o[i].name != NULL; i++) {
        if (i == LOADER_OPTIONS_MAX) {
            snprintf(err, errlen,
                     "%s: option table has more than %d entries "
                     "(missing NULL terminator?)",
                     path, LOADER_OPTIONS_MAX);
            return -1;
        }
        if (!loader_name_valid(o[i].name)) {
            snprintf(err, errlen, "%s: option %zu has an invalid name '%.*s'",
                     path, i + 1, LOADER_NAME_MAX, o[i].name);
            return -1;
        }
        if (loader_opt_type_name(o[i].type) == NULL) {
            snprintf(err, errlen, "%s: option '%s' has unknown type %d", path,
                     o[i].name, o[i].type);
            return -1;
        }
        if (o[i].type == FERRY_OPT_ENUM &&
            (o[i].enum_values == NULL || o[i].enum_values[0] == NULL)) {
            snprintf(err, errlen, "%s: enum option '%s' has no values", path,
                     o[i].name);
            return -1;
        }
        for (j = 0; j < i; j++) {
            if (strcmp(o[i].name, o[j].name) == 0) {
                snprintf(err, errlen, "%s: option '%s' is declared twice", path,
                         o[i].name);
                return -1;
            }
        }
    }
    return 0;
}

/* The size of the symbol at addr as the ELF symbol table records it, or 0
 * when unknown. */
static size_t loader_symbol_size(const void *addr)
{
    Dl_info info;
    const ElfW(Sym) *sym = NULL;

    if (dladdr1(addr, &info, (void **)&sym, RTLD_DL_SYMENT) == 0 ||
        sym == NULL || info.dli_saddr != addr || info.dli_sname == NULL ||
        strcmp(info.dli_sname, "ferry_plugin") != 0)
        return 0;
    return (size_t)sym->st_size;
}

int loader_check_desc(const char *path, const void *sym, size_t sym_size,
                      int expect_kind, struct ferry_plugin *out, char *err,
                      size_t errlen)
{
    const struct ferry_plugin_header *h = sym;
    const char *kind, *want;
    uint32_t size;

    if (sym_size != 0 && sym_size < LOADER_PREFIX_SIZE) {
        snprintf(err, errlen,
                 "%s: 'ferry_plugin' is %zu bytes, too small to be a "
                 "ferry plugin descriptor",
                 path, sym_size);
        return -1;
    }
    if (h->magic != FERRY_PLUGIN_MAGIC) {
        snprintf(err, errlen, "%s: bad magic 0x%08" PRIx32 ", expected 0x%08x",
                 path, h->magic, FERRY_PLUGIN_MAGIC);
        return -1;
    }
    if (h->abi_major != FERRY_ABI_MAJOR) {
        snprintf(err, errlen, "%s: ABI major %u, core supports %d", path,
                 (unsigned)h->abi_major, FERRY_ABI_MAJOR);
        return -1;
    }
    if (h->abi_minor > FERRY_ABI_MINOR) {
        snprintf(err, errlen, "%s: ABI minor %u is newer than the core's %d",
                 path, (unsigned)h->abi_minor, FERRY_ABI_MINOR);
        return -1;
    }
    size = h->struct_size;
    if (size < FERRY_PLUGIN_SIZE_1_0) {
        snprintf(err, errlen,
                 "%s: descriptor size %" PRIu32
                 " is smaller than the first released size %zu",
                 path, size, (size_t)FERRY_PLUGIN_SIZE_1_0);
        return -1;
    }
    if (sym_size != 0 && sym_size < size && sym_size < sizeof(*out)) {
        snprintf(err, errlen,
                 "%s: descriptor size %" PRIu32
                 " is larger than its symbol 'ferry_plugin' (%zu bytes)",
                 path, size, sym_size);
        return -1;
    }
    /* From here on the whole header is known to be there. */
    kind = loader_kind_name((int)h->kind);
    if (kind == NULL) {
        snprintf(err, errlen, "%s: unknown plugin kind %" PRIu32, path,
                 h->kind);
        return -1;
    }
    want = loader_kind_name(expect_kind);
    if (expect_kind != 0 && (int)h->kind != expect_kind) {
        snprintf(err, errlen, "%s: plugin kind '%s', expected '%s'", path, kind,
                 want ? want : "?");
        return -1;
    }
    if (h->name == NULL || h->name[0] == '\0') {
        snprintf(err, errlen, "%s: plugin name is empty", path);
        return -1;
    }
    if (!loader_name_valid(h->name)) {
        snprintf(err, errlen,
                 "%s: plugin name '%.*s' is not a valid name (1 to %d "
                 "letters, digits, '_' or '-')",
                 path, LOADER_NAME_MAX, h->name, LOADER_NAME_MAX);
        return -1;
    }
    loader_copy_desc(out, sym, size);
    if (loader_check_callbacks(path, out, err, errlen) != 0 ||
        loader_check_options(path, out, err, errlen) != 0)
        return -1;
    return 0;
}

/* dlerror() usually starts with the file name again; drop it. */
static const char *loader_dlerror(const char *dlpath)
{
    const char *e = dlerror();
    size_t n = strlen(dlpath);

    if (e == NULL)
        return "unknown error";
    if (strncmp(e, dlpath, n) == 0 && strncmp(e + n, ": ", 2) == 0)
        return e + n + 2;
    return e;
}

struct plugin *loader_open(const char *path, int expect_kind, char *err,
                           size_t errlen)
{
    struct plugin *p;
    const void *sym;
    char *dlpath;

    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    p->path = strdup(path);
    /* Without a slash dlopen searches the library path, not the current
     * directory: `ferry inspect sink_null.so` means the file here. */
    if (strchr(path, '/') == NULL) {
        if (asprintf(&dlpath, "./%s", path) < 0)
            dlpath = NULL;
    } else {
        dlpath = strdup(path);
    }
    if (p->path == NULL || dlpath == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail_path;
    }
    p->dl = dlopen(dlpath, RTLD_NOW | RTLD_LOCAL);
    if (p->dl == NULL) {
        snprintf(err, errlen, "%s: cannot load: %s", path,
                 loader_dlerror(dlpath));
        goto fail_path;
    }
    sym = dlsym(p->dl, "ferry_plugin");
    if (sym == NULL) {
        snprintf(err, errlen,
                 "%s: no 'ferry_plugin' symbol (is it a ferry plugin?)", path);
        goto fail_dl;
    }
    if (loader_check_desc(path, sym, loader_symbol_size(sym), expect_kind,
                          &p->desc, err, errlen) != 0)
        goto fail_dl;
    free(dlpath);
    return p;

fail_dl:
    dlclose(p->dl);
fail_path:
    free(dlpath);
    free(p->path);
    free(p);
    return NULL;
}

void loader_close(struct plugin *p)
{
    if (p == NULL)
        return;
    if (p->dl != NULL)
        dlclose(p->dl);
    free(p->path);
    free(p);
}

/* ---- plugin sets --------------------------------------------------------- */

struct plugin_set {
    char *dir;
    struct plugin **items;
    size_t count;
    size_t cap;
};

struct plugin_set *plugin_set_new(const char *dir)
{
    struct plugin_set *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->dir = strdup(dir ? dir : ".");
    if (s->dir == NULL) {
        free(s);
        return NULL;
    }
    return s;
}

static struct plugin *plugin_set_find(const struct plugin_set *s, int kind,
                                      const char *name)
{
    size_t i;

    for (i = 0; i < s->count; i++)
        if ((int)s->items[i]->desc.hdr.kind == kind &&
            strcmp(s->items[i]->desc.hdr.name, name) == 0)
            return s->items[i];
    return NULL;
}

/* A file named <kind>_<name>.so must call itself name. */
static int plugin_set_check_name(const struct plugin *p, const char *want_name,
                                 char *err, size_t errlen)
{
    if (want_name == NULL || strcmp(p->desc.hdr.name, want_name) == 0)
        return 0;
    snprintf(err, errlen,
             "%s: plugin name '%s' does not match the file name "
             "(expected '%s')",
             p->path, p->desc.hdr.name, want_name);
    return -1;
}

/* plugin_set_add(), and when want_name is not NULL, refuses a file whose
 * descriptor names another plugin. */
static struct plugin *plugin_set_load(struct plugin_set *s, const char *path,
                                      int expect_kind, const char *want_name,
                                      char *err, size_t errlen)
{
    struct plugin *p, *dup;
    size_t i;

    for (i = 0; i < s->count; i++) {
        p = s->items[i];
        if (strcmp(p->path, path) != 0)
            continue;
        if (expect_kind != 0 && (int)p->desc.hdr.kind != expect_kind) {
            const char *want = loader_kind_name(expect_kind);
            snprintf(err, errlen, "%s: plugin kind '%s', expected '%s'", path,
                     loader_kind_name((int)p->desc.hdr.kind),
                     want ? want : "?");
            return NULL;
        }
        if (plugin_set_check_name(p, want_name, err, errlen) != 0)
            return NULL;
        return p;
    }
    p = loader_open(path, expect_kind, err, errlen);
    if (p == NULL)
        return NULL;
    if (plugin_set_check_name(p, want_name, err, errlen) != 0)
        goto fail;
    dup = plugin_set_find(s, (int)p->desc.hdr.kind, p->desc.hdr.name);
    if (dup != NULL) {
        snprintf(err, errlen,
                 "%s: plugin name '%s' (%s) is already loaded from %s", path,
                 p->desc.hdr.name, loader_kind_name((int)p->desc.hdr.kind),
                 dup->path);
        goto fail;
    }
    if (s->count == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        struct plugin **items = realloc(s->items, cap * sizeof(*items));
        if (items == NULL) {
            snprintf(err, errlen, "%s: out of memory", path);
            goto fail;
        }
        s->items = items;
        s->cap = cap;
    }
    s->items[s->count++] = p;
    return p;

fail:
    loader_close(p);
    return NULL;
}

struct plugin *plugin_set_add(struct plugin_set *s, const char *path,
                              int expect_kind, char *err, size_t errlen)
{
    return plugin_set_load(s, path, expect_kind, NULL, err, errlen);
}

struct plugin *plugin_set_get(struct plugin_set *s, int kind, const char *name,
                              char *err, size_t errlen)
{
    struct plugin *p;
    char path[4096];

    if (loader_kind_name(kind) == NULL) {
        snprintf(err, errlen, "unknown plugin kind %d", kind);
        return NULL;
    }
    if (!loader_name_valid(name)) {
        snprintf(err, errlen,
                 "plugin name '%s' is not a valid name (1 to %d letters, "
                 "digits, '_' or '-')",
                 name ? name : "", LOADER_NAME_MAX);
        return NULL;
    }
    /* A plugin of that name loaded by path is not the folder's file: the
     * folder's file is loaded and refused as a duplicate, as it is when
     * the name comes first. */
    p = plugin_set_find(s, kind, name);
    if (p != NULL && !p->by_path)
        return p;
    loader_path(path, sizeof(path), s->dir, kind, name);
    return plugin_set_load(s, path, kind, name, err, errlen);
}

int loader_ref_is_path(const char *value)
{
    size_t n;

    if (value == NULL)
        return 0;
    n = strlen(value);
    return strchr(value, '/') != NULL ||
           (n > 3 && strcmp(value + n - 3, ".so") == 0);
}

/* value joined to the folder of cfg_file unless value is absolute or
 * cfg_file has no folder, canonical when the file exists. malloc'd, or
 * NULL when out of memory. */
static char *loader_resolve_file(const char *value, const char *cfg_file)
{
    const char *slash = cfg_file ? strrchr(cfg_file, '/') : NULL;
    char *joined, *real;

    if (value[0] == '/' || slash == NULL) {
        joined = strdup(value);
    } else if (asprintf(&joined, "%.*s/%s", (int)(slash - cfg_file), cfg_file,
                        value) < 0) {
        joined = NULL;
    }
    if (joined == NULL)
        return NULL;
    /* A missing file keeps the joined path, so that the error names
     * where the loader looked. */
    real = realpath(joined, NULL);
    if (real == NULL)
        return joined;
    free(joined);
    return real;
}

struct plugin *plugin_set_ref(struct plugin_set *s, int kind, const char *value,
                              const char *cfg_file, char *err, size_t errlen)
{
    struct plugin *p;
    char *path;

    if (!loader_ref_is_path(value))
        return plugin_set_get(s, kind, value, err, errlen);
    path = loader_resolve_file(value, cfg_file);
    if (path == NULL) {
        snprintf(err, errlen, "%s: out of memory", value);
        return NULL;
    }
    p = plugin_set_load(s, path, kind, NULL, err, errlen);
    if (p != NULL)
        p->by_path = 1;
    free(path);
    return p;
}

char *loader_default_dir(void)
{
    char exe[PATH_MAX], *slash, *dir;
    struct stat st;
    ssize_t n;

    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return strdup(FERRY_PLUGIN_DIR);
    exe[n] = '\0';
    slash = strrchr(exe, '/');
    if (slash == NULL)
        return strdup(FERRY_PLUGIN_DIR);
    *slash = '\0';
    /* <prefix>/bin/ferry finds <prefix>/lib/ferry/plugins. The path is
     * shown to users, so the "bin/.." is folded away when it can be. */
    slash = strrchr(exe, '/');
    if (slash != NULL && strcmp(slash, "/bin") == 0) {
        *slash = '\0';
        if (asprintf(&dir, "%s/lib/ferry/plugins", exe) < 0)
            return NULL;
    } else if (asprintf(&dir, "%s/../lib/ferry/plugins", exe) < 0) {
        return NULL;
    }
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
        return dir;
    free(dir);
    return strdup(FERRY_PLUGIN_DIR);
}

void plugin_set_free(struct plugin_set *s)
{
    size_t i;

    if (s == NULL)
        return;
    for (i = s->count; i > 0; i--)
        loader_close(s->items[i - 1]);
    free(s->items);
    free(s->dir);
    free(s);
}

/* ---- commands ------------------------------------------------------------ */

static int loader_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int loader_is_so(const char *name)
{
    size_t n = strlen(name);

    return n > 3 && strcmp(name + n - 3, ".so") == 0;
}

int loader_cmd_plugins(const char *dir)
{
    struct plugin_set *set;
    struct dirent *de;
    char **names = NULL;
    size_t count = 0, cap = 0, i;
    DIR *d;
    int rc = 0;

    d = opendir(dir);
    if (d == NULL) {
        fprintf(stderr, "ferry: cannot read plugin directory %s: %s\n", dir,
                strerror(errno));
        return 2;
    }
    while ((de = readdir(d)) != NULL) {
        if (!loader_is_so(de->d_name))
            continue;
        if (count == cap) {
            char **n2;
            cap = cap ? cap * 2 : 16;
            n2 = realloc(names, cap * sizeof(*names));
            if (n2 == NULL)
                goto oom;
            names = n2;
        }
        names[count] = strdup(de->d_name);
        if (names[count] == NULL)
            goto oom;
        count++;
    }
    closedir(d);
    d = NULL;
    if (count > 0)
        qsort(names, count, sizeof(*names), loader_cmp_str);

    /* One set, so that a second file with a name already listed shows the
     * duplicate refusal the daemon would give. */
    set = plugin_set_new(dir);
    if (set == NULL)
        goto oom;
    for (i = 0; i < count; i++) {
        char path[4096], err[512];
        const struct plugin *p;

        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        p = plugin_set_add(set, path, 0, err, sizeof(err));
        if (p == NULL) {
            printf("refused %s\n", err);
            continue;
        }
        printf("%-7s %-9s %-6s ABI %u.%u  %s\n",
               loader_kind_name((int)p->desc.hdr.kind), p->desc.hdr.name,
               p->desc.version ? p->desc.version : "-",
               (unsigned)p->desc.hdr.abi_major, (unsigned)p->desc.hdr.abi_minor,
               p->desc.description ? p->desc.description : "");
    }
    plugin_set_free(set);
    goto out;

oom:
    fprintf(stderr, "ferry: out of memory\n");
    rc = 2;
out:
    if (d != NULL)
        closedir(d);
    for (i = 0; i < count; i++)
        free(names[i]);
    free(names);
    fflush(stdout);
    return rc;
}

/* Formats a number of milliseconds the way the configuration writes it. */
static void loader_fmt_ms(char *buf, size_t len, double ms)
{
    uint64_t v = (uint64_t)ms;

    if (v != 0 && v % 3600000 == 0)
        snprintf(buf, len, "%" PRIu64 "h", v / 3600000);
    else if (v != 0 && v % 60000 == 0)
        snprintf(buf, len, "%" PRIu64 "m", v / 60000);
    else if (v != 0 && v % 1000 == 0)
        snprintf(buf, len, "%" PRIu64 "s", v / 1000);
    else
        snprintf(buf, len, "%" PRIu64 "ms", v);
}

static void loader_fmt_num(char *buf, size_t len, int type, double v)
{
    if (type == FERRY_OPT_DURATION)
        loader_fmt_ms(buf, len, v);
    else if (type == FERRY_OPT_DOUBLE)
        snprintf(buf, len, "%.15g", v);
    else
        snprintf(buf, len, "%.0f", v);
}

/* The range or allowed values of an option ("" when it has none). */
static void loader_fmt_range(char *buf, size_t len,
                             const struct ferry_option *o)
{
    size_t used = 0;
    int i;

    buf[0] = '\0';
    if (o->type == FERRY_OPT_ENUM && o->enum_values != NULL) {
        for (i = 0; o->enum_values[i] != NULL && used < len; i++) {
            int n = snprintf(buf + used, len - used, "%s%s", i ? "|" : "",
                             o->enum_values[i]);
            if (n < 0)
                break;
            used += (size_t)n;
        }
        return;
    }
    if ((o->type == FERRY_OPT_INT || o->type == FERRY_OPT_DOUBLE ||
         o->type == FERRY_OPT_DURATION || o->type == FERRY_OPT_SIZE) &&
        !(o->min == 0 && o->max == 0)) {
        char lo[32], hi[32];
        loader_fmt_num(lo, sizeof(lo), o->type, o->min);
        loader_fmt_num(hi, sizeof(hi), o->type, o->max);
        snprintf(buf, len, "%s..%s", lo, hi);
    }
}

/* Writes s with Markdown table cells' '|' escaped. */
static void loader_md_cell(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            fputs("\\|", out);
        else
            fputc(*s, out);
    }
}

/* Writes text as a sentence: with a full stop unless it has one. */
static void loader_md_sentence(FILE *out, const char *text)
{
    size_t n = text ? strlen(text) : 0;

    if (n == 0)
        return;
    loader_md_cell(out, text);
    if (text[n - 1] != '.')
        fputc('.', out);
}

void loader_options_markdown(FILE *out, const char *title,
                             const char *description,
                             const struct ferry_option *table)
{
    const struct ferry_option *o;
    char range[256];

    fprintf(out, "### %s\n\n", title);
    if (description != NULL) {
        loader_md_cell(out, description);
        fprintf(out, "\n\n");
    }
    if (table == NULL || table[0].name == NULL) {
        fprintf(out, "No options.\n");
        return;
    }
    fprintf(out, "| key | type | default | description |\n");
    fprintf(out, "| --- | --- | --- | --- |\n");
    for (o = table; o->name != NULL; o++) {
        loader_fmt_range(range, sizeof(range), o);
        fprintf(out, "| `%s` | %s | ", o->name, loader_opt_type_name(o->type));
        if (o->flags & FERRY_OPT_REQUIRED)
            fprintf(out, "required");
        else if (o->def != NULL && o->def[0] != '\0') {
            fprintf(out, "`");
            loader_md_cell(out, o->def);
            fprintf(out, "`");
        } else {
            fprintf(out, "(unset)");
        }
        fprintf(out, " | ");
        loader_md_sentence(out, o->description);
        if (range[0] != '\0') {
            fprintf(out, o->type == FERRY_OPT_ENUM ? " One of: `"
                                                   : " Range: `");
            loader_md_cell(out, range);
            fprintf(out, "`.");
        }
        if (o->flags & FERRY_OPT_SECRET)
            fprintf(out, " Secret.");
        fprintf(out, " |\n");
    }
}

static void loader_inspect_markdown(const struct plugin *p)
{
    const struct ferry_plugin *d = &p->desc;
    char title[128];

    snprintf(title, sizeof(title), "%s.%s",
             loader_kind_name((int)d->hdr.kind), d->hdr.name);
    loader_options_markdown(stdout, title, d->description, d->options);
}

static void loader_inspect_text(const struct plugin *p)
{
    const struct ferry_plugin *d = &p->desc;
    const struct ferry_option *o;
    char range[256];
    size_t wname = 4, wdef = 7, wrange = 5;

    printf("file:         %s\n", p->path);
    printf("name:         %s\n", d->hdr.name);
    printf("kind:         %s\n", loader_kind_name((int)d->hdr.kind));
    printf("version:      %s\n", d->version ? d->version : "-");
    printf("ABI:          %u.%u\n", (unsigned)d->hdr.abi_major,
           (unsigned)d->hdr.abi_minor);
    printf("struct size:  %" PRIu32 " bytes (core: %zu)\n", d->hdr.struct_size,
           sizeof(struct ferry_plugin));
    printf("build:        %s\n", d->hdr.build ? d->hdr.build : "-");
    printf("description:  %s\n", d->description ? d->description : "");
    printf("options:");
    if (d->options == NULL || d->options[0].name == NULL) {
        printf("      none\n");
        return;
    }
    printf("\n");
    for (o = d->options; o->name != NULL; o++) {
        loader_fmt_range(range, sizeof(range), o);
        if (strlen(o->name) > wname)
            wname = strlen(o->name);
        if (o->def != NULL && strlen(o->def) > wdef)
            wdef = strlen(o->def);
        if (strlen(range) > wrange)
            wrange = strlen(range);
    }
    printf("  %-*s  %-8s  %-*s  %-*s  %-8s  %s\n", (int)wname, "NAME", "TYPE",
           (int)wdef, "DEFAULT", (int)wrange, "RANGE", "FLAGS", "DESCRIPTION");
    for (o = d->options; o->name != NULL; o++) {
        const char *flags = "-";
        if ((o->flags & FERRY_OPT_SECRET) && (o->flags & FERRY_OPT_REQUIRED))
            flags = "req,sec";
        else if (o->flags & FERRY_OPT_SECRET)
            flags = "secret";
        else if (o->flags & FERRY_OPT_REQUIRED)
            flags = "required";
        loader_fmt_range(range, sizeof(range), o);
        printf("  %-*s  %-8s  %-*s  %-*s  %-8s  %s\n", (int)wname, o->name,
               loader_opt_type_name(o->type), (int)wdef, o->def ? o->def : "-",
               (int)wrange, range[0] ? range : "-", flags,
               o->description ? o->description : "");
    }
}

int loader_cmd_inspect(const char *path, int markdown)
{
    struct plugin *p;
    char err[512];

    p = loader_open(path, 0, err, sizeof(err));
    if (p == NULL) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    if (markdown)
        loader_inspect_markdown(p);
    else
        loader_inspect_text(p);
    fflush(stdout);
    loader_close(p);
    return 0;
}
