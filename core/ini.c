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
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <ini.h>

#include "config_int.h"
#include "log.h"

/* Longest line accepted, newline excluded. inih's buffer also needs room
 * for the newline and the terminating NUL. */
#define CONFIG_LINE_MAX 65533
#define CONFIG_FILE_MAX (16 * 1024 * 1024)
#define CONFIG_INCLUDE_DEPTH 32
#define CONFIG_NAME_MAX 64

/* "env" is core/ini.c's own: see config_env_all(). */
static const char *const config_kinds[] = {"ferry", "source", "sink", "policy",
                                           "route", "env",    NULL};

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

/* Appends "$name" to the list of variables in vars ("$A, $B"), once. */
static void config_note_var(struct sbuf *vars, const char *name)
{
    const char *p = vars->s;
    size_t n = strlen(name);

    while (p && (p = strstr(p, name)) != NULL) {
        if (p > vars->s && p[-1] == '$' && (p[n] == '\0' || p[n] == ','))
            return;
        p += n;
    }
    if (vars->len)
        config_sbuf_add(vars, ", ", 2);
    config_sbuf_add(vars, "$", 1);
    config_sbuf_add(vars, name, n);
}

/*
 * Appends the negation of the boolean text to b, for ${!VAR}. Returns 0,
 * or -1 with the reason in why, which names the key and, when the value
 * came from the environment, the variable.
 */
static int config_negate(struct sbuf *b, const char *key, const char *text,
                         const char *var, int from_env, char *why,
                         size_t whylen)
{
    const char *bad;
    int v;

    bad = config_check_bool(text, &v);
    if (bad) {
        if (from_env)
            config_err(why, whylen, "%s: '%s' %s (from $%s)", key, text, bad,
                       var);
        else
            config_err(why, whylen, "%s: '%s' %s (the default of ${!%s})", key,
                       text, bad, var);
        return -1;
    }
    if (v)
        config_sbuf_add(b, "false", 5);
    else
        config_sbuf_add(b, "true", 4);
    return 0;
}

/* One ${...} reference, parsed: the variable's name, its default. */
struct config_ref {
    char *var;       /* owned */
    const char *def; /* into the text; NULL when there is none */
    size_t deflen;
    int colon;       /* ":-": the default also replaces an empty value */
    int neg;         /* "${!": the boolean negation */
    const char *end; /* the closing '}' */
};

/* Parses the reference at p ("${..."), in the value in. Returns 0, or -1
 * with the reason in why. */
static int config_parse_ref(const char *in, const char *p, struct config_ref *r,
                            char *why, size_t whylen)
{
    const char *name = p + 2, *q;
    size_t n = 0;

    memset(r, 0, sizeof(*r));
    if (*name == '!') {
        r->neg = 1;
        name++;
    }
    while (isalnum((unsigned char)name[n]) || name[n] == '_')
        n++;
    q = name + n;
    if (q[0] == ':' && q[1] == '-') {
        r->colon = 1;
        r->def = q + 2;
    } else if (q[0] == '-') {
        r->def = q + 1;
    }
    r->end = strchr(r->def ? r->def : q, '}');
    if (!r->end) {
        config_err(why, whylen, "unterminated '${' in '%s'", in);
        return -1;
    }
    if (n == 0 || isdigit((unsigned char)name[0]) || (!r->def && q != r->end)) {
        config_err(why, whylen,
                   "invalid variable reference '%.*s' (use ${NAME} or "
                   "${NAME:-default})",
                   (int)(r->end - p + 1), p);
        return -1;
    }
    if (r->def)
        r->deflen = (size_t)(r->end - r->def);
    r->var = config_xstrndup(name, n);
    return 0;
}

/* Appends what the reference r expands to onto b, noting the variable in
 * vars (may be NULL) when its value is used. Returns 0, or -1 with the
 * reason in why. */
