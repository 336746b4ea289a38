/*
 * tests/unit/test_loader.c: the plugin loader against the fixture plugins
 * in tests/plugins/ (built to $BUILD/tests/plugins/NAME.so): each broken one
 * is refused with its own message, the good ones load with their
 * descriptor copied exactly, and `ferry plugins` / `ferry inspect` print
 * what they should.
 *
 * Run from the repository root; BUILD names the build directory (default
 * "build").
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loader.h"

static char fixture_buf[8][512];
static int fixture_next;

/* "$BUILD/tests/plugins/<name>.so"; valid for the next 7 calls. */
static const char *fixture(const char *name)
{
    const char *build = getenv("BUILD");
    char *buf = fixture_buf[fixture_next++ % 8];

    snprintf(buf, sizeof(fixture_buf[0]), "%s/tests/plugins/%s.so",
             build && build[0] ? build : "build", name);
    return buf;
}

/* Loads a fixture expecting a refusal and checks the exact message:
 * "<path>: <tail>". */
static void assert_refused(const char *name, int kind, const char *tail)
{
    char err[512], want[1024];
    const char *path = fixture(name);
    struct plugin *p;

    err[0] = '\0';
    p = loader_open(path, kind, err, sizeof(err));
    assert_null(p);
    snprintf(want, sizeof(want), "%s: %s", path, tail);
    assert_string_equal(err, want);
}

static void test_bad_major(void **state)
{
    assert_refused("bad_major", FERRY_KIND_SINK,
                   "ABI major 2, core supports 1");
}

static void test_newer_minor(void **state)
{
    assert_refused("newer_minor", FERRY_KIND_SINK,
                   "ABI minor 9 is newer than the core's 1");
}

static void test_short_struct(void **state)
{
    char tail[128];

    snprintf(tail, sizeof(tail),
             "descriptor size 24 is smaller than the first released size "
             "%zu",
             (size_t)FERRY_PLUGIN_SIZE_1_0);
    assert_refused("short_struct", FERRY_KIND_SINK, tail);
}

static void test_lying_size(void **state)
{
    char tail[128];

    snprintf(tail, sizeof(tail),
             "descriptor size %zu is larger than its symbol "
             "'ferry_plugin' (24 bytes)",
             sizeof(struct ferry_plugin));
    assert_refused("lying_size", FERRY_KIND_SINK, tail);
}

static void test_bad_magic(void **state)
{
    assert_refused("bad_magic", FERRY_KIND_SINK,
                   "bad magic 0xdeadbeef, expected 0x31595246");
}

static void test_wrong_kind(void **state)
{
    char err[512];
    struct plugin *p;

    assert_refused("wrong_kind", FERRY_KIND_SINK,
                   "plugin kind 'source', expected 'sink'");
    /* The same file is fine where a source is expected, or anything. */
    p = loader_open(fixture("wrong_kind"), FERRY_KIND_SOURCE, err, sizeof(err));
    assert_non_null(p);
    assert_int_equal(p->desc.hdr.kind, FERRY_KIND_SOURCE);
    loader_close(p);
    p = loader_open(fixture("wrong_kind"), 0, err, sizeof(err));
    assert_non_null(p);
    loader_close(p);
}

static void test_missing_symbol(void **state)
{
    assert_refused("missing_symbol", 0,
                   "no 'ferry_plugin' symbol (is it a ferry plugin?)");
}

static void test_missing_file(void **state)
{
    assert_refused("does_not_exist", 0,
                   "cannot load: cannot open shared object file: No such "
                   "file or directory");
}

static void test_missing_callback(void **state)
{
    assert_refused("missing_callback", FERRY_KIND_SINK,
                   "sink plugin 'nowrite' has no write() callback");
}

static void test_bad_name(void **state)
{
    assert_refused("bad_name", FERRY_KIND_SINK,
                   "plugin name 'bad name/x' is not a valid name (1 to 64 "
                   "letters, digits, '_' or '-')");
}

