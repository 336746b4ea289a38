/*
 * core/config.c: loading the INI configuration (with inih) and validating
 * its sections against option tables.
 *
 * Loading happens in layers. Each file is parsed on its own into a layer
 * of sections; the layer a file contributes is the merge of its includes
 * (in the order of its include lines) followed by its own keys, so an
 * included file is read first and the including file overrides it. See
 * config_merge() for the one exception, the plugin overlay rule.
 */
#include "config.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <ini.h>

#include "ferry/host.h"

/* Longest line accepted, newline excluded. inih's buffer also needs room
 * for the newline and the terminating NUL. */
#define CONFIG_LINE_MAX 65533
#define CONFIG_FILE_MAX (16 * 1024 * 1024)
#define CONFIG_INCLUDE_DEPTH 32
#define CONFIG_NAME_MAX 64

static const char *const config_kinds[] = {"ferry",  "source", "sink",
                                           "policy", "route",  NULL};

/* ---- small helpers ------------------------------------------------------ */

static void *config_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);

    if (!q) {
        fputs("ferry: out of memory\n", stderr);
        abort();
    }
    return q;
}

static char *config_xstrndup(const char *s, size_t n)
{
    char *d = config_xrealloc(NULL, n + 1);

    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static char *config_xstrdup(const char *s)
{
    return config_xstrndup(s, strlen(s));
}

static void config_err(char *err, size_t errlen, const char *fmt, ...)
    FERRY_PRINTF(3, 4);

static void config_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* A growing string. */
struct sbuf {
    char *s;
    size_t len;
    size_t cap;
};

static void sbuf_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->s = config_xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

/* ---- sections and entries ----------------------------------------------- */

static struct config_section *config_find(const struct config *cfg,
                                          const char *name)
{
    for (size_t i = 0; i < cfg->count; i++) {
        if (strcmp(cfg->sections[i].name, name) == 0)
            return &cfg->sections[i];
    }
    return NULL;
}

static struct config_section *config_add(struct config *cfg, const char *name,
                                         const char *kind, const char *inst,
                                         const char *file, int line)
{
    struct config_section *s;

    if (cfg->count == cfg->cap) {
        cfg->cap = cfg->cap ? cfg->cap * 2 : 8;
        cfg->sections =
            config_xrealloc(cfg->sections, cfg->cap * sizeof(*cfg->sections));
    }
    s = &cfg->sections[cfg->count++];
    memset(s, 0, sizeof(*s));
    s->name = config_xstrdup(name);
    s->kind = config_xstrdup(kind);
    s->inst = config_xstrdup(inst);
    s->file = config_xstrdup(file);
    s->line = line;
    return s;
}

static void section_set(struct config_section *s, const char *key,
                        const char *value, const char *file, int line)
{
    struct config_entry *e = NULL;

    for (size_t i = 0; i < s->count; i++) {
        if (strcmp(s->entries[i].key, key) == 0) {
            e = &s->entries[i];
            break;
        }
    }
    if (e) {
        free(e->value);
        free(e->file);
    } else {
        if (s->count == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 8;
            s->entries =
                config_xrealloc(s->entries, s->cap * sizeof(*s->entries));
        }
        e = &s->entries[s->count++];
        e->key = config_xstrdup(key);
    }
    e->value = config_xstrdup(value);
    e->file = config_xstrdup(file);
    e->line = line;
}

static void section_clear(struct config_section *s)
{
    for (size_t i = 0; i < s->count; i++) {
        free(s->entries[i].key);
        free(s->entries[i].value);
        free(s->entries[i].file);
    }
    s->count = 0;
}

/*
 * Merges the later layer src into dst: src's keys override dst's.
 *
 * The overlay rule: when src sets `plugin` in a section to a different
 * value than dst has, src redefines the instance and the entries the
 * earlier files gave that section are discarded first. This is what lets a
 * development overlay turn [sink.cache] from the Redis sink into the file
 * sink without inheriting Redis keys (address, password, ...) that the
 * file sink would reject as unknown. The section then counts as defined
 * where src defines it.
 */
static void config_merge(struct config *dst, const struct config *src)
{
    for (size_t i = 0; i < src->count; i++) {
        const struct config_section *ss = &src->sections[i];
        struct config_section *ds = config_find(dst, ss->name);

        if (!ds) {
            ds = config_add(dst, ss->name, ss->kind, ss->inst, ss->file,
                            ss->line);
        } else {
            const struct config_entry *was = config_entry(ds, "plugin");
            const struct config_entry *now = config_entry(ss, "plugin");

            if (was && now && strcmp(was->value, now->value) != 0) {
                section_clear(ds);
                free(ds->file);
                ds->file = config_xstrdup(ss->file);
                ds->line = ss->line;
            }
        }
        for (size_t j = 0; j < ss->count; j++) {
            const struct config_entry *e = &ss->entries[j];

            section_set(ds, e->key, e->value, e->file, e->line);
        }
    }
}

/* Frees everything cfg holds and zeroes it; accepts NULL and a cfg that
 * failed to load. */
void config_release(struct config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->count; i++) {
        struct config_section *s = &cfg->sections[i];

        section_clear(s);
        free(s->entries);
        free(s->name);
        free(s->kind);
        free(s->inst);
        free(s->file);
    }
    free(cfg->sections);
    free(cfg->path);
    memset(cfg, 0, sizeof(*cfg));
}