static int config_expand_ref(const struct config_ref *r, const char *key,
                             struct sbuf *b, struct sbuf *vars, char *why,
                             size_t whylen)
{
    const char *v = getenv(r->var);
    int rc = 0;

    if (r->def && (!v || (r->colon && !*v))) {
        if (r->neg) {
            char *d = config_xstrndup(r->def, r->deflen);

            rc = config_negate(b, key, d, r->var, 0, why, whylen);
            free(d);
        } else {
            config_sbuf_add(b, r->def, r->deflen);
        }
        return rc;
    }
    if (!v) {
        config_err(why, whylen, "environment variable '%s' is not set", r->var);
        return -1;
    }
    if (vars)
        config_note_var(vars, r->var);
    if (r->neg)
        return config_negate(b, key, v, r->var, 1, why, whylen);
    config_sbuf_add(b, v, strlen(v));
    return 0;
}

/*
 * Expands ${VAR}, ${VAR:-default} (default when VAR is unset or empty, as
 * in the shell) and ${VAR-default} (default only when VAR is unset) in
 * in. ${!VAR}, ${!VAR:-default} and ${!VAR-default} expand to the boolean
 * negation of what ${VAR...} would give (true for false, and so on), so
 * that writer_lock = ${!WRITER_LOCK_DISABLED:-false} reads as the Go
 * service's variable does; a value that is not a boolean is an error.
 * (Unlike bash, '!' is not indirection.) A '$' not followed by '{' is
 * literal. Expanded text is not scanned again. The variables whose values
 * were used are added to vars (may be NULL). key names the entry in
 * errors. Returns a new string, or NULL with the reason in why.
 */
static char *config_expand(const char *in, const char *key, struct sbuf *vars,
                           char *why, size_t whylen)
{
    struct sbuf b = {0};
    const char *p = in;

    config_sbuf_add(&b, "", 0);
    while (*p) {
        struct config_ref r;
        int rc;

        if (p[0] != '$' || p[1] != '{') {
            config_sbuf_add(&b, p, 1);
            p++;
            continue;
        }
        if (config_parse_ref(in, p, &r, why, whylen) < 0)
            goto fail;
        rc = config_expand_ref(&r, key, &b, vars, why, whylen);
        free(r.var);
        if (rc < 0)
            goto fail;
        p = r.end + 1;
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
    v = config_expand(value, name, NULL, why, sizeof(why));
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
                            struct config_file *self, char **buf, size_t *len,
                            char *err, size_t errlen)
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
                                 struct config *out, char *err, size_t errlen)
{
    for (size_t i = 0; i < p->ninc; i++) {
        struct config child = {0};
        char pre[1024];

        snprintf(pre, sizeof(pre), "%s:%d: [ferry] ", p->path, p->inc[i].line);
        if (config_load_file(p->inc[i].path, pre, self, &child, err, errlen) <
            0) {
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
    if (config_read_file(path, prefix, parent, &self, &buf, &len, err, errlen) <
        0)
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
            struct sbuf vars = {0};
            char *v = config_expand(e->value, e->key, &vars, why, sizeof(why));

            if (!v) {
                config_err(err, errlen, "%s:%d: [%s] %s", e->file, e->line,
                           s->name, why);
                free(vars.s);
                return -1;
            }
            free(e->value);
            e->value = v;
            free(e->vars);
            e->vars = vars.s;
        }
    }
    return 0;
}

/* ---- [env.VAR] declarations ---------------------------------------------- */

/*
 * A section [env.VAR] declares how a file treats the environment variable
 * VAR beyond ${VAR}: etc/ferry.ini uses it for the Go service's variables
 * that ferry has no behaviour for, so that none is ignored in silence, and
 * to check variables that keys read only as part of a value (HEALTH_PORT
 * in http_listen). Its keys:
 *
 *   type   = bool, int, duration or string (default): the value must parse
 *   min, max = the range of an int
 *   match  = for a string, comma-separated fnmatch() patterns it must
 *            match, e.g. "http://?*, https://?*" (a first check, where
 *            the key that reads the variable is checked only later, by
 *            its plugin, in a message that cannot name the variable)
 *   refuse = a value that is an error (compared as the type: for a bool,
 *            refuse = true refuses TRUE, yes and 1 too); * refuses any
 *   error  = the reason given for a refused value
 *   notice = a line logged (at warn level) once per load when VAR is set
 *            and not refused, saying what ferry does instead
 *
 * Nothing happens when VAR is unset or empty (the Go service reads an
 * empty variable as unset). The value appears in the notice and in
 * errors, so do not declare a secret this way.
 */