static void test_good_sink(void **state)
{
    char err[512];
    struct plugin *p;
    const struct ferry_option *o;

    p = loader_open(fixture("good_sink"), FERRY_KIND_SINK, err, sizeof(err));
    assert_non_null(p);
    assert_string_equal(p->path, fixture("good_sink"));
    assert_int_equal(p->desc.hdr.magic, FERRY_PLUGIN_MAGIC);
    assert_int_equal(p->desc.hdr.abi_major, FERRY_ABI_MAJOR);
    assert_int_equal(p->desc.hdr.abi_minor, FERRY_ABI_MINOR);
    assert_int_equal(p->desc.hdr.struct_size, sizeof(struct ferry_plugin));
    assert_int_equal(p->desc.hdr.kind, FERRY_KIND_SINK);
    assert_string_equal(p->desc.hdr.name, "good");
    assert_string_equal(p->desc.hdr.build, FERRY_BUILD_SIGNATURE);
    assert_string_equal(p->desc.version, "1.2.3");
    assert_string_equal(p->desc.description, "a valid test sink");
    assert_non_null(p->desc.init);
    assert_non_null(p->desc.fini);
    assert_non_null(p->desc.open);
    assert_non_null(p->desc.write);
    assert_non_null(p->desc.close);
    assert_null(p->desc.run);
    assert_null(p->desc.checkpoint);
    assert_null(p->desc.admit);
    o = p->desc.options;
    assert_non_null(o);
    assert_string_equal(o[0].name, "path");
    assert_string_equal(o[1].name, "mode");
    assert_int_equal(o[1].type, FERRY_OPT_ENUM);
    assert_string_equal(o[1].enum_values[1], "safe");
    assert_null(o[5].name);
    loader_close(p);
}

/* A descriptor longer than the core's: only the known part is copied. */
static void test_larger_size(void **state)
{
    char err[512];
    struct plugin *p;

    p = loader_open(fixture("larger_size"), FERRY_KIND_SINK, err, sizeof(err));
    assert_non_null(p);
    assert_true(p->desc.hdr.struct_size > sizeof(struct ferry_plugin));
    assert_string_equal(p->desc.hdr.name, "larger");
    assert_string_equal(p->desc.version, "2.0.0");
    assert_non_null(p->desc.write);
    assert_null(p->desc.after_write);
    loader_close(p);
}

/* A plugin built against ABI 1.0 in a core whose descriptor may have
 * grown: the 1.0 part is copied, everything after it is zero. */
static void test_older_size(void **state)
{
    char err[512];
    struct plugin *p;
    size_t i;

    p = loader_open(fixture("older_size"), FERRY_KIND_SINK, err, sizeof(err));
    if (p == NULL)
        fail_msg("%s", err);
    assert_int_equal(p->desc.hdr.struct_size, FERRY_PLUGIN_SIZE_1_0);
    assert_string_equal(p->desc.hdr.name, "older");
    assert_string_equal(p->desc.description, "built against ABI 1.0");
    assert_non_null(p->desc.write);
    assert_non_null(p->desc.after_write);
    for (i = FERRY_PLUGIN_SIZE_1_0; i < sizeof(p->desc); i++)
        assert_int_equal(((const unsigned char *)&p->desc)[i], 0);
    loader_close(p);
}

static void test_copy_zero_fills(void **state)
{
    struct ferry_plugin src, dst;
    size_t n = FERRY_PLUGIN_SIZE_1_0 - 2 * sizeof(void *);
    unsigned char big[sizeof(struct ferry_plugin) + 64];
    size_t i;

    memset(&src, 0x5a, sizeof(src));
    memset(&dst, 0xa5, sizeof(dst));
    loader_copy_desc(&dst, &src, n);
    assert_memory_equal(&dst, &src, n);
    for (i = n; i < sizeof(dst); i++)
        assert_int_equal(((unsigned char *)&dst)[i], 0);
    assert_null(dst.after_write);
    assert_null(dst.before_write);

    /* A longer source: exactly sizeof(dst) is copied, nothing more. */
    memset(big, 0x33, sizeof(big));
    memset(&dst, 0, sizeof(dst));
    loader_copy_desc(&dst, big, sizeof(big));
    assert_memory_equal(&dst, big, sizeof(dst));
}