/* Lookups return pointers into cfg, valid until config_release(). Any
 * thread, as long as nobody loads into or releases cfg meanwhile. */
const struct config_section *config_section(const struct config *cfg,
                                            const char *name)
{
    return config_find(cfg, name);
}

const struct config_entry *config_entry(const struct config_section *s,
                                        const char *key)
{
    if (!s)
        return NULL;
    for (size_t i = 0; i < s->count; i++) {
        if (strcmp(s->entries[i].key, key) == 0)
            return &s->entries[i];
    }
    return NULL;
}

/* ---- ${VAR} expansion --------------------------------------------------- */

/*
 * Expands ${VAR}, ${VAR:-default} (default when VAR is unset or empty, as
 * in the shell) and ${VAR-default} (default only when VAR is unset) in
 * in. A '$' not followed by '{' is literal. Expanded text is not scanned
 * again. Returns a new string, or NULL with the reason in why.
 */
static char *config_expand(const char *in, char *why, size_t whylen)
{
    struct sbuf b = {0};
    const char *p = in;

    sbuf_add(&b, "", 0);
    while (*p) {
        const char *name, *q, *def = NULL, *end, *v;
        size_t n = 0, deflen = 0;
        int colon = 0;
        char *var;

        if (p[0] != '$' || p[1] != '{') {
            sbuf_add(&b, p, 1);
            p++;
            continue;
        }
        name = p + 2;
        while (isalnum((unsigned char)name[n]) || name[n] == '_')
            n++;
        q = name + n;
        if (q[0] == ':' && q[1] == '-') {
            colon = 1;
            def = q + 2;
        } else if (q[0] == '-') {
            def = q + 1;
        }
        end = strchr(def ? def : q, '}');
        if (!end) {
            config_err(why, whylen, "unterminated '${' in '%s'", in);
            goto fail;
        }
        if (n == 0 || isdigit((unsigned char)name[0]) || (!def && q != end)) {
            config_err(why, whylen,
                       "invalid variable reference '%.*s' (use ${NAME} or "
                       "${NAME:-default})",
                       (int)(end - p + 1), p);
            goto fail;
        }
        if (def)
            deflen = (size_t)(end - def);
        var = config_xstrndup(name, n);
        v = getenv(var);
        if (def && (!v || (colon && !*v))) {
            sbuf_add(&b, def, deflen);
        } else if (!v) {
            config_err(why, whylen, "environment variable '%s' is not set",
                       var);
            free(var);
            goto fail;
        } else {
            sbuf_add(&b, v, strlen(v));
        }
        free(var);
        p = end + 1;
    }
    return b.s;

fail:
    free(b.s);
    return NULL;
}

/* ---- parsing one file ---------------------------------------------------- */

/* One file on the include stack, for cycle detection. */
struct config_file {
    const char *path;
    dev_t dev;
    ino_t ino;
    const struct config_file *parent;
    int depth;
};

struct config_include {
    char *path; /* resolved against the including file's folder */
    int line;
};

struct config_parse {
    const char *path;
    const char *buf;
    size_t len;
    size_t pos;
    int lineno;
    int at_line_start;
    /* This file's own sections and keys. */
    struct config layer;
    /* Index of the current section in layer; -1 before the first. */
    long cur;
    struct config_include *inc;
    size_t ninc;
    size_t capinc;
    char *err;
    size_t errlen;
    int failed;
};

static int config_name_char(int c)
{
    return isalnum(c) || c == '_' || c == '-';
}

/* Checks a section name and opens (or reopens) it in the file's layer. */
static int config_open_section(struct config_parse *p, const char *name)
{
    const char *dot = strchr(name, '.');
    size_t klen = dot ? (size_t)(dot - name) : strlen(name);
    const char *inst = dot ? dot + 1 : "";
    char kind[CONFIG_NAME_MAX + 1];
    const char *hint;
    struct config_section *s;
    int known = 0;

    if (!*name) {
        config_err(p->err, p->errlen, "%s:%d: [] empty section name", p->path,
                   p->lineno);
        return -1;
    }
    snprintf(kind, sizeof(kind), "%.*s", (int)klen, name);
    for (int i = 0; config_kinds[i]; i++) {
        if (strcmp(kind, config_kinds[i]) == 0)
            known = 1;
    }
    if (!known) {
        hint = config_suggest(kind, config_kinds);
        if (hint)
            config_err(p->err, p->errlen,
                       "%s:%d: [%s] unknown section kind '%s' (did you "
                       "mean '%s'?)",
                       p->path, p->lineno, name, kind, hint);
        else
            config_err(p->err, p->errlen,
                       "%s:%d: [%s] unknown section kind '%s' (expected "
                       "ferry, source, sink, policy or route)",
                       p->path, p->lineno, name, kind);
        return -1;
    }
    if (strcmp(kind, "ferry") == 0 && dot) {
        config_err(p->err, p->errlen,
                   "%s:%d: [%s] section [ferry] takes no instance name",
                   p->path, p->lineno, name);
        return -1;
    }
    if (strcmp(kind, "ferry") != 0 && !dot) {
        config_err(p->err, p->errlen,
                   "%s:%d: [%s] missing instance name (expected [%s.NAME])",
                   p->path, p->lineno, name, kind);
        return -1;
    }
    if (dot && !*inst) {
        config_err(p->err, p->errlen, "%s:%d: [%s] empty instance name",
                   p->path, p->lineno, name);
        return -1;
    }
    for (const char *c = inst; *c; c++) {
        if (!config_name_char((unsigned char)*c) ||
            c - inst >= CONFIG_NAME_MAX) {
            config_err(p->err, p->errlen,
                       "%s:%d: [%s] invalid instance name '%s' (1 to %d "
                       "letters, digits, '_' or '-')",
                       p->path, p->lineno, name, inst, CONFIG_NAME_MAX);
            return -1;
        }
    }
    s = config_find(&p->layer, name);
    if (!s)
        s = config_add(&p->layer, name, kind, inst, p->path, p->lineno);
    p->cur = (long)(s - p->layer.sections);
    return 0;
}