static const char *const config_env_keys[] = {
    "type", "min", "max", "match", "refuse", "error", "notice", NULL};

/* The reason a string that matches no pattern is refused; the patterns
 * follow it in the message. */
static const char config_env_form[] = "does not have the expected form";

/* Whether text matches one of the comma-separated fnmatch() patterns in
 * list (white space around each trimmed). */
static int config_env_match(const char *list, const char *text)
{
    const char *p = list;

    for (;;) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        char *pat;
        int hit;

        while (p < end && isspace((unsigned char)*p))
            p++;
        while (end > p && isspace((unsigned char)end[-1]))
            end--;
        pat = config_xstrndup(p, (size_t)(end - p));
        hit = *pat && fnmatch(pat, text, 0) == 0;
        free(pat);
        if (hit)
            return 1;
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

/* The value of key in s, or NULL. */
static const char *config_env_get(const struct config_section *s,
                                  const char *key)
{
    const struct config_entry *e = config_entry(s, key);

    return e ? e->value : NULL;
}

/* Checks that s has only known keys. Returns 0, or -1 with the error. */
static int config_env_keys_ok(const struct config_section *s, char *err,
                              size_t errlen)
{
    for (size_t i = 0; i < s->count; i++) {
        const struct config_entry *e = &s->entries[i];
        const char *hint;
        int known = 0;

        for (size_t k = 0; config_env_keys[k]; k++) {
            if (strcmp(e->key, config_env_keys[k]) == 0)
                known = 1;
        }
        if (known)
            continue;
        hint = config_suggest(e->key, config_env_keys);
        config_err(err, errlen, "%s:%d: [%s] unknown key '%s'%s%s%s", e->file,
                   e->line, s->name, e->key, hint ? " (did you mean '" : "",
                   hint ? hint : "", hint ? "'?)" : "");
        return -1;
    }
    return 0;
}

/*
 * Parses text as the declared type; *same is set when refuse (may be
 * NULL) names the same value. Returns NULL, or the reason text is refused
 * ("is not a boolean (...)"), or "BAD_DECL" when the declaration itself
 * is wrong (its own reason in decl).
 */
static const char *config_env_parse(const struct config_section *s,
                                    const char *text, int *same, char *decl,
                                    size_t decllen)
{
    const char *type = config_env_get(s, "type");
    const char *refuse = config_env_get(s, "refuse");
    const char *bad = NULL;

    *same =
        refuse && (strcmp(refuse, "*") == 0 || strcasecmp(text, refuse) == 0);
    if (!type || strcmp(type, "string") == 0) {
        const char *match = config_env_get(s, "match");

        if (match && !config_env_match(match, text))
            return config_env_form;
        return NULL;
    }
    if (strcmp(type, "bool") == 0) {
        int v, r;

        bad = config_check_bool(text, &v);
        if (!bad && refuse && strcmp(refuse, "*") != 0) {
            if (config_check_bool(refuse, &r)) {
                config_err(decl, decllen, "refuse: '%s' is not a boolean",
                           refuse);
                return "BAD_DECL";
            }
            *same = v == r;
        }
    } else if (strcmp(type, "int") == 0) {
        const char *lo = config_env_get(s, "min");
        const char *hi = config_env_get(s, "max");
        int64_t v, min = INT64_MIN, max = INT64_MAX;

        if ((lo && config_check_int(lo, &min)) ||
            (hi && config_check_int(hi, &max))) {
            config_err(decl, decllen, "min and max must be integers");
            return "BAD_DECL";
        }
        bad = config_check_int(text, &v);
        if (!bad && (v < min || v > max))
            bad = "is out of range";
    } else if (strcmp(type, "duration") == 0) {
        uint64_t v;

        bad = config_check_duration(text, &v);
    } else {
        config_err(decl, decllen,
                   "type: '%s' is not one of bool, int, duration, string",
                   type);
        return "BAD_DECL";
    }
    return bad;
}

/* Adds a notice line to cfg. */
static void config_add_notice(struct config *cfg, const char *var,
                              const char *value, const char *text)
{
    struct sbuf b = {0};

    config_sbuf_add(&b, var, strlen(var));
    config_sbuf_add(&b, "=", 1);
    config_sbuf_add(&b, value, strlen(value));
    config_sbuf_add(&b, ": ", 2);
    config_sbuf_add(&b, text, strlen(text));
    cfg->notices = config_xrealloc(cfg->notices,
                                   (cfg->nnotices + 1) * sizeof(*cfg->notices));
    cfg->notices[cfg->nnotices++] = b.s;
}

/* Applies one [env.VAR] declaration. Returns 0, or -1 with the error
 * ("FILE:LINE: [env.VAR] ..."). */
static int config_env_apply(struct config *cfg, const struct config_section *s,
                            char *err, size_t errlen)
{
    const char *var = s->inst, *v, *bad, *why, *notice;
    char decl[256];
    int same = 0;

    if (config_env_keys_ok(s, err, errlen) < 0)
        return -1;
    v = getenv(var);
    if (!v || !*v)
        return 0;
    bad = config_env_parse(s, v, &same, decl, sizeof(decl));
    if (bad && strcmp(bad, "BAD_DECL") == 0) {
        config_err(err, errlen, "%s:%d: [%s] %s", s->file, s->line, s->name,
                   decl);
        return -1;
    }
    if (bad == config_env_form) {
        config_err(err, errlen, "%s:%d: [%s] '%s' %s (%s) (from $%s)", s->file,
                   s->line, s->name, v, bad, config_env_get(s, "match"), var);
        return -1;
    }
    if (bad) {
        config_err(err, errlen, "%s:%d: [%s] '%s' %s (from $%s)", s->file,
                   s->line, s->name, v, bad, var);
        return -1;
    }
    if (same) {
        why = config_env_get(s, "error");
        config_err(err, errlen, "%s:%d: [%s] %s=%s: %s", s->file, s->line,
                   s->name, var, v, why ? why : "is refused");
        return -1;
    }
    notice = config_env_get(s, "notice");
    if (notice)
        config_add_notice(cfg, var, v, notice);
    return 0;
}

/*
 * Applies every [env.VAR] section of cfg and removes them, so the rest of
 * the core never sees the kind. Returns 0, or -1 with the error.
 */
static int config_env_all(struct config *cfg, char *err, size_t errlen)
{
    size_t kept = 0;
    int rc = 0;

    for (size_t i = 0; i < cfg->count; i++) {
        struct config_section *s = &cfg->sections[i];

        if (strcmp(s->kind, "env") != 0) {
            cfg->sections[kept++] = *s;
            continue;
        }
        if (rc == 0 && config_env_apply(cfg, s, err, errlen) < 0)
            rc = -1;
        config_section_clear(s);
        free(s->entries);
        free(s->name);
        free(s->kind);
        free(s->inst);
        free(s->file);
    }
    cfg->count = kept;
    return rc;
}

/*
 * Logs cfg's notices, at warn level: each is a setting of the Go service
 * that ferry accepts but does not act on. The [ferry] log settings are
 * applied first (as main.c does right after loading), so the lines come
 * out in the configured format.
 */
static void config_log_notices(const struct config *cfg)
{
    const struct config_section *fs = config_find(cfg, "ferry");
    const struct config_entry *e;

    if (cfg->nnotices == 0)
        return;
    if (fs && (e = config_entry(fs, "log_format")))
        log_set_format(e->value);
    if (fs && (e = config_entry(fs, "log_level")) &&
        log_level_parse(e->value) >= 0)
        log_set_level(log_level_parse(e->value));
    for (size_t i = 0; i < cfg->nnotices; i++)
        log_write(FERRY_LOG_WARN, NULL, "%s", cfg->notices[i]);
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
    if (config_load_file(path, "", NULL, cfg, err, errlen) < 0 ||
        config_expand_all(cfg, err, errlen) < 0 ||
        config_env_all(cfg, err, errlen) < 0)
        return -1;
    config_log_notices(cfg);
    return 0;
}