static int fake_init(const struct ferry_host *host, struct ferry_ctx *ctx,
                     void **st)
{
    return FERRY_OK;
}

static void fake_fini(void *st)
{
}

static int fake_write(void *wctx, struct ferry_batch *b)
{
    return FERRY_OK;
}

static void fake_after(void *st, const struct ferry_write_event *ev, int status)
{
}

static int fake_run(void *st)
{
    return FERRY_OK;
}

static void fake_stop(void *st)
{
}

static struct ferry_plugin crafted(int kind, const char *name)
{
    struct ferry_plugin d;

    memset(&d, 0, sizeof(d));
    d.hdr.magic = FERRY_PLUGIN_MAGIC;
    d.hdr.abi_major = FERRY_ABI_MAJOR;
    d.hdr.abi_minor = FERRY_ABI_MINOR;
    d.hdr.struct_size = sizeof(d);
    d.hdr.kind = (uint32_t)kind;
    d.hdr.name = name;
    d.init = fake_init;
    d.fini = fake_fini;
    if (kind == FERRY_KIND_SINK)
        d.write = fake_write;
    if (kind == FERRY_KIND_SOURCE) {
        d.run = fake_run;
        d.stop = fake_stop;
    }
    if (kind == FERRY_KIND_POLICY)
        d.after_write = fake_after;
    return d;
}

static void assert_check(const struct ferry_plugin *d, int expect,
                         const char *want)
{
    struct ferry_plugin out;
    char err[512];
    int rc;

    err[0] = '\0';
    rc = loader_check_desc("x.so", d, 0, expect, &out, err, sizeof(err));
    if (want == NULL) {
        assert_int_equal(rc, 0);
        assert_memory_equal(&out, d, sizeof(out));
    } else {
        assert_int_equal(rc, -1);
        assert_string_equal(err, want);
    }
}

/* Checks that need no fixture: names, kinds, callbacks, option tables. */
static void test_check_crafted(void **state)
{
    static const char *const no_values[] = {NULL};
    struct ferry_option opts[3];
    struct ferry_plugin d;
    char longname[80];

    d = crafted(FERRY_KIND_SINK, "ok");
    assert_check(&d, FERRY_KIND_SINK, NULL);
    d = crafted(FERRY_KIND_POLICY, "p");
    assert_check(&d, FERRY_KIND_POLICY, NULL);
    d = crafted(FERRY_KIND_SOURCE, "s");
    assert_check(&d, 0, NULL);

    d = crafted(FERRY_KIND_SINK, "");
    assert_check(&d, 0, "x.so: plugin name is empty");
    d = crafted(FERRY_KIND_SINK, NULL);
    assert_check(&d, 0, "x.so: plugin name is empty");
    memset(longname, 'a', 65);
    longname[65] = '\0';
    d = crafted(FERRY_KIND_SINK, longname);
    assert_check(&d, 0,
                 "x.so: plugin name "
                 "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                 "aaaaa' is not a valid name (1 to 64 letters, digits, '_' "
                 "or '-')");
    d = crafted(FERRY_KIND_SINK, "k");
    d.hdr.kind = 7;
    assert_check(&d, 0, "x.so: unknown plugin kind 7");
    d = crafted(FERRY_KIND_POLICY, "p");
    assert_check(&d, FERRY_KIND_SINK,
                 "x.so: plugin kind 'policy', expected "
                 "'sink'");

    d = crafted(FERRY_KIND_SINK, "n");
    d.fini = NULL;
    assert_check(&d, 0, "x.so: sink plugin 'n' has no fini() callback");
    d = crafted(FERRY_KIND_SOURCE, "n");
    d.stop = NULL;
    assert_check(&d, 0, "x.so: source plugin 'n' has no stop() callback");
    d = crafted(FERRY_KIND_SOURCE, "n");
    d.init = NULL;
    assert_check(&d, 0, "x.so: source plugin 'n' has no init() callback");
    d = crafted(FERRY_KIND_POLICY, "n");
    d.after_write = NULL;
    assert_check(&d, 0,
                 "x.so: policy plugin 'n' has none of admit(), "
                 "before_write(), after_write()");

    memset(opts, 0, sizeof(opts));
    opts[0].name = "a";
    opts[0].type = FERRY_OPT_INT;
    opts[1].name = "b";
    opts[1].type = 99;
    d = crafted(FERRY_KIND_SINK, "o");
    d.options = opts;
    assert_check(&d, 0, "x.so: option 'b' has unknown type 99");
    opts[1].type = FERRY_OPT_ENUM;
    opts[1].enum_values = no_values;
    assert_check(&d, 0, "x.so: enum option 'b' has no values");
    opts[1].type = FERRY_OPT_BOOL;
    opts[1].name = "a";
    assert_check(&d, 0, "x.so: option 'a' is declared twice");
    opts[1].name = "a b";
    assert_check(&d, 0, "x.so: option 2 has an invalid name 'a b'");
    opts[1].name = "b";
    assert_check(&d, 0, NULL);

    /* A symbol smaller than the fields read first. */
    d = crafted(FERRY_KIND_SINK, "t");
    {
        struct ferry_plugin out;
        char err[256];
        assert_int_equal(
            loader_check_desc("x.so", &d, 8, 0, &out, err, sizeof(err)), -1);
        assert_string_equal(err, "x.so: 'ferry_plugin' is 8 bytes, too small "
                                 "to be a ferry plugin descriptor");
    }
}