/*
 * Looks at a whole line before inih does, to learn the section headers
 * (inih reports none, and sections without keys matter) and to refuse
 * what inih would silently mangle: over-long lines and NUL bytes. The
 * header syntax follows inih: leading white space, '[', the name up to
 * ']'. A header inih would reject (no ']') is left to inih's syntax error.
 */
static int config_observe_line(struct config_parse *p, const char *line,
                               size_t len)
{
    const char *s = line, *e = line + len;
    const char *close;
    char *name;
    int rc;

    if (len > CONFIG_LINE_MAX) {
        config_err(p->err, p->errlen,
                   "%s:%d: line is too long (more than %d characters)", p->path,
                   p->lineno, CONFIG_LINE_MAX);
        return -1;
    }
    if (memchr(line, '\0', len)) {
        config_err(p->err, p->errlen, "%s:%d: NUL byte in line", p->path,
                   p->lineno);
        return -1;
    }
    if (p->lineno == 1 && len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3;
    while (s < e && isspace((unsigned char)*s))
        s++;
    if (s == e || *s != '[')
        return 0;
    s++;
    /* inih ends the name at ']' or at an inline comment (';' after
     * white space). */
    for (close = s; close < e && *close != ']'; close++) {
        if (*close == ';' && close > s && isspace((unsigned char)close[-1]))
            return 0;
    }
    if (close == e)
        return 0;
    while (s < close && isspace((unsigned char)*s))
        s++;
    while (close > s && isspace((unsigned char)close[-1]))
        close--;
    name = config_xstrndup(s, (size_t)(close - s));
    rc = config_open_section(p, name);
    free(name);
    return rc;
}

/* An fgets-style reader for inih over the file's contents; it counts
 * lines, since this build of inih does not pass line numbers. */
static char *config_reader(char *str, int num, void *stream)
{
    struct config_parse *p = stream;
    const char *nl;
    size_t n, linelen;

    if (p->failed || p->pos >= p->len || num < 2)
        return NULL;
    nl = memchr(p->buf + p->pos, '\n', p->len - p->pos);
    linelen = nl ? (size_t)(nl - (p->buf + p->pos)) : p->len - p->pos;
    if (p->at_line_start) {
        p->lineno++;
        if (config_observe_line(p, p->buf + p->pos, linelen) < 0) {
            p->failed = 1;
            return NULL;
        }
    }
    n = nl ? linelen + 1 : linelen;
    if (n > (size_t)num - 1)
        n = (size_t)num - 1;
    memcpy(str, p->buf + p->pos, n);
    str[n] = '\0';
    p->pos += n;
    p->at_line_start = n > 0 && str[n - 1] == '\n';
    return str;
}

static char *config_include_path(const char *from, const char *name)
{
    const char *slash = strrchr(from, '/');
    struct sbuf b = {0};

    if (name[0] == '/' || !slash)
        return config_xstrdup(name);
    sbuf_add(&b, from, (size_t)(slash - from + 1));
    sbuf_add(&b, name, strlen(name));
    return b.s;
}

/* inih's handler: nonzero to go on (inih's convention), 0 on error. */
static int config_handler(void *user, const char *section, const char *name,
                          const char *value)
{
    struct config_parse *p = user;
    struct config_section *s;
    char why[512];
    char *v;

    (void)section; /* the reader tracks sections (inih truncates names) */
    if (p->cur < 0) {
        config_err(p->err, p->errlen, "%s:%d: key '%s' is outside any section",
                   p->path, p->lineno, name);
        goto fail;
    }
    s = &p->layer.sections[p->cur];
    if (!*name) {
        config_err(p->err, p->errlen, "%s:%d: [%s] empty key name", p->path,
                   p->lineno, s->name);
        goto fail;
    }
    if (strcmp(s->kind, "ferry") != 0 || strcmp(name, "include") != 0) {
        /* Expanded once every file is merged (config_expand_all), so a
         * variable used only by a key that a later file overrides need
         * not be set: etc/demo.ini includes etc/ferry.ini and replaces
         * its ${SCHEMATIC_API_KEY}. */
        section_set(s, name, value, p->path, p->lineno);
        return 1;
    }
    v = config_expand(value, why, sizeof(why));
    if (!v) {
        config_err(p->err, p->errlen, "%s:%d: [%s] %s", p->path, p->lineno,
                   s->name, why);
        goto fail;
    }
    if (!*v) {
        config_err(p->err, p->errlen, "%s:%d: [%s] include needs a file name",
                   p->path, p->lineno, s->name);
        free(v);
        goto fail;
    }
    if (p->ninc == p->capinc) {
        p->capinc = p->capinc ? p->capinc * 2 : 4;
        p->inc = config_xrealloc(p->inc, p->capinc * sizeof(*p->inc));
    }
    p->inc[p->ninc].path = config_include_path(p->path, v);
    p->inc[p->ninc].line = p->lineno;
    p->ninc++;
    free(v);
    return 1;

fail:
    p->failed = 1;
    return 0;
}

/* Reads all of f into a new buffer. Returns 0, or an errno value. */
static int config_slurp(FILE *f, char **out, size_t *outlen)
{
    struct sbuf b = {0};
    char chunk[8192];
    size_t n;

    sbuf_add(&b, "", 0);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (b.len + n > CONFIG_FILE_MAX) {
            free(b.s);
            return EFBIG;
        }
        sbuf_add(&b, chunk, n);
    }
    if (ferror(f)) {
        int e = errno ? errno : EIO;

        free(b.s);
        return e;
    }
    *out = b.s;
    *outlen = b.len;
    return 0;
}

