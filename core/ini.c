/*
 * core/ini.c: reading the INI configuration with inih: files, includes,
 * cycle detection, the plugin overlay rule and ${VAR} expansion.
 *
 * Loading happens in layers. Each file is parsed on its own into a layer
 * of sections; the layer a file contributes is the merge of its includes
 * (in the order of its include lines) followed by its own keys, so an
 * included file is read first and the including file overrides it. See
 * config_merge() for the one exception, the plugin overlay rule.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <ini.h>

#include "config_int.h"

/* Longest line accepted, newline excluded. inih's buffer also needs room
 * for the newline and the terminating NUL. */
#define CONFIG_LINE_MAX 65533
#define CONFIG_FILE_MAX (16 * 1024 * 1024)
#define CONFIG_INCLUDE_DEPTH 32
#define CONFIG_NAME_MAX 64

static const char *const config_kinds[] = {"ferry",  "source", "sink",
                                           "policy", "route",  NULL};

/* ---- layers ----------------------------------------------------------- */

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
                config_section_clear(ds);
                free(ds->file);
                ds->file = config_xstrdup(ss->file);
                ds->line = ss->line;
            }
        }
        for (size_t j = 0; j < ss->count; j++) {
            const struct config_entry *e = &ss->entries[j];

            config_section_set(ds, e->key, e->value, e->file, e->line);
        }
    }
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

    config_sbuf_add(&b, "", 0);
    while (*p) {
        const char *name, *q, *def = NULL, *end, *v;
        size_t n = 0, deflen = 0;
        int colon = 0;
        char *var;

        if (p[0] != '$' || p[1] != '{') {
            config_sbuf_add(&b, p, 1);
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
            config_sbuf_add(&b, def, deflen);
        } else if (!v) {
            config_err(why, whylen, "environment variable '%s' is not set",
                       var);
            free(var);
            goto fail;
        } else {
            config_sbuf_add(&b, v, strlen(v));
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
    config_sbuf_add(&b, from, (size_t)(slash - from + 1));
    config_sbuf_add(&b, name, strlen(name));
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
        config_section_set(s, name, value, p->path, p->lineno);
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

    config_sbuf_add(&b, "", 0);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (b.len + n > CONFIG_FILE_MAX) {
            free(b.s);
            return EFBIG;
        }
        config_sbuf_add(&b, chunk, n);
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

/* Refuses self when it is already on the include stack (a cycle, shown
 * from the file that starts it) or nested too deep. Returns 0 or -1. */
static int config_check_nesting(const struct config_file *self,
                                const char *prefix, char *err, size_t errlen)
{
    for (const struct config_file *a = self->parent; a; a = a->parent) {
        if (a->dev == self->dev && a->ino == self->ino) {
            const struct config_file *chain[CONFIG_INCLUDE_DEPTH + 2];
            struct sbuf b = {0};
            int n = 0;

            for (const struct config_file *c = self; c != a; c = c->parent)
                chain[n++] = c;
            chain[n++] = a;
            config_sbuf_add(&b, "", 0);
            while (n-- > 0) {
                config_sbuf_add(&b, chain[n]->path, strlen(chain[n]->path));
                if (n > 0)
                    config_sbuf_add(&b, " -> ", 4);
            }
            config_err(err, errlen, "%sinclude cycle: %s", prefix, b.s);
            free(b.s);
            return -1;
        }
    }
    if (self->depth > CONFIG_INCLUDE_DEPTH) {
        config_err(err, errlen, "%sincludes nested more than %d deep", prefix,
                   CONFIG_INCLUDE_DEPTH);
        return -1;
    }
    return 0;
}

/* Opens path, fills in self (its place on the include stack under
 * parent), checks the nesting and reads the whole file into *buf (the
 * caller's to free). Returns 0, or -1 with the error in err. */
static int config_read_file(const char *path, const char *prefix,
                            const struct config_file *parent,
                            struct config_file *self, char **buf,
                            size_t *len, char *err, size_t errlen)
{
    struct stat st;
    FILE *f;
    int e;

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
    self->path = path;
    self->dev = st.st_dev;
    self->ino = st.st_ino;
    self->parent = parent;
    self->depth = parent ? parent->depth + 1 : 0;
    if (config_check_nesting(self, prefix, err, errlen) < 0) {
        fclose(f);
        return -1;
    }
    e = config_slurp(f, buf, len);
    fclose(f);
    if (e) {
        config_err(err, errlen, "%s%s: cannot read: %s", prefix, path,
                   strerror(e));
        return -1;
    }
    return 0;
}

/* Parses p->buf with inih into p->layer and p->inc. Returns 0, or -1
 * with the error in p->err. */
static int config_parse_layer(struct config_parse *p)
{
    int rc;

    config_setup_inih();
    rc = ini_parse_stream(config_reader, p, config_handler, p);
    if (p->failed)
        return -1;
    if (rc == -2) {
        config_err(p->err, p->errlen, "%s: out of memory", p->path);
        return -1;
    }
    if (rc != 0) {
        if (p->cur >= 0)
            config_err(p->err, p->errlen,
                       "%s:%d: [%s] syntax error (expected 'key = value')",
                       p->path, rc, p->layer.sections[p->cur].name);
        else
            config_err(p->err, p->errlen,
                       "%s:%d: syntax error (expected '[section]' or "
                       "'key = value')",
                       p->path, rc);
        return -1;
    }
    return 0;
}

static int config_load_file(const char *path, const char *prefix,
                            const struct config_file *parent,
                            struct config *out, char *err, size_t errlen);

/* Loads each include of p, in order, and merges it into out. Returns 0,
 * or -1 with the error in err. */
static int config_merge_includes(const struct config_parse *p,
                                 const struct config_file *self,
                                 struct config *out, char *err,
                                 size_t errlen)
{
    for (size_t i = 0; i < p->ninc; i++) {
        struct config child = {0};
        char pre[1024];

        snprintf(pre, sizeof(pre), "%s:%d: [ferry] ", p->path,
                 p->inc[i].line);
        if (config_load_file(p->inc[i].path, pre, self, &child, err,
                             errlen) < 0) {
            config_release(&child);
            return -1;
        }
        config_merge(out, &child);
        config_release(&child);
    }
    return 0;
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
    char *buf = NULL;
    size_t len = 0;

    memset(&p, 0, sizeof(p));
    if (config_read_file(path, prefix, parent, &self, &buf, &len, err,
                         errlen) < 0)
        return -1;

    p.path = path;
    p.buf = buf;
    p.len = len;
    p.at_line_start = 1;
    p.cur = -1;
    p.err = err;
    p.errlen = errlen;
    if (config_parse_layer(&p) < 0 ||
        config_merge_includes(&p, &self, out, err, errlen) < 0)
        goto fail;
    config_merge(out, &p.layer);
    config_parse_release(&p);
    free(buf);
    return 0;

fail:
    config_parse_release(&p);
    free(buf);
    return -1;
}

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

/*
 * Returns 0, or -1 with "FILE:LINE: [section] message" (or "FILE: cannot
 * open: ...") in err; cfg is the caller's either way. Not thread-safe:
 * it sets inih's global options and reads the environment, so call it
 * from one thread at a time (startup, reload, `ferry check`).
 */
int config_load(struct config *cfg, const char *path, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->path = config_xstrdup(path);
    if (config_load_file(path, "", NULL, cfg, err, errlen) < 0)
        return -1;
    return config_expand_all(cfg, err, errlen);
}