static char *log_text;

static void fake_log(struct ferry_ctx *ctx, int level, const char *fmt, ...)
{
    va_list ap;
    char *s;

    va_start(ap, fmt);
    assert_true(vasprintf(&s, fmt, ap) >= 0);
    va_end(ap);
    free(log_text);
    log_text = s;
}

/* The loader accepts failing_init; calling its init() fails, which is the
 * pipeline's cue to refuse it. */
static void test_failing_init(void **state)
{
    struct ferry_host host;
    char err[512];
    struct plugin *p;
    void *st = NULL;

    p = loader_open(fixture("failing_init"), FERRY_KIND_SINK, err, sizeof(err));
    assert_non_null(p);
    memset(&host, 0, sizeof(host));
    host.struct_size = sizeof(host);
    host.log = fake_log;
    assert_int_equal(p->desc.init(&host, NULL, &st), FERRY_ERROR);
    assert_non_null(log_text);
    assert_string_equal(log_text, "refusing to start (test fixture)");
    free(log_text);
    log_text = NULL;
    loader_close(p);
}

static void test_set_duplicate(void **state)
{
    struct plugin_set *s = plugin_set_new(".");
    struct plugin *a, *again;
    char err[512], want[1024];

    a = plugin_set_add(s, fixture("dup_name_a"), FERRY_KIND_SINK, err,
                       sizeof(err));
    assert_non_null(a);
    again = plugin_set_add(s, fixture("dup_name_a"), FERRY_KIND_SINK, err,
                           sizeof(err));
    assert_ptr_equal(a, again);
    assert_null(plugin_set_add(s, fixture("dup_name_b"), FERRY_KIND_SINK, err,
                               sizeof(err)));
    snprintf(want, sizeof(want),
             "%s: plugin name 'dup' (sink) is already loaded from %s",
             fixture("dup_name_b"), fixture("dup_name_a"));
    assert_string_equal(err, want);
    /* Same name, other kind: allowed (good is a sink, so use a source). */
    assert_non_null(plugin_set_add(s, fixture("wrong_kind"), FERRY_KIND_SOURCE,
                                   err, sizeof(err)));
    /* A loaded file asked for as another kind is still refused. */
    assert_null(plugin_set_add(s, fixture("dup_name_a"), FERRY_KIND_SOURCE, err,
                               sizeof(err)));
    snprintf(want, sizeof(want), "%s: plugin kind 'sink', expected 'source'",
             fixture("dup_name_a"));
    assert_string_equal(err, want);
    plugin_set_free(s);
}