/* Configures this build of inih (Debian's, whose options are variables):
 * a heap buffer as large as the longest accepted line, so that inih never
 * splits a line, no Python-style continuation lines (an indented line is
 * a syntax error rather than a silent append), stop at the first error. */
static void config_setup_inih(void)
{
    ini_use_stack = 0;
    ini_allow_realloc = 0;
    ini_initial_alloc = CONFIG_LINE_MAX + 3;
    ini_max_line = CONFIG_LINE_MAX + 3;
    ini_allow_multiline = 0;
    ini_allow_no_value = 0;
    ini_allow_inline_comments = 1;
    ini_stop_on_first_error = 1;
}

static void config_parse_release(struct config_parse *p)
{
    for (size_t i = 0; i < p->ninc; i++)
        free(p->inc[i].path);
    free(p->inc);
    config_release(&p->layer);
}

/*
 * Loads path into the layer out (which the caller releases). prefix is
 * what precedes an open error ("a.ini:3: [ferry] " for an include, "" for
 * the top file).
 */
static int config_load_file(const char *path, const char *prefix,
                            const struct config_file *parent,
                            struct config *out, char *err, size_t errlen)
{
    struct config_parse p;
    struct config_file self;
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    FILE *f;
    int rc, e;

    memset(&p, 0, sizeof(p));
    f = fopen(path, "r");
    if (!f) {
        config_err(err, errlen, "%s%s: cannot open: %s", prefix, path,
                   strerror(errno));
        return -1;
    }
    if (fstat(fileno(f), &st) < 0) {
        config_err(err, errlen, "%s%s: cannot open: %s", prefix, path,
                   strerror(errno));
        fclose(f);
        return -1;
    }
    self.path = path;
    self.dev = st.st_dev;
    self.ino = st.st_ino;
    self.parent = parent;
    self.depth = parent ? parent->depth + 1 : 0;
    for (const struct config_file *a = parent; a; a = a->parent) {
        if (a->dev == self.dev && a->ino == self.ino) {
            const struct config_file *chain[CONFIG_INCLUDE_DEPTH + 2];
            struct sbuf b = {0};
            int n = 0;

            for (const struct config_file *c = &self; c != a; c = c->parent)
                chain[n++] = c;
            chain[n++] = a;
            sbuf_add(&b, "", 0);
            while (n-- > 0) {
                sbuf_add(&b, chain[n]->path, strlen(chain[n]->path));
                if (n > 0)
                    sbuf_add(&b, " -> ", 4);
            }
            config_err(err, errlen, "%sinclude cycle: %s", prefix, b.s);
            free(b.s);
            fclose(f);
            return -1;
        }
    }
    if (self.depth > CONFIG_INCLUDE_DEPTH) {
        config_err(err, errlen, "%sincludes nested more than %d deep", prefix,
                   CONFIG_INCLUDE_DEPTH);
        fclose(f);
        return -1;
    }
    e = config_slurp(f, &buf, &len);
    fclose(f);
    if (e) {
        config_err(err, errlen, "%s%s: cannot read: %s", prefix, path,
                   strerror(e));
        return -1;
    }

    p.path = path;
    p.buf = buf;
    p.len = len;
    p.at_line_start = 1;
    p.cur = -1;
    p.err = err;
    p.errlen = errlen;
    config_setup_inih();
    rc = ini_parse_stream(config_reader, &p, config_handler, &p);
    if (p.failed)
        goto fail;
    if (rc == -2) {
        config_err(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    if (rc != 0) {
        if (p.cur >= 0)
            config_err(err, errlen,
                       "%s:%d: [%s] syntax error (expected 'key = value')",
                       path, rc, p.layer.sections[p.cur].name);
        else
            config_err(err, errlen,
                       "%s:%d: syntax error (expected '[section]' or "
                       "'key = value')",
                       path, rc);
        goto fail;
    }

    for (size_t i = 0; i < p.ninc; i++) {
        struct config child = {0};
        char pre[1024];

        snprintf(pre, sizeof(pre), "%s:%d: [ferry] ", path, p.inc[i].line);
        if (config_load_file(p.inc[i].path, pre, &self, &child, err, errlen) <
            0) {
            config_release(&child);
            goto fail;
        }
        config_merge(out, &child);
        config_release(&child);
    }
    config_merge(out, &p.layer);
    config_parse_release(&p);
    free(buf);
    return 0;

fail:
    config_parse_release(&p);
    free(buf);
    return -1;
}

/*
 * Returns 0, or -1 with "FILE:LINE: [section] message" (or "FILE: cannot
 * open: ...") in err; cfg is the caller's either way. Not thread-safe:
 * it sets inih's global options and reads the environment, so call it
 * from one thread at a time (startup, reload, `ferry check`).
 */
/* Expands ${VAR} in every entry that survived the merge; errors name the
 * file and line that set the entry. */
static int config_expand_all(struct config *cfg, char *err, size_t errlen)
{
    char why[512];

    for (size_t i = 0; i < cfg->count; i++) {
        struct config_section *s = &cfg->sections[i];
        for (size_t j = 0; j < s->count; j++) {
            struct config_entry *e = &s->entries[j];
            char *v = config_expand(e->value, why, sizeof(why));
            if (!v) {
                config_err(err, errlen, "%s:%d: [%s] %s", e->file, e->line,
                           s->name, why);
                return -1;
            }
            free(e->value);
            e->value = v;
        }
    }
    return 0;
}

int config_load(struct config *cfg, const char *path, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->path = config_xstrdup(path);
    if (config_load_file(path, "", NULL, cfg, err, errlen) < 0)
        return -1;
    return config_expand_all(cfg, err, errlen);
}

/* ---- value parsers ------------------------------------------------------ */

/* Each returns NULL on success or the reason the text is refused, worded
 * to follow "'TEXT' ". */

/* Reads decimal digits at *sp. Returns 0 (and advances *sp), -1 when
 * there is no digit, -2 on overflow. */
static int parse_digits(const char **sp, uint64_t *v)
{
    const char *s = *sp;
    uint64_t n = 0;

    if (!isdigit((unsigned char)*s))
        return -1;
    while (isdigit((unsigned char)*s)) {
        unsigned d = (unsigned)(*s - '0');

        if (n > (UINT64_MAX - d) / 10)
            return -2;
        n = n * 10 + d;
        s++;
    }
    *sp = s;
    *v = n;
    return 0;
}

/*
 * Durations: a bare 0, or amounts with units in descending order, each
 * unit at most once (250ms, 30s, 1h30m, 1m30s500ms). A bare number other
 * than 0 is refused: "10" could mean seconds or milliseconds.
 */
static const char *config_duration(const char *s, uint64_t *ms)
{
    /* Longest match first: "ms" before "m". */
    static const struct {
        const char *unit;
        uint64_t ms;
        int rank;
    } units[] = {
        {"ms", 1, 0}, {"h", 3600000, 3}, {"m", 60000, 2}, {"s", 1000, 1}};
    const char *bad = "is not a duration (e.g. 250ms, 30s, 5m, 1h30m)";
    const char *p = s;
    uint64_t total = 0, n;
    int last = 4;

    if (strspn(s, "0") == strlen(s) && *s) {
        *ms = 0;
        return NULL;
    }
    if (strspn(s, "0123456789") == strlen(s) && *s)
        return "needs a unit (ms, s, m, h)";
    while (*p) {
        size_t u, l = 0;
        int rc = parse_digits(&p, &n);

        if (rc == -2)
            return "is too large";
        if (rc < 0)
            return bad;
        for (u = 0; u < 4; u++) {
            l = strlen(units[u].unit);
            if (strncmp(p, units[u].unit, l) == 0)
                break;
        }
        if (u == 4) {
            if (!*p)
                return "needs a unit (ms, s, m, h)";
            return bad;
        }
        if (units[u].rank >= last)
            return bad;
        last = units[u].rank;
        p += l;
        if (n > UINT64_MAX / units[u].ms ||
            total > UINT64_MAX - n * units[u].ms)
            return "is too large";
        total += n * units[u].ms;
    }
    if (p == s)
        return bad;
    *ms = total;
    return NULL;
}

/* Sizes: a number of bytes with an optional unit, case-insensitive; K, KB
 * and KiB all mean 1024 (as in Redis and most daemons' configs). */
static const char *config_size(const char *s, uint64_t *bytes)
{
    static const struct {
        const char *unit;
        int shift;
    } units[] = {{"", 0},     {"b", 0},   {"k", 10},   {"kb", 10}, {"kib", 10},
                 {"m", 20},   {"mb", 20}, {"mib", 20}, {"g", 30},  {"gb", 30},
                 {"gib", 30}, {"t", 40},  {"tb", 40},  {"tib", 40}};
    const char *bad = "is not a size (e.g. 512, 64KB, 16MB)";
    const char *p = s;
    uint64_t n;
    int rc;

    rc = parse_digits(&p, &n);
    if (rc == -2)
        return "is too large";
    if (rc < 0)
        return bad;
    while (*p == ' ')
        p++;
    for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
        if (strcasecmp(p, units[u].unit) == 0) {
            if (n > (UINT64_MAX >> units[u].shift))
                return "is too large";
            *bytes = n << units[u].shift;
            return NULL;
        }
    }
    return bad;
}

static const char *config_bool(const char *s, int *b)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};

    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *b = 1;
            return NULL;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *b = 0;
            return NULL;
        }
    }
    return "is not a boolean (true/false, yes/no, on/off, 1/0)";
}