/* plugin_set_get finds <dir>/<kind>_<name>.so, caches it, and refuses a
 * file whose descriptor names another plugin. */
static void test_set_get(void **state)
{
    char dir[] = "/tmp/ferry-loader-XXXXXX";
    char src[1024], link1[1100], link2[1100], err[512], want[1400];
    struct plugin_set *s;
    struct plugin *p;

    assert_non_null(mkdtemp(dir));
    assert_non_null(realpath(fixture("good_sink"), src));
    snprintf(link1, sizeof(link1), "%s/sink_good.so", dir);
    snprintf(link2, sizeof(link2), "%s/sink_other.so", dir);
    assert_int_equal(symlink(src, link1), 0);
    assert_int_equal(symlink(src, link2), 0);

    s = plugin_set_new(dir);
    p = plugin_set_get(s, FERRY_KIND_SINK, "good", err, sizeof(err));
    assert_non_null(p);
    assert_string_equal(p->path, link1);
    assert_ptr_equal(
        plugin_set_get(s, FERRY_KIND_SINK, "good", err, sizeof(err)), p);

    assert_null(plugin_set_get(s, FERRY_KIND_SINK, "other", err, sizeof(err)));
    snprintf(want, sizeof(want),
             "%s: plugin name 'good' does not match the file name "
             "(expected 'other')",
             link2);
    assert_string_equal(err, want);

    assert_null(plugin_set_get(s, FERRY_KIND_SOURCE, "good", err, sizeof(err)));
    snprintf(want, sizeof(want),
             "%s/source_good.so: cannot load: cannot open shared object "
             "file: No such file or directory",
             dir);
    assert_string_equal(err, want);

    assert_null(
        plugin_set_get(s, FERRY_KIND_SINK, "../good", err, sizeof(err)));
    assert_string_equal(err, "plugin name '../good' is not a valid name (1 "
                             "to 64 letters, digits, '_' or '-')");
    plugin_set_free(s);
    plugin_set_free(NULL);

    unlink(link1);
    unlink(link2);
    rmdir(dir);
}

/* plugin_set_ref: a name goes through the folder, a path is relative to
 * the configuration file's folder and made canonical, and the checks of
 * loader_open() and the duplicate rule still apply. */