static const char *config_int(const char *s, int64_t *v)
{
    const char *p = s;
    uint64_t n;
    int neg = 0, rc;

    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    rc = parse_digits(&p, &n);
    if (rc == -2)
        return "is too large";
    if (rc < 0 || *p)
        return "is not an integer";
    if (neg) {
        if (n > (uint64_t)INT64_MAX + 1)
            return "is too large";
        *v = n == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)n;
    } else {
        if (n > (uint64_t)INT64_MAX)
            return "is too large";
        *v = (int64_t)n;
    }
    return NULL;
}

static const char *config_double(const char *s, double *v)
{
    char *end;
    double d;

    if (!*s || isspace((unsigned char)*s))
        return "is not a number";
    errno = 0;
    d = strtod(s, &end);
    if (*end || !isfinite(d) || errno == ERANGE)
        return "is not a number";
    *v = d;
    return NULL;
}

/* The public parsers: 0 with the value stored, or -1 leaving it alone.
 * Pure functions; any thread. */
int config_parse_duration_ms(const char *s, uint64_t *ms)
{
    return config_duration(s, ms) ? -1 : 0;
}

int config_parse_size(const char *s, uint64_t *bytes)
{
    return config_size(s, bytes) ? -1 : 0;
}

int config_parse_bool(const char *s, int *b)
{
    return config_bool(s, b) ? -1 : 0;
}

int config_parse_int(const char *s, int64_t *v)
{
    return config_int(s, v) ? -1 : 0;
}

int config_parse_double(const char *s, double *v)
{
    return config_double(s, v) ? -1 : 0;
}

/* ---- suggestions -------------------------------------------------------- */

/* Optimal string alignment distance (Levenshtein plus adjacent
 * transpositions), case-insensitive. Words longer than 64 get no hint. */
static size_t config_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d[65][65];

    if (la > 64 || lb > 64)
        return (size_t)-1;
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (unsigned char)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (unsigned char)j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            int ca = tolower((unsigned char)a[i - 1]);
            int cb = tolower((unsigned char)b[j - 1]);
            unsigned cost = ca != cb;
            unsigned v = d[i - 1][j] + 1u;

            if (d[i][j - 1] + 1u < v)
                v = d[i][j - 1] + 1u;
            if (d[i - 1][j - 1] + cost < v)
                v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == cb &&
                d[i - 2][j - 2] + 1u < v)
                v = d[i - 2][j - 2] + 1u;
            d[i][j] = (unsigned char)v;
        }
    }
    return d[la][lb];
}

/*
 * A candidate is suggested when its distance is at most a third of the
 * word's length (at least 1): one slip in a short word, more in a long
 * one, and never a random neighbour like 'url' for 'ttl'.
 */
const char *config_suggest(const char *word, const char *const *candidates)
{
    size_t limit = strlen(word) / 3, best = (size_t)-1;
    const char *hit = NULL;

    if (!candidates)
        return NULL;
    if (limit < 1)
        limit = 1;
    for (size_t i = 0; candidates[i]; i++) {
        size_t d = config_distance(word, candidates[i]);

        if (d <= limit && d < best) {
            best = d;
            hit = candidates[i];
        }
    }
    return hit;
}

/* ---- option sets -------------------------------------------------------- */

struct optval {
    int set;
    /* The effective text: the set value or the default; NULL when unset.
     * For enums, the table's spelling. */
    char *text;
    int64_t i;
    uint64_t u;
    double d;
    int b;
    /* FERRY_OPT_LIST: NULL-terminated items. */
    char **items;
    size_t nitems;
};

struct optset {
    const struct ferry_option *table;
    size_t count;
    struct optval *vals;
};

static void format_duration(char *buf, size_t len, uint64_t ms)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
    size_t off = 0;

    if (ms == 0) {
        snprintf(buf, len, "0");
        return;
    }
    buf[0] = '\0';
    for (size_t i = 0; i < 4 && off < len; i++) {
        if (ms >= units[i].ms) {
            int n =
                snprintf(buf + off, len - off, "%llu%s",
                         (unsigned long long)(ms / units[i].ms), units[i].unit);

            if (n > 0)
                off += (size_t)n;
            ms %= units[i].ms;
        }
    }
}

static void format_size(char *buf, size_t len, uint64_t n)
{
    static const char *const units[] = {"GB", "MB", "KB"};
    static const int shifts[] = {30, 20, 10};

    for (int i = 0; i < 3; i++) {
        if (n && n % ((uint64_t)1 << shifts[i]) == 0) {
            snprintf(buf, len, "%llu%s", (unsigned long long)(n >> shifts[i]),
                     units[i]);
            return;
        }
    }
    snprintf(buf, len, "%llu", (unsigned long long)n);
}

static void format_bound(char *buf, size_t len, int type, double v)
{
    switch (type) {
    case FERRY_OPT_DURATION:
        format_duration(buf, len, (uint64_t)v);
        break;
    case FERRY_OPT_SIZE:
        format_size(buf, len, (uint64_t)v);
        break;
    case FERRY_OPT_INT:
        snprintf(buf, len, "%lld", (long long)v);
        break;
    default:
        snprintf(buf, len, "%g", v);
        break;
    }
}

static void optval_release(struct optval *v)
{
    free(v->text);
    for (size_t i = 0; i < v->nitems; i++)
        free(v->items[i]);
    free(v->items);
    memset(v, 0, sizeof(*v));
}

static void config_split_list(const char *s, struct optval *v)
{
    const char *p = s;

    v->items = config_xrealloc(NULL, sizeof(char *));
    v->nitems = 0;
    for (;;) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        const char *b = p;

        while (b < end && isspace((unsigned char)*b))
            b++;
        while (end > b && isspace((unsigned char)end[-1]))
            end--;
        if (end > b) {
            v->items =
                config_xrealloc(v->items, (v->nitems + 2) * sizeof(char *));
            v->items[v->nitems++] = config_xstrndup(b, (size_t)(end - b));
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    v->items[v->nitems] = NULL;
}

/*
 * Parses text as opt's type into v (released first). Returns 0, or -1 with
 * "key: 'text' reason" (or the range) in why.
 */
static int optval_parse(const struct ferry_option *opt, const char *text,
                        struct optval *v, char *why, size_t whylen)
{
    const char *bad = NULL;
    double num = 0;
    int ranged = 0;

    optval_release(v);
    switch (opt->type) {
    case FERRY_OPT_STRING:
        break;
    case FERRY_OPT_INT:
        bad = config_int(text, &v->i);
        num = (double)v->i;
        ranged = 1;
        break;
    case FERRY_OPT_BOOL:
        bad = config_bool(text, &v->b);
        break;
    case FERRY_OPT_DURATION:
        bad = config_duration(text, &v->u);
        num = (double)v->u;
        ranged = 1;
        break;
    case FERRY_OPT_SIZE:
        bad = config_size(text, &v->u);
        num = (double)v->u;
        ranged = 1;
        break;
    case FERRY_OPT_DOUBLE:
        bad = config_double(text, &v->d);
        num = v->d;
        ranged = 1;
        break;
    case FERRY_OPT_LIST:
        config_split_list(text, v);
        break;
    case FERRY_OPT_ENUM: {
        const char *const *ev = opt->enum_values;
        const char *hint;
        struct sbuf b = {0};

        assert(ev && ev[0]);
        for (size_t i = 0; ev[i]; i++) {
            if (strcasecmp(text, ev[i]) == 0) {
                v->text = config_xstrdup(ev[i]);
                return 0;
            }
        }
        sbuf_add(&b, "", 0);
        for (size_t i = 0; ev[i]; i++) {
            if (i > 0)
                sbuf_add(&b, ", ", 2);
            sbuf_add(&b, ev[i], strlen(ev[i]));
        }
        hint = config_suggest(text, ev);
        if (hint)
            config_err(why, whylen,
                       "%s: '%s' is not one of %s (did you mean '%s'?)",
                       opt->name, text, b.s, hint);
        else
            config_err(why, whylen, "%s: '%s' is not one of %s", opt->name,
                       text, b.s);
        free(b.s);
        return -1;
    }
    default:
        assert(!"unknown option type");
        return -1;
    }
    if (bad) {
        config_err(why, whylen, "%s: '%s' %s", opt->name, text, bad);
        return -1;
    }
    if (ranged && !(opt->min == 0 && opt->max == 0) &&
        (num < opt->min || num > opt->max)) {
        char lo[64], hi[64];

        format_bound(lo, sizeof(lo), opt->type, opt->min);
        format_bound(hi, sizeof(hi), opt->type, opt->max);
        config_err(why, whylen, "%s: %s is out of range (%s..%s)", opt->name,
                   text, lo, hi);
        return -1;
    }
    v->text = config_xstrdup(text);
    return 0;
}

static int optset_is_extra(const char *key, const char *const *extra)
{
    for (size_t i = 0; extra && extra[i]; i++) {
        if (strcmp(key, extra[i]) == 0)
            return 1;
    }
    return 0;
}

static long optset_index(const struct ferry_option *table, size_t count,
                         const char *name)
{
    for (size_t i = 0; i < count; i++) {
        if (strcmp(table[i].name, name) == 0)
            return (long)i;
    }
    return -1;
}

/* Unknown key: suggests among the table's keys and the extra keys. */
static void optset_unknown(const struct config_entry *e, const char *sname,
                           const struct ferry_option *table, size_t count,
                           const char *const *extra, char *err, size_t errlen)
{
    size_t nextra = 0;
    const char **cands;
    const char *hint;

    while (extra && extra[nextra])
        nextra++;
    cands = config_xrealloc(NULL, (count + nextra + 1) * sizeof(*cands));
    for (size_t i = 0; i < count; i++)
        cands[i] = table[i].name;
    for (size_t i = 0; i < nextra; i++)
        cands[count + i] = extra[i];
    cands[count + nextra] = NULL;
    hint = config_suggest(e->key, cands);
    if (hint)
        config_err(err, errlen,
                   "%s:%d: [%s] unknown key '%s' (did you mean '%s'?)", e->file,
                   e->line, sname, e->key, hint);
    else
        config_err(err, errlen, "%s:%d: [%s] unknown key '%s'", e->file,
                   e->line, sname, e->key);
    free(cands);
}

/*
 * Returns a new optset the caller frees with optset_free(), or NULL with
 * the first error in err. Reads s and table without keeping s: the optset
 * copies every value but points to table, which must outlive it. Any
 * thread; the getters below only read and may be used from any thread.
 */
struct optset *optset_new(const struct config_section *s,
                          const char *section_name,
                          const struct ferry_option *table,
                          const char *const *extra_keys, char *err,
                          size_t errlen)
{
    struct optset *o;
    const char *sname = section_name ? section_name : (s ? s->name : "");
    char why[1024];

    assert(table);
    o = config_xrealloc(NULL, sizeof(*o));
    o->table = table;
    o->count = 0;
    while (table[o->count].name)
        o->count++;
    o->vals = config_xrealloc(NULL, (o->count + 1) * sizeof(*o->vals));
    memset(o->vals, 0, (o->count + 1) * sizeof(*o->vals));

    for (size_t i = 0; s && i < s->count; i++) {
        const struct config_entry *e = &s->entries[i];
        const struct ferry_option *opt;
        long k;

        if (optset_is_extra(e->key, extra_keys))
            continue;
        k = optset_index(table, o->count, e->key);
        if (k < 0) {
            optset_unknown(e, sname, table, o->count, extra_keys, err, errlen);
            goto fail;
        }
        opt = &table[k];
        if ((opt->flags & FERRY_OPT_REQUIRED) &&
            strspn(e->value, " \t,") == strlen(e->value)) {
            config_err(err, errlen, "%s:%d: [%s] %s: must not be empty",
                       e->file, e->line, sname, e->key);
            goto fail;
        }
        if (optval_parse(opt, e->value, &o->vals[k], why, sizeof(why))) {
            config_err(err, errlen, "%s:%d: [%s] %s", e->file, e->line, sname,
                       why);
            goto fail;
        }
        o->vals[k].set = 1;
    }

    for (size_t k = 0; k < o->count; k++) {
        const struct ferry_option *opt = &table[k];
        int rc;

        if (o->vals[k].set)
            continue;
        if (opt->flags & FERRY_OPT_REQUIRED) {
            if (s)
                config_err(err, errlen, "%s:%d: [%s] missing required key '%s'",
                           s->file, s->line, sname, opt->name);
            else
                config_err(err, errlen, "[%s] missing required key '%s'", sname,
                           opt->name);
            goto fail;
        }
        if (!opt->def)
            continue;
        rc = optval_parse(opt, opt->def, &o->vals[k], why, sizeof(why));
        /* A default that does not parse is a bug in the table. */
        assert(rc == 0 || !"invalid default in option table");
        (void)rc;
    }
    return o;

fail:
    optset_free(o);
    return NULL;
}

void optset_free(struct optset *o)
{
    if (!o)
        return;
    for (size_t i = 0; i < o->count; i++)
        optval_release(&o->vals[i]);
    free(o->vals);
    free(o);
}

/* Finds name, which must be declared with one of the two types (a
 * programming error otherwise: aborts, even without assertions). */
static const struct optval *optset_get(const struct optset *o, const char *name,
                                       int type, int type2)
{
    long k = optset_index(o->table, o->count, name);

    if (k < 0) {
        fprintf(stderr, "ferry: option '%s' is not declared\n", name);
        abort();
    }
    if (o->table[k].type != type && o->table[k].type != type2) {
        fprintf(stderr, "ferry: option '%s' read with the wrong type\n", name);
        abort();
    }
    return &o->vals[k];
}

const char *optset_str(const struct optset *o, const char *name)
{
    return optset_get(o, name, FERRY_OPT_STRING, FERRY_OPT_ENUM)->text;
}

int64_t optset_int(const struct optset *o, const char *name)
{
    return optset_get(o, name, FERRY_OPT_INT, FERRY_OPT_INT)->i;
}

int optset_bool(const struct optset *o, const char *name)
{
    return optset_get(o, name, FERRY_OPT_BOOL, FERRY_OPT_BOOL)->b;
}

uint64_t optset_duration_ms(const struct optset *o, const char *name)
{
    return optset_get(o, name, FERRY_OPT_DURATION, FERRY_OPT_DURATION)->u;
}

uint64_t optset_size(const struct optset *o, const char *name)
{
    return optset_get(o, name, FERRY_OPT_SIZE, FERRY_OPT_SIZE)->u;
}

double optset_double(const struct optset *o, const char *name)
{
    return optset_get(o, name, FERRY_OPT_DOUBLE, FERRY_OPT_DOUBLE)->d;
}

size_t optset_list(const struct optset *o, const char *name,
                   const char *const **items)
{
    static const char *const none[] = {NULL};
    const struct optval *v =
        optset_get(o, name, FERRY_OPT_LIST, FERRY_OPT_LIST);

    if (!v->items) {
        *items = none;
        return 0;
    }
    *items = (const char *const *)v->items;
    return v->nitems;
}

int optset_is_set(const struct optset *o, const char *name)
{
    long k = optset_index(o->table, o->count, name);

    return k >= 0 && o->vals[k].set;
}

int optset_has(const struct optset *o, const char *name)
{
    return optset_index(o->table, o->count, name) >= 0;
}

void optset_print(const struct optset *o, FILE *out)
{
    for (size_t k = 0; k < o->count; k++) {
        const struct ferry_option *opt = &o->table[k];
        const struct optval *v = &o->vals[k];

        if (!v->text) {
            fprintf(out, "%s =\n", opt->name);
        } else if (opt->flags & FERRY_OPT_SECRET) {
            fprintf(out, "%s = ***\n", opt->name);
        } else if (opt->type == FERRY_OPT_LIST) {
            fprintf(out, "%s =", opt->name);
            for (size_t i = 0; i < v->nitems; i++)
                fprintf(out, "%s%s", i ? ", " : " ", v->items[i]);
            fputc('\n', out);
        } else {
            fprintf(out, "%s =%s%s\n", opt->name, *v->text ? " " : "", v->text);
        }
    }
}