static void test_set_ref(void **state)
{
    char dir[] = "/tmp/ferry-loader-XXXXXX";
    char src[1024], sub[1100], cfg[1200], file[1100], err[512], want[3000];
    struct plugin_set *s;
    struct plugin *p;

    assert_non_null(mkdtemp(dir));
    assert_non_null(realpath(fixture("good_sink"), src));
    snprintf(sub, sizeof(sub), "%s/conf", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(cfg, sizeof(cfg), "%s/ferry.ini", sub);
    snprintf(file, sizeof(file), "%s/sink_good.so", dir);
    assert_int_equal(symlink(src, file), 0);

    s = plugin_set_new(dir);
    /* Relative to the file's folder; realpath() follows the link. */
    p = plugin_set_ref(s, FERRY_KIND_SINK, "../sink_good.so", cfg, err,
                       sizeof(err));
    assert_non_null(p);
    assert_string_equal(p->path, src);
    assert_int_equal(p->by_path, 1);
    assert_ptr_equal(
        plugin_set_ref(s, FERRY_KIND_SINK, src, NULL, err, sizeof(err)), p);
    /* The same plugin asked for by name is a second file: a duplicate. */
    assert_null(
        plugin_set_ref(s, FERRY_KIND_SINK, "good", cfg, err, sizeof(err)));
    snprintf(want, sizeof(want),
             "%s: plugin name 'good' (sink) is already loaded from %s", file,
             src);
    assert_string_equal(err, want);
    /* A missing file is named where the loader looked. */
    assert_null(
        plugin_set_ref(s, FERRY_KIND_SINK, "nope.so", cfg, err, sizeof(err)));
    snprintf(want, sizeof(want), "%s/nope.so: cannot load: ", sub);
    assert_memory_equal(err, want, strlen(want));
    /* Kind checks are unchanged. */
    assert_null(
        plugin_set_ref(s, FERRY_KIND_SOURCE, src, cfg, err, sizeof(err)));
    snprintf(want, sizeof(want), "%s: plugin kind 'sink', expected 'source'",
             src);
    assert_string_equal(err, want);
    plugin_set_free(s);

    assert_int_equal(loader_ref_is_path("redis"), 0);
    assert_int_equal(loader_ref_is_path("x.so"), 1);
    assert_int_equal(loader_ref_is_path("./x"), 1);
    assert_int_equal(loader_ref_is_path(".so"), 0);
    assert_int_equal(loader_ref_is_path(NULL), 0);

    unlink(file);
    rmdir(sub);
    rmdir(dir);
}

/* The default folder is the one beside the binary when it exists (the
 * test binary has none), else the compiled-in one. */
static void test_default_dir(void **state)
{
    char *d = loader_default_dir();

    assert_non_null(d);
    assert_string_equal(d, FERRY_PLUGIN_DIR);
    free(d);
}

static void test_helpers(void **state)
{
    char buf[64];

    assert_string_equal(
        loader_path(buf, sizeof(buf), "/p", FERRY_KIND_SINK, "redis"),
        "/p/sink_redis.so");
    assert_string_equal(loader_kind_name(FERRY_KIND_SOURCE), "source");
    assert_string_equal(loader_kind_name(FERRY_KIND_POLICY), "policy");
    assert_null(loader_kind_name(0));
    assert_null(loader_kind_name(4));
    assert_int_equal(loader_kind_parse("sink"), FERRY_KIND_SINK);
    assert_int_equal(loader_kind_parse("sinks"), 0);
    assert_int_equal(loader_kind_parse(NULL), 0);
    assert_string_equal(loader_opt_type_name(FERRY_OPT_DURATION), "duration");
    assert_null(loader_opt_type_name(0));
    loader_close(NULL);
}

/* Runs fn(arg) with stdout captured; returns the output (caller frees). */
static char *capture(int (*fn)(const char *, int), const char *arg, int flag,
                     int *rc)
{
    FILE *tmp = tmpfile();
    int saved;
    long n;
    char *out;

    assert_non_null(tmp);
    fflush(stdout);
    saved = dup(STDOUT_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), STDOUT_FILENO) >= 0);
    *rc = fn(arg, flag);
    fflush(stdout);
    assert_true(dup2(saved, STDOUT_FILENO) >= 0);
    close(saved);
    n = ftell(tmp);
    if (n < 0)
        n = 0;
    out = calloc(1, (size_t)n + 1);
    assert_non_null(out);
    rewind(tmp);
    assert_int_equal(fread(out, 1, (size_t)n, tmp), (size_t)n);
    fclose(tmp);
    return out;
}

static int cmd_plugins(const char *dir, int flag)
{
    return loader_cmd_plugins(dir);
}

static void test_cmd_plugins(void **state)
{
    char dir[512], want[2048];
    char *out;
    int rc;

    snprintf(dir, sizeof(dir), "%s", fixture("x"));
    *strrchr(dir, '/') = '\0';
    out = capture(cmd_plugins, dir, 0, &rc);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "sink    good      1.2.3  ABI 1.1  a valid "
                                "test sink\n"));
    assert_non_null(strstr(out, "source  wrongkind 0.0.1  ABI 1.1  a "
                                "source, not a sink\n"));
    assert_non_null(strstr(out, "sink    dup       0.0.1  ABI 1.1  "
                                "duplicate name, file a\n"));
    snprintf(want, sizeof(want),
             "refused %s/bad_major.so: ABI major 2, core supports 1\n", dir);
    assert_non_null(strstr(out, want));
    snprintf(want, sizeof(want),
             "refused %s/dup_name_b.so: plugin name 'dup' (sink) is "
             "already loaded from %s/dup_name_a.so\n",
             dir, dir);
    assert_non_null(strstr(out, want));
    snprintf(want, sizeof(want),
             "refused %s/missing_symbol.so: no 'ferry_plugin' symbol", dir);
    assert_non_null(strstr(out, want));
    /* Sorted by file name: bad_magic.so first, wrong_kind.so last. */
    assert_true(strncmp(out, "refused ", 8) == 0);
    assert_non_null(strstr(out, "bad_magic.so"));
    assert_true(strstr(out, "bad_magic.so") < strstr(out, "bad_major.so"));
    assert_true(strstr(out, "duplicate name, file a") <
                strstr(out, "dup_name_b.so"));
    assert_true(strstr(out, "a valid test sink") < strstr(out, "nowrite"));
    free(out);

    out = capture(cmd_plugins, "/nonexistent/ferry-plugins", 0, &rc);
    assert_int_equal(rc, 2);
    assert_string_equal(out, "");
    free(out);
}

static void test_cmd_inspect(void **state)
{
    char want[2048];
    char *out;
    int rc;

    out = capture(loader_cmd_inspect, fixture("good_sink"), 0, &rc);
    assert_int_equal(rc, 0);
    snprintf(want, sizeof(want),
             "file:         %s\n"
             "name:         good\n"
             "kind:         sink\n"
             "version:      1.2.3\n"
             "ABI:          1.1\n"
             "struct size:  %zu bytes (core: %zu)\n"
             "build:        %s\n"
             "description:  a valid test sink\n"
             "options:\n"
             "  NAME     TYPE      DEFAULT  RANGE      FLAGS     "
             "DESCRIPTION\n"
             "  path     string    -        -          -         "
             "where to write\n"
             "  mode     enum      safe     fast|safe  -         "
             "how to write\n"
             "  timeout  duration  30s      1ms..1m    -         "
             "how long to wait\n"
             "  limit    int       10       1..100     -         "
             "how many | at most\n"
             "  token    string    -        -          req,sec   "
             "the access token\n",
             fixture("good_sink"), sizeof(struct ferry_plugin),
             sizeof(struct ferry_plugin), FERRY_BUILD_SIGNATURE);
    assert_string_equal(out, want);
    free(out);

    out = capture(loader_cmd_inspect, fixture("good_sink"), 1, &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(
        out, "### sink.good\n"
             "\n"
             "a valid test sink\n"
             "\n"
             "| key | type | default | description |\n"
             "| --- | --- | --- | --- |\n"
             "| `path` | string | `-` | where to write. |\n"
             "| `mode` | enum | `safe` | how to write. One of: `fast\\|safe`. "
             "|\n"
             "| `timeout` | duration | `30s` | how long to wait. Range: "
             "`1ms..1m`. |\n"
             "| `limit` | int | `10` | how many \\| at most. Range: "
             "`1..100`. |\n"
             "| `token` | string | required | the access token. Secret. |\n");
    free(out);

    /* A refused file: nothing on stdout, exit status 2. */
    out = capture(loader_cmd_inspect, fixture("bad_major"), 0, &rc);
    assert_int_equal(rc, 2);
    assert_string_equal(out, "");
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_major),
        cmocka_unit_test(test_newer_minor),
        cmocka_unit_test(test_short_struct),
        cmocka_unit_test(test_lying_size),
        cmocka_unit_test(test_bad_magic),
        cmocka_unit_test(test_wrong_kind),
        cmocka_unit_test(test_missing_symbol),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_missing_callback),
        cmocka_unit_test(test_bad_name),
        cmocka_unit_test(test_good_sink),
        cmocka_unit_test(test_larger_size),
        cmocka_unit_test(test_older_size),
        cmocka_unit_test(test_copy_zero_fills),
        cmocka_unit_test(test_check_crafted),
        cmocka_unit_test(test_failing_init),
        cmocka_unit_test(test_set_duplicate),
        cmocka_unit_test(test_set_get),
        cmocka_unit_test(test_set_ref),
        cmocka_unit_test(test_default_dir),
        cmocka_unit_test(test_helpers),
        cmocka_unit_test(test_cmd_plugins),
        cmocka_unit_test(test_cmd_inspect),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
