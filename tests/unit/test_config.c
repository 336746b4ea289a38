/*
 * tests/unit/test_config.c: core/config.c.
 *
 * Every test runs in its own temporary directory (the working directory
 * for the test), writes its INI files there and loads them by relative
 * name, so the expected messages read exactly as an operator sees them:
 * "a.ini:3: [sink.cache] ...".
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

/* ---- fixture ------------------------------------------------------------ */

struct fixture {
    char dir[64];
    int oldcwd;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/ferry-config.XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    f->oldcwd = open(".", O_RDONLY | O_DIRECTORY);
    if (f->oldcwd < 0 || chdir(f->dir) < 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];

    if (fchdir(f->oldcwd) < 0)
        return -1;
    close(f->oldcwd);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static void put(const char *path, const char *text)
{
    FILE *fp;
    char dir[256];
    char *slash;

    snprintf(dir, sizeof(dir), "%s", path);
    slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        mkdir(dir, 0755);
    }
    fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

/* Loads path, expecting failure with exactly msg. */
static void expect_load_error(const char *path, const char *msg)
{
    struct config cfg;
    char err[512] = "";

    assert_int_equal(config_load(&cfg, path, err, sizeof(err)), -1);
    assert_string_equal(err, msg);
    config_release(&cfg);
}

static void load_ok(struct config *cfg, const char *path)
{
    char err[512] = "";
    int rc = config_load(cfg, path, err, sizeof(err));

    if (rc != 0)
        fail_msg("config_load(%s): %s", path, err);
}

static const char *value(const struct config *cfg, const char *sec,
                         const char *key)
{
    const struct config_entry *e = config_entry(config_section(cfg, sec), key);

    return e ? e->value : NULL;
}

static void expect_entry(const struct config *cfg, const char *sec,
                         const char *key, const char *val, const char *file,
                         int line)
{
    const struct config_entry *e = config_entry(config_section(cfg, sec), key);

    assert_non_null(e);
    assert_string_equal(e->value, val);
    assert_string_equal(e->file, file);
    assert_int_equal(e->line, line);
}

/* ---- option tables used by the validation tests ------------------------- */

static const char *const modes[] = {"block", "coalesce", "drop_newest",
                                    "drop_oldest", NULL};

static const struct ferry_option route_opts[] = {
    {"from", FERRY_OPT_STRING, NULL, 0, 0, NULL, FERRY_OPT_REQUIRED, "src"},
    {"match", FERRY_OPT_LIST, "*", 0, 0, NULL, 0, "entity types"},
    {"to", FERRY_OPT_STRING, NULL, 0, 0, NULL, FERRY_OPT_REQUIRED, "sink"},
    {"policies", FERRY_OPT_LIST, NULL, 0, 0, NULL, 0, "policies"},
    {"channel_size", FERRY_OPT_INT, "1000", 1, 1000000, NULL, 0, "cap"},
    {"workers", FERRY_OPT_INT, "8", 1, 256, NULL, 0, "workers"},
    {"batch_size", FERRY_OPT_INT, "10", 1, 100000, NULL, 0, "batch"},
    {"batch_timeout", FERRY_OPT_DURATION, "25ms", 1, 3600000, NULL, 0, "wait"},
    {NULL, 0, NULL, 0, 0, NULL, 0, NULL}};

static const struct ferry_option sink_opts[] = {
    {"address", FERRY_OPT_STRING, "127.0.0.1:6379", 0, 0, NULL, 0, "addr"},
    {"username", FERRY_OPT_STRING, NULL, 0, 0, NULL, 0, "user"},
    {"password", FERRY_OPT_STRING, NULL, 0, 0, NULL, FERRY_OPT_SECRET,
     "secret"},
    {"db", FERRY_OPT_INT, "0", 0, 15, NULL, 0, "db"},
    {"ttl", FERRY_OPT_DURATION, "0", 0, 0, NULL, 0, "ttl"},
    {"max_message_size", FERRY_OPT_SIZE, "16MB", 1024, 1073741824.0, NULL, 0,
     "size"},
    {"tls_verify", FERRY_OPT_BOOL, "true", 0, 0, NULL, 0, "tls"},
    {"rate", FERRY_OPT_DOUBLE, "10", 0.5, 1000, NULL, 0, "rate"},
    {"mode", FERRY_OPT_ENUM, "block", 0, 0, modes, 0, "mode"},
    {"cluster_addrs", FERRY_OPT_LIST, NULL, 0, 0, NULL, 0, "cluster"},
    {"api_key", FERRY_OPT_STRING, "k-default", 0, 0, NULL, FERRY_OPT_SECRET,
     "secret with a default"},
    {NULL, 0, NULL, 0, 0, NULL, 0, NULL}};

static const char *const plugin_key[] = {"plugin", NULL};

/* Loads a.ini and validates section sec against table, expecting msg. */
static void expect_opt_error(const char *ini, const char *sec,
                             const struct ferry_option *table, const char *msg)
{
    struct config cfg;
    char err[512] = "";

    put("a.ini", ini);
    load_ok(&cfg, "a.ini");
    assert_null(optset_new(config_section(&cfg, sec), sec, table, plugin_key,
                           err, sizeof(err)));
    assert_string_equal(err, msg);
    config_release(&cfg);
}

/* ---- loading ------------------------------------------------------------ */

static void test_load_sections_and_lines(void **state)
{
    struct config cfg;
    const struct config_section *s;

    (void)state;
    put("a.ini", "; a comment\n"
                 "# another\n"
                 "[ferry]\n"
                 "log_level = debug\n"
                 "\n"
                 "[sink.cache]\n"
                 "plugin = redis ; inline comment\n"
                 "  address   =   127.0.0.1:6379  \n"
                 "empty =\n"
                 "[route.main]\n"
                 "from = ws\n");
    load_ok(&cfg, "a.ini");
    assert_string_equal(cfg.path, "a.ini");
    assert_int_equal(cfg.count, 3);
    s = config_section(&cfg, "sink.cache");
    assert_non_null(s);
    assert_string_equal(s->kind, "sink");
    assert_string_equal(s->inst, "cache");
    assert_string_equal(s->file, "a.ini");
    assert_int_equal(s->line, 6);
    s = config_section(&cfg, "ferry");
    assert_non_null(s);
    assert_string_equal(s->kind, "ferry");
    assert_string_equal(s->inst, "");
    expect_entry(&cfg, "ferry", "log_level", "debug", "a.ini", 4);
    expect_entry(&cfg, "sink.cache", "plugin", "redis", "a.ini", 7);
    expect_entry(&cfg, "sink.cache", "address", "127.0.0.1:6379", "a.ini", 8);
    expect_entry(&cfg, "sink.cache", "empty", "", "a.ini", 9);
    expect_entry(&cfg, "route.main", "from", "ws", "a.ini", 11);
    assert_null(config_section(&cfg, "sink.other"));
    assert_null(config_entry(config_section(&cfg, "ferry"), "nope"));
    assert_null(config_entry(NULL, "nope"));
    config_release(&cfg);
}

static void test_load_empty_section_and_reopened_section(void **state)
{
    struct config cfg;
    const struct config_section *s;

    (void)state;
    put("a.ini", "[route.main]\n"
                 "[sink.cache]\n"
                 "a = 1\n"
                 "[ sink.cache ]\n"
                 "a = 2\n"
                 "b = 3\n");
    load_ok(&cfg, "a.ini");
    s = config_section(&cfg, "route.main");
    assert_non_null(s);
    assert_int_equal(s->count, 0);
    assert_int_equal(s->line, 1);
    s = config_section(&cfg, "sink.cache");
    assert_int_equal(s->line, 2);
    assert_int_equal(s->count, 2);
    expect_entry(&cfg, "sink.cache", "a", "2", "a.ini", 5);
    config_release(&cfg);
}

static void test_load_long_line(void **state)
{
    struct config cfg;
    size_t n = 20000;
    char *text = malloc(n + 64);
    const char *v;

    (void)state;
    assert_non_null(text);
    strcpy(text, "[sink.cache]\nbig = ");
    memset(text + strlen(text), 'x', n);
    strcpy(text + strlen("[sink.cache]\nbig = ") + n, "\nafter = 1\n");
    put("a.ini", text);
    load_ok(&cfg, "a.ini");
    v = value(&cfg, "sink.cache", "big");
    assert_non_null(v);
    assert_int_equal(strlen(v), n);
    expect_entry(&cfg, "sink.cache", "after", "1", "a.ini", 3);
    config_release(&cfg);
    free(text);
}

static void test_err_line_too_long(void **state)
{
    size_t n = 70000;
    char *text = malloc(n + 64);

    (void)state;
    assert_non_null(text);
    strcpy(text, "[sink.cache]\nbig = ");
    memset(text + strlen(text), 'x', n);
    strcpy(text + strlen("[sink.cache]\nbig = ") + n, "\n");
    put("a.ini", text);
    expect_load_error("a.ini", "a.ini:2: line is too long (more than 65533 "
                               "characters)");
    free(text);
}

static void test_err_cannot_open(void **state)
{
    (void)state;
    expect_load_error("missing.ini",
                      "missing.ini: cannot open: No such file or directory");
}

static void test_err_unknown_section_kind(void **state)
{
    (void)state;
    put("a.ini", "[ferry]\n"
                 "\n"
                 "[sorce.ws]\n"
                 "plugin = websocket\n");
    expect_load_error("a.ini", "a.ini:3: [sorce.ws] unknown section kind "
                               "'sorce' (did you mean 'source'?)");
    put("a.ini", "[ferr]\n");
    expect_load_error("a.ini", "a.ini:1: [ferr] unknown section kind "
                               "'ferr' (did you mean 'ferry'?)");
    put("a.ini", "[output.x]\n");
    expect_load_error("a.ini", "a.ini:1: [output.x] unknown section kind "
                               "'output' (expected ferry, source, sink, "
                               "policy or route)");
}

static void test_err_bad_instance_names(void **state)
{
    (void)state;
    put("a.ini", "[sink.]\n");
    expect_load_error("a.ini", "a.ini:1: [sink.] empty instance name");
    put("a.ini", "[ferry]\n[sink]\n");
    expect_load_error("a.ini", "a.ini:2: [sink] missing instance name "
                               "(expected [sink.NAME])");
    put("a.ini", "[ferry.main]\n");
    expect_load_error("a.ini", "a.ini:1: [ferry.main] section [ferry] "
                               "takes no instance name");
    put("a.ini", "[sink.a.b]\n");
    expect_load_error("a.ini", "a.ini:1: [sink.a.b] invalid instance name "
                               "'a.b' (1 to 64 letters, digits, '_' or "
                               "'-')");
    put("a.ini", "[]\n");
    expect_load_error("a.ini", "a.ini:1: [] empty section name");
}

static void test_err_key_outside_section(void **state)
{
    (void)state;
    put("a.ini", "; header\n"
                 "plugin = redis\n"
                 "[sink.cache]\n");
    expect_load_error("a.ini", "a.ini:2: key 'plugin' is outside any "
                               "section");
}

static void test_err_syntax(void **state)
{
    (void)state;
    put("a.ini", "[sink.cache]\n"
                 "address = x\n"
                 "just words\n");
    expect_load_error("a.ini", "a.ini:3: [sink.cache] syntax error "
                               "(expected 'key = value')");
    /* No Python-style continuation lines: an indented line without '='
     * is an error, not a silent append. */
    put("a.ini", "[sink.cache]\n"
                 "address = x\n"
                 "    y\n");
    expect_load_error("a.ini", "a.ini:3: [sink.cache] syntax error "
                               "(expected 'key = value')");
    put("a.ini", "[sink.cache\n");
    expect_load_error("a.ini", "a.ini:1: syntax error (expected "
                               "'[section]' or 'key = value')");
    put("a.ini", "[ferry]\n= value\n");
    expect_load_error("a.ini", "a.ini:2: [ferry] empty key name");
}

/* ---- ${VAR} expansion --------------------------------------------------- */

static void test_env_expansion(void **state)
{
    struct config cfg;

    (void)state;
    setenv("FERRY_T_HOST", "redis.local", 1);
    setenv("FERRY_T_EMPTY", "", 1);
    unsetenv("FERRY_T_UNSET");
    put("a.ini", "[sink.cache]\n"
                 "a = ${FERRY_T_HOST}\n"
                 "b = redis://${FERRY_T_HOST}:6379/${FERRY_T_UNSET:-0}\n"
                 "c = ${FERRY_T_HOST:-fallback}\n"
                 "d = [${FERRY_T_EMPTY}]\n"
                 "e = ${FERRY_T_EMPTY:-dflt}\n"
                 "f = [${FERRY_T_EMPTY-dflt}]\n"
                 "g = ${FERRY_T_UNSET-dflt}\n"
                 "h = $HOME and $ alone\n"
                 "i = ${FERRY_T_UNSET:-}\n");
    load_ok(&cfg, "a.ini");
    assert_string_equal(value(&cfg, "sink.cache", "a"), "redis.local");
    assert_string_equal(value(&cfg, "sink.cache", "b"),
                        "redis://redis.local:6379/0");
    assert_string_equal(value(&cfg, "sink.cache", "c"), "redis.local");
    assert_string_equal(value(&cfg, "sink.cache", "d"), "[]");
    assert_string_equal(value(&cfg, "sink.cache", "e"), "dflt");
    assert_string_equal(value(&cfg, "sink.cache", "f"), "[]");
    assert_string_equal(value(&cfg, "sink.cache", "g"), "dflt");
    assert_string_equal(value(&cfg, "sink.cache", "h"), "$HOME and $ alone");
    assert_string_equal(value(&cfg, "sink.cache", "i"), "");
    config_release(&cfg);
    unsetenv("FERRY_T_HOST");
    unsetenv("FERRY_T_EMPTY");
}

static void test_err_env_unset(void **state)
{
    (void)state;
    unsetenv("FERRY_T_NOPE");
    put("a.ini", "[sink.cache]\n"
                 "plugin = redis\n"
                 "password = ${FERRY_T_NOPE}\n");
    expect_load_error("a.ini", "a.ini:3: [sink.cache] environment variable "
                               "'FERRY_T_NOPE' is not set");
}

/* A variable used only by a key that a later file overrides need not be
 * set (etc/demo.ini replaces etc/ferry.ini's ${SCHEMATIC_API_KEY}); the
 * one that wins is expanded, and its errors name its own file and line. */
static void test_env_only_winning_entries_expand(void **state)
{
    struct config cfg;
    char err[512];

    (void)state;
    unsetenv("FERRY_T_NOPE");
    put("base.ini", "[source.ws]\n"
                    "plugin = websocket\n"
                    "api_key = ${FERRY_T_NOPE}\n");
    put("a.ini", "[ferry]\n"
                 "include = base.ini\n"
                 "[source.ws]\n"
                 "api_key = from-overlay\n");
    assert_int_equal(config_load(&cfg, "a.ini", err, sizeof(err)), 0);
    const struct config_entry *e =
        config_entry(config_section(&cfg, "source.ws"), "api_key");
    assert_non_null(e);
    assert_string_equal(e->value, "from-overlay");
    config_release(&cfg);

    put("a.ini", "[ferry]\n"
                 "include = base.ini\n"
                 "[source.ws]\n"
                 "url = ws://x\n");
    expect_load_error("a.ini", "base.ini:3: [source.ws] environment "
                               "variable 'FERRY_T_NOPE' is not set");
}

static void test_err_env_syntax(void **state)
{
    (void)state;
    put("a.ini", "[sink.cache]\na = ${FERRY_T_X\n");
    expect_load_error("a.ini", "a.ini:2: [sink.cache] unterminated '${' in "
                               "'${FERRY_T_X'");
    put("a.ini", "[sink.cache]\na = ${FERRY T}\n");
    expect_load_error("a.ini",
                      "a.ini:2: [sink.cache] invalid variable reference "
                      "'${FERRY T}' (use ${NAME} or ${NAME:-default})");
    put("a.ini", "[sink.cache]\na = x${}\n");
    expect_load_error("a.ini",
                      "a.ini:2: [sink.cache] invalid variable reference "
                      "'${}' (use ${NAME} or ${NAME:-default})");
}

/* ---- includes ----------------------------------------------------------- */

static void test_include_overrides(void **state)
{
    struct config cfg;

    (void)state;
    put("base.ini", "[ferry]\n"
                    "log_level = info\n"
                    "http_listen = 127.0.0.1:8090\n"
                    "[sink.cache]\n"
                    "plugin = redis\n"
                    "address = base:6379\n"
                    "db = 1\n"
                    "[route.main]\n"
                    "from = ws\n");
    /* The include line comes last, yet the included file is read first:
     * main.ini's keys win wherever both set one. */
    put("main.ini", "[ferry]\n"
                    "log_level = debug\n"
                    "include = base.ini\n"
                    "[sink.cache]\n"
                    "address = main:6379\n"
                    "[route.extra]\n"
                    "to = cache\n");
    load_ok(&cfg, "main.ini");
    expect_entry(&cfg, "ferry", "log_level", "debug", "main.ini", 2);
    expect_entry(&cfg, "ferry", "http_listen", "127.0.0.1:8090", "base.ini", 3);
    assert_null(value(&cfg, "ferry", "include"));
    expect_entry(&cfg, "sink.cache", "plugin", "redis", "base.ini", 5);
    expect_entry(&cfg, "sink.cache", "address", "main:6379", "main.ini", 5);
    expect_entry(&cfg, "sink.cache", "db", "1", "base.ini", 7);
    expect_entry(&cfg, "route.main", "from", "ws", "base.ini", 9);
    expect_entry(&cfg, "route.extra", "to", "cache", "main.ini", 7);
    /* A section keeps the place where it first appeared. */
    assert_string_equal(config_section(&cfg, "sink.cache")->file, "base.ini");
    assert_int_equal(config_section(&cfg, "sink.cache")->line, 4);
    config_release(&cfg);
}

static void test_include_several_and_nested(void **state)
{
    struct config cfg;

    (void)state;
    put("conf/one.ini", "[ferry]\n"
                        "include = deep/zero.ini\n"
                        "[sink.s]\n"
                        "a = one\n"
                        "b = one\n");
    put("conf/deep/zero.ini", "[sink.s]\n"
                              "a = zero\n"
                              "b = zero\n"
                              "c = zero\n"
                              "d = zero\n");
    put("conf/two.ini", "[sink.s]\n"
                        "b = two\n");
    put("conf/main.ini", "[ferry]\n"
                         "include = one.ini\n"
                         "include = two.ini\n"
                         "[sink.s]\n"
                         "d = main\n");
    load_ok(&cfg, "conf/main.ini");
    expect_entry(&cfg, "sink.s", "a", "one", "conf/one.ini", 4);
    expect_entry(&cfg, "sink.s", "b", "two", "conf/two.ini", 2);
    expect_entry(&cfg, "sink.s", "c", "zero", "conf/deep/zero.ini", 4);
    expect_entry(&cfg, "sink.s", "d", "main", "conf/main.ini", 5);
    config_release(&cfg);
}

static void test_include_path_from_env(void **state)
{
    struct config cfg;

    (void)state;
    setenv("FERRY_T_ENV", "dev", 1);
    put("dev.ini", "[sink.s]\na = dev\n");
    put("main.ini", "[ferry]\ninclude = ${FERRY_T_ENV}.ini\n");
    load_ok(&cfg, "main.ini");
    expect_entry(&cfg, "sink.s", "a", "dev", "dev.ini", 2);
    config_release(&cfg);
    unsetenv("FERRY_T_ENV");
}

static void test_include_overlay_swaps_plugin(void **state)
{
    struct config cfg;
    const struct config_section *s;

    (void)state;
    put("prod.ini", "[sink.cache]\n"
                    "plugin = redis\n"
                    "address = redis:6379\n"
                    "password = hunter2\n"
                    "[sink.other]\n"
                    "plugin = redis\n"
                    "address = other:6379\n");
    put("dev.ini", "[ferry]\n"
                   "include = prod.ini\n"
                   "[sink.cache]\n"
                   "plugin = file\n"
                   "path = -\n"
                   "[sink.other]\n"
                   "plugin = redis\n"
                   "db = 2\n");
    load_ok(&cfg, "dev.ini");
    /* A different plugin redefines the instance: no redis keys remain. */
    s = config_section(&cfg, "sink.cache");
    assert_int_equal(s->count, 2);
    expect_entry(&cfg, "sink.cache", "plugin", "file", "dev.ini", 4);
    expect_entry(&cfg, "sink.cache", "path", "-", "dev.ini", 5);
    assert_null(value(&cfg, "sink.cache", "address"));
    assert_null(value(&cfg, "sink.cache", "password"));
    assert_string_equal(s->file, "dev.ini");
    assert_int_equal(s->line, 3);
    /* The same plugin merges as usual. */
    expect_entry(&cfg, "sink.other", "address", "other:6379", "prod.ini", 7);
    expect_entry(&cfg, "sink.other", "db", "2", "dev.ini", 8);
    config_release(&cfg);
}

static void test_err_include_cycle(void **state)
{
    (void)state;
    put("a.ini", "[ferry]\n"
                 "include = b.ini\n");
    put("b.ini", "[sink.x]\n"
                 "plugin = null\n"
                 "[ferry]\n"
                 "include = a.ini\n");
    expect_load_error("a.ini", "b.ini:4: [ferry] include cycle: a.ini -> "
                               "b.ini -> a.ini");
    put("self.ini", "[ferry]\n"
                    "include = self.ini\n");
    expect_load_error("self.ini", "self.ini:2: [ferry] include cycle: "
                                  "self.ini -> self.ini");
}

static void test_err_include_missing(void **state)
{
    (void)state;
    put("a.ini", "[ferry]\n"
                 "include = nope.ini\n");
    expect_load_error("a.ini", "a.ini:2: [ferry] nope.ini: cannot open: No "
                               "such file or directory");
    put("conf/a.ini", "[ferry]\n"
                      "log_level = info\n"
                      "include = nope.ini\n");
    expect_load_error("conf/a.ini", "conf/a.ini:3: [ferry] conf/nope.ini: "
                                    "cannot open: No such file or "
                                    "directory");
    put("a.ini", "[ferry]\n"
                 "include =\n");
    expect_load_error("a.ini", "a.ini:2: [ferry] include needs a file name");
}

static void test_err_in_included_file(void **state)
{
    (void)state;
    put("base.ini", "[sink.cache]\n"
                    "plugin = redis\n"
                    "[sink.bad.name]\n");
    put("a.ini", "[ferry]\n"
                 "include = base.ini\n");
    expect_load_error("a.ini", "base.ini:3: [sink.bad.name] invalid "
                               "instance name 'bad.name' (1 to 64 "
                               "letters, digits, '_' or '-')");
}

/* ---- value parsers ------------------------------------------------------ */

static void test_parse_duration(void **state)
{
    static const struct {
        const char *s;
        uint64_t ms;
    } ok[] = {{"0", 0},
              {"0s", 0},
              {"250ms", 250},
              {"25ms", 25},
              {"30s", 30000},
              {"5m", 300000},
              {"1h", 3600000},
              {"1h30m", 5400000},
              {"1m30s", 90000},
              {"2s500ms", 2500},
              {"1h1m1s1ms", 3661001},
              /* Refused before ferry took Go's grammar (issue 11). */
              {"1.5s", 1500},
              {"30s5m", 330000},
              {"1h1h", 7200000},
              {"+5s", 5000}};
    static const char *const bad[] = {"",
                                      "10",
                                      "5x",
                                      "-1s",
                                      "s",
                                      "ms",
                                      " 5s",
                                      "5 s",
                                      "5S",
                                      "1h30",
                                      "5mm",
                                      "99999999999999999999ms",
                                      "9999999999999999h"};
    uint64_t ms;

    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        ms = 12345;
        if (config_parse_duration_ms(ok[i].s, &ms) != 0)
            fail_msg("'%s' refused", ok[i].s);
        assert_int_equal(ms, ok[i].ms);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (config_parse_duration_ms(bad[i], &ms) != -1)
            fail_msg("'%s' accepted", bad[i]);
    }
}

/*
 * Go's time.ParseDuration on a table of cases, the expected values written
 * by hand from Go's rules (nanoseconds in Go; ferry rounds a remainder
 * below a millisecond up). neg marks what Go accepts as negative: the
 * public parser refuses it, an option's range refuses it too.
 */
static void test_parse_duration_go(void **state)
{
    static const struct {
        const char *s;
        uint64_t ms; /* Go's value, rounded up to a millisecond */
        int neg;
    } ok[] = {{"0", 0, 0},
              {"+0", 0, 0},
              {"-0", 0, 0},
              {"0s", 0, 0},
              {"-0s", 0, 0},
              {"1.5h", 5400000, 0},
              {"500us", 1, 0},        /* Go: 500000ns */
              {"500\xC2\xB5s", 1, 0}, /* U+00B5 */
              {"500\xCE\xBCs", 1, 0}, /* U+03BC */
              {"1500us", 2, 0},       /* Go: 1.5ms */
              {"999999ns", 1, 0},
              {"1000000ns", 1, 0},
              {"1000001ns", 2, 0},
              {"1ns", 1, 0},
              {"1h2m3.5s", 3723500, 0},
              {"300ms", 300, 0},
              {".5s", 500, 0},
              {"1.s", 1000, 0},
              {"1.0005s", 1001, 0},
              {"0.25m", 15000, 0},
              {"2.5ms", 3, 0},
              {"1.000000001h", 3600001, 0}, /* Go: 3600000003600ns */
              {"1m1h", 3660000, 0},
              {"1s1s1s", 3000, 0},
              {"+1.5h", 5400000, 0},
              {"-1s", 1000, 1},
              {"-1.5h", 5400000, 1},
              {"00", 0, 0}, /* ferry's extension: zeros alone */
              /* Go truncates what is below a nanosecond. */
              {"1.00000000000000000000000001s", 1000, 0},
              {"2562047h", 9223369200000ull, 0}};
    static const char *const bad[] = {
        "",     "1",     "1d",   "h",    "1.5",    "1hh",   ".s",
        "-.s",  ".",     "-",    "+",    "1.5.5s", "1h 2m", "1H",
        "1e3s", "0x10s", "1,5s", "--1s", "1ms2",   "us",    "1\xC2s"};
    uint64_t ms;

    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        ms = 12345;
        if (ok[i].neg) {
            if (config_parse_duration_ms(ok[i].s, &ms) != -1)
                fail_msg("negative '%s' accepted", ok[i].s);
            continue;
        }
        if (config_parse_duration_ms(ok[i].s, &ms) != 0)
            fail_msg("'%s' refused", ok[i].s);
        if (ms != ok[i].ms)
            fail_msg("'%s' is %llu ms, expected %llu", ok[i].s,
                     (unsigned long long)ms, (unsigned long long)ok[i].ms);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (config_parse_duration_ms(bad[i], &ms) != -1)
            fail_msg("'%s' accepted", bad[i]);
    }
}

static void test_parse_size(void **state)
{
    static const struct {
        const char *s;
        uint64_t n;
    } ok[] = {{"0", 0},
              {"512", 512},
              {"64KB", 65536},
              {"16MB", 16777216},
              {"1kb", 1024},
              {"2KiB", 2048},
              {"3K", 3072},
              {"1MiB", 1048576},
              {"2m", 2097152},
              {"1GB", 1073741824},
              {"1gib", 1073741824},
              {"7B", 7},
              {"64 KB", 65536}};
    static const char *const bad[] = {"",
                                      "KB",
                                      "-1",
                                      "1.5MB",
                                      "12XB",
                                      "1 2",
                                      "0x10",
                                      "16MBs",
                                      "99999999999999999999",
                                      "20000000000000000GB"};
    uint64_t n;

    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (config_parse_size(ok[i].s, &n) != 0)
            fail_msg("'%s' refused", ok[i].s);
        assert_int_equal(n, ok[i].n);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (config_parse_size(bad[i], &n) != -1)
            fail_msg("'%s' accepted", bad[i]);
    }
}

static void test_parse_bool(void **state)
{
    static const char *const yes[] = {"true", "TRUE", "yes", "Yes", "on", "1"};
    static const char *const no[] = {"false", "False", "no", "NO", "off", "0"};
    static const char *const bad[] = {"", "maybe", "2", "y", "enabled"};
    int b;

    (void)state;
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        b = 0;
        assert_int_equal(config_parse_bool(yes[i], &b), 0);
        assert_int_equal(b, 1);
        b = 1;
        assert_int_equal(config_parse_bool(no[i], &b), 0);
        assert_int_equal(b, 0);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(config_parse_bool(bad[i], &b), -1);
}

static void test_parse_int(void **state)
{
    static const char *const bad[] = {"",
                                      "abc",
                                      "1.0",
                                      " 1",
                                      "1 ",
                                      "0x10",
                                      "-",
                                      "9223372036854775808",
                                      "-9223372036854775809"};
    int64_t v;

    (void)state;
    assert_int_equal(config_parse_int("0", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(config_parse_int("-5", &v), 0);
    assert_int_equal(v, -5);
    assert_int_equal(config_parse_int("+7", &v), 0);
    assert_int_equal(v, 7);
    assert_int_equal(config_parse_int("9223372036854775807", &v), 0);
    assert_true(v == INT64_MAX);
    assert_int_equal(config_parse_int("-9223372036854775808", &v), 0);
    assert_true(v == INT64_MIN);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (config_parse_int(bad[i], &v) != -1)
            fail_msg("'%s' accepted", bad[i]);
    }
}

static void test_parse_double(void **state)
{
    static const char *const bad[] = {"",    "abc",   "1.5x", "nan",
                                      "inf", "1e999", " 1"};
    double d;

    (void)state;
    assert_int_equal(config_parse_double("1.5", &d), 0);
    assert_true(d == 1.5);
    assert_int_equal(config_parse_double("-2", &d), 0);
    assert_true(d == -2.0);
    assert_int_equal(config_parse_double("1e3", &d), 0);
    assert_true(d == 1000.0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (config_parse_double(bad[i], &d) != -1)
            fail_msg("'%s' accepted", bad[i]);
    }
}

static void test_parse_list(void **state)
{
    struct config cfg;
    struct optset *o;
    const char *const *items;
    char err[256];

    (void)state;
    put("a.ini", "[route.r]\n"
                 "from = ws\n"
                 "to = cache\n"
                 "match = user, flags ,,company , \n"
                 "policies = ,\n");
    load_ok(&cfg, "a.ini");
    o = optset_new(config_section(&cfg, "route.r"), "route.r", route_opts, NULL,
                   err, sizeof(err));
    assert_non_null(o);
    assert_int_equal(optset_list(o, "match", &items), 3);
    assert_string_equal(items[0], "user");
    assert_string_equal(items[1], "flags");
    assert_string_equal(items[2], "company");
    assert_null(items[3]);
    assert_int_equal(optset_list(o, "policies", &items), 0);
    assert_null(items[0]);
    assert_true(optset_is_set(o, "policies"));
    optset_free(o);
    config_release(&cfg);
}

/* ---- validation --------------------------------------------------------- */

static void test_optset_values_and_defaults(void **state)
{
    struct config cfg;
    struct optset *o;
    const char *const *items;
    char err[256] = "";

    (void)state;
    put("a.ini", "[sink.cache]\n"
                 "plugin = redis\n"
                 "db = 3\n"
                 "ttl = 1h30m\n"
                 "max_message_size = 64KB\n"
                 "tls_verify = off\n"
                 "rate = 2.5\n"
                 "mode = Coalesce\n"
                 "cluster_addrs = a:1, b:2\n");
    load_ok(&cfg, "a.ini");
    o = optset_new(config_section(&cfg, "sink.cache"), "sink.cache", sink_opts,
                   plugin_key, err, sizeof(err));
    if (!o)
        fail_msg("%s", err);
    assert_string_equal(optset_str(o, "address"), "127.0.0.1:6379");
    assert_false(optset_is_set(o, "address"));
    assert_null(optset_str(o, "username"));
    assert_int_equal(optset_int(o, "db"), 3);
    assert_true(optset_is_set(o, "db"));
    assert_int_equal(optset_duration_ms(o, "ttl"), 5400000);
    assert_int_equal(optset_size(o, "max_message_size"), 65536);
    assert_int_equal(optset_bool(o, "tls_verify"), 0);
    assert_true(optset_double(o, "rate") == 2.5);
    /* Enum values match in any case and read back as the table spells
     * them. */
    assert_string_equal(optset_str(o, "mode"), "coalesce");
    assert_int_equal(optset_list(o, "cluster_addrs", &items), 2);
    assert_string_equal(items[1], "b:2");
    assert_true(optset_has(o, "db"));
    assert_false(optset_has(o, "plugin"));
    assert_false(optset_is_set(o, "plugin"));
    optset_free(o);

    /* No section at all: every default. */
    o = optset_new(NULL, "sink.none", sink_opts, NULL, err, sizeof(err));
    assert_non_null(o);
    assert_int_equal(optset_size(o, "max_message_size"), 16777216);
    assert_int_equal(optset_bool(o, "tls_verify"), 1);
    assert_int_equal(optset_duration_ms(o, "ttl"), 0);
    assert_true(optset_double(o, "rate") == 10.0);
    assert_string_equal(optset_str(o, "mode"), "block");
    assert_int_equal(optset_list(o, "cluster_addrs", &items), 0);
    assert_null(items[0]);
    optset_free(o);
    optset_free(NULL);
    config_release(&cfg);
}

/* FERRY_OPT_PATH: a relative value is resolved against the folder of the
 * file that set it (the included file's, for a key set there); "-",
 * absolute paths, empty values and defaults are left alone. */
static const struct ferry_option path_opts[] = {
    {"path", FERRY_OPT_STRING, "-", 0, 0, NULL, FERRY_OPT_PATH, "a file"},
    {"ca", FERRY_OPT_STRING, "ca.pem", 0, 0, NULL, FERRY_OPT_PATH, "a file"},
    {"name", FERRY_OPT_STRING, NULL, 0, 0, NULL, 0, "not a path"},
    {NULL, 0, NULL, 0, 0, NULL, 0, NULL},
};

static struct optset *path_optset(const char *file)
{
    struct config cfg;
    struct optset *o;
    char err[256] = "";

    load_ok(&cfg, file);
    o = optset_new(config_section(&cfg, "sink.out"), "sink.out", path_opts,
                   plugin_key, err, sizeof(err));
    if (!o)
        fail_msg("%s", err);
    config_release(&cfg);
    return o;
}

static void test_optset_path_relative_to_file(void **state)
{
    struct optset *o;
    char *r;

    (void)state;
    put("conf/base.ini", "[sink.out]\n"
                         "plugin = file\n"
                         "path = data/out.jsonl\n"
                         "name = data/out.jsonl\n");
    put("conf/sub/main.ini", "[ferry]\n"
                             "include = ../base.ini\n"
                             "[sink.out]\n"
                             "ca = certs/ca.pem\n");
    o = path_optset("conf/sub/main.ini");
    /* Set in the included file: its folder. */
    assert_string_equal(optset_str(o, "path"), "conf/sub/../data/out.jsonl");
    assert_string_equal(optset_str(o, "ca"), "conf/sub/certs/ca.pem");
    /* Not a path option: the text as written. */
    assert_string_equal(optset_str(o, "name"), "data/out.jsonl");
    optset_free(o);

    put("conf/plain.ini", "[sink.out]\n"
                          "plugin = file\n"
                          "path = -\n"
                          "ca = /etc/ssl/ca.pem\n");
    o = path_optset("conf/plain.ini");
    assert_string_equal(optset_str(o, "path"), "-");
    assert_string_equal(optset_str(o, "ca"), "/etc/ssl/ca.pem");
    optset_free(o);

    /* Defaults are not set by any file. */
    put("conf/none.ini", "[sink.out]\nplugin = file\n");
    o = path_optset("conf/none.ini");
    assert_string_equal(optset_str(o, "path"), "-");
    assert_string_equal(optset_str(o, "ca"), "ca.pem");
    optset_free(o);

    /* A file named without a folder is in the working directory. */
    r = config_resolve_path("a.ini", "in.jsonl");
    assert_string_equal(r, "in.jsonl");
    free(r);
    r = config_resolve_path("/etc/ferry/ferry.ini", "in.jsonl");
    assert_string_equal(r, "/etc/ferry/in.jsonl");
    free(r);
    r = config_resolve_path("/etc/ferry/ferry.ini", "");
    assert_string_equal(r, "");
    free(r);
}

static void test_err_unknown_key(void **state)
{
    (void)state;
    expect_opt_error("[ferry]\n"
                     "[sink.cache]\n"
                     "plugin = redis\n"
                     "adress = 127.0.0.1:6379\n",
                     "sink.cache", sink_opts,
                     "a.ini:4: [sink.cache] unknown key 'adress' (did you "
                     "mean 'address'?)");
    expect_opt_error("[sink.cache]\n"
                     "plugin = redis\n"
                     "color = blue\n",
                     "sink.cache", sink_opts,
                     "a.ini:3: [sink.cache] unknown key 'color'");
    /* Extra keys are valid and are candidates for the hint. */
    expect_opt_error("[sink.cache]\n"
                     "plugn = redis\n",
                     "sink.cache", sink_opts,
                     "a.ini:2: [sink.cache] unknown key 'plugn' (did you "
                     "mean 'plugin'?)");
}

static void test_err_unknown_key_in_included_file(void **state)
{
    struct config cfg;
    char err[512] = "";

    (void)state;
    put("base.ini", "[sink.cache]\n"
                    "plugin = redis\n"
                    "pasword = x\n");
    put("a.ini", "[ferry]\n"
                 "include = base.ini\n"
                 "[sink.cache]\n"
                 "db = 2\n");
    load_ok(&cfg, "a.ini");
    assert_null(optset_new(config_section(&cfg, "sink.cache"), "sink.cache",
                           sink_opts, plugin_key, err, sizeof(err)));
    assert_string_equal(err, "base.ini:3: [sink.cache] unknown key "
                             "'pasword' (did you mean 'password'?)");
    config_release(&cfg);
}

static void test_err_wrong_type(void **state)
{
    (void)state;
    expect_opt_error("[route.main]\nfrom = ws\nto = c\nbatch_size = abc\n",
                     "route.main", route_opts,
                     "a.ini:4: [route.main] batch_size: 'abc' is not an "
                     "integer");
    expect_opt_error("[route.main]\nfrom = ws\nto = c\n"
                     "batch_size = 99999999999999999999\n",
                     "route.main", route_opts,
                     "a.ini:4: [route.main] batch_size: "
                     "'99999999999999999999' is too large");
    expect_opt_error("[route.main]\nbatch_timeout = 10\n", "route.main",
                     route_opts,
                     "a.ini:2: [route.main] batch_timeout: '10' needs a "
                     "unit (ms, s, m, h)");
    expect_opt_error("[route.main]\nbatch_timeout = 5x\n", "route.main",
                     route_opts,
                     "a.ini:2: [route.main] batch_timeout: '5x' is not a "
                     "duration (e.g. 250ms, 30s, 5m, 1h30m)");
    expect_opt_error("[sink.c]\ntls_verify = maybe\n", "sink.c", sink_opts,
                     "a.ini:2: [sink.c] tls_verify: 'maybe' is not a "
                     "boolean (true/false, yes/no, on/off, 1/0)");
    expect_opt_error("[sink.c]\nmax_message_size = 12XB\n", "sink.c", sink_opts,
                     "a.ini:2: [sink.c] max_message_size: '12XB' is not a "
                     "size (e.g. 512, 64KB, 16MB)");
    expect_opt_error("[sink.c]\nrate = fast\n", "sink.c", sink_opts,
                     "a.ini:2: [sink.c] rate: 'fast' is not a number");
    expect_opt_error("[sink.c]\ndb =\n", "sink.c", sink_opts,
                     "a.ini:2: [sink.c] db: '' is not an integer");
}

static void test_err_out_of_range(void **state)
{
    (void)state;
    expect_opt_error("[route.main]\nfrom = ws\nto = c\nbatch_size = 0\n",
                     "route.main", route_opts,
                     "a.ini:4: [route.main] batch_size: 0 is out of range "
                     "(1..100000)");
    expect_opt_error("[route.main]\nbatch_timeout = 2h\n", "route.main",
                     route_opts,
                     "a.ini:2: [route.main] batch_timeout: 2h is out of "
                     "range (1ms..1h)");
    expect_opt_error("[sink.c]\nmax_message_size = 2GB\n", "sink.c", sink_opts,
                     "a.ini:2: [sink.c] max_message_size: 2GB is out of "
                     "range (1KB..1GB)");
    expect_opt_error("[sink.c]\nrate = 0.25\n", "sink.c", sink_opts,
                     "a.ini:2: [sink.c] rate: 0.25 is out of range "
                     "(0.5..1000)");
    expect_opt_error("[sink.c]\ndb = -1\n", "sink.c", sink_opts,
                     "a.ini:2: [sink.c] db: -1 is out of range (0..15)");
    /* Go accepts a negative duration; the option's range refuses it. */
    expect_opt_error("[route.main]\nbatch_timeout = -1.5s\n", "route.main",
                     route_opts,
                     "a.ini:2: [route.main] batch_timeout: -1.5s is out of "
                     "range (1ms..1h)");
    expect_opt_error("[route.main]\nbatch_timeout = -0\n", "route.main",
                     route_opts,
                     "a.ini:2: [route.main] batch_timeout: -0 is out of "
                     "range (1ms..1h)");
}

/* A sub-millisecond duration rounds up, so Go's BATCH_TIMEOUT=500us fits
 * an option whose minimum is 1ms. */
static void test_optset_duration_rounds_up(void **state)
{
    struct config cfg;
    struct optset *o;
    char err[256] = "";

    (void)state;
    put("a.ini", "[route.main]\n"
                 "from = ws\n"
                 "to = c\n"
                 "batch_timeout = 500us\n");
    load_ok(&cfg, "a.ini");
    o = optset_new(config_section(&cfg, "route.main"), "route.main", route_opts,
                   NULL, err, sizeof(err));
    if (!o)
        fail_msg("%s", err);
    assert_int_equal(optset_duration_ms(o, "batch_timeout"), 1);
    optset_free(o);
    config_release(&cfg);
}

/* ---- Go environment: variables named, ${!VAR}, [env.VAR] --------------- */

/* An invalid value expanded from a variable names it; a default does not
 * (the file and line are then the whole story). */
static void test_err_names_variable(void **state)
{
    (void)state;
    setenv("FERRY_T_TTL", "1d", 1);
    expect_opt_error("[sink.cache]\nplugin = redis\nttl = ${FERRY_T_TTL:-0}\n",
                     "sink.cache", sink_opts,
                     "a.ini:3: [sink.cache] ttl: '1d' is not a duration "
                     "(e.g. 250ms, 30s, 5m, 1h30m) (from $FERRY_T_TTL)");
    setenv("FERRY_T_HOST", "h", 1);
    setenv("FERRY_T_DB", "x", 1);
    expect_opt_error("[sink.cache]\nplugin = redis\n"
                     "db = ${FERRY_T_DB}${FERRY_T_HOST}${FERRY_T_DB}\n",
                     "sink.cache", sink_opts,
                     "a.ini:3: [sink.cache] db: 'xhx' is not an integer "
                     "(from $FERRY_T_DB, $FERRY_T_HOST)");
    unsetenv("FERRY_T_TTL");
    expect_opt_error("[sink.cache]\nplugin = redis\nttl = ${FERRY_T_TTL:-5x}\n",
                     "sink.cache", sink_opts,
                     "a.ini:3: [sink.cache] ttl: '5x' is not a duration "
                     "(e.g. 250ms, 30s, 5m, 1h30m)");
    unsetenv("FERRY_T_HOST");
    unsetenv("FERRY_T_DB");
}

static void test_expand_negation(void **state)
{
    struct config cfg;

    (void)state;
    put("a.ini", "[sink.c]\n"
                 "a = ${!FERRY_T_OFF:-false}\n"
                 "b = ${!FERRY_T_OFF-true}\n"
                 "c = x${!FERRY_T_ON}y\n");
    unsetenv("FERRY_T_OFF");
    setenv("FERRY_T_ON", "YES", 1);
    load_ok(&cfg, "a.ini");
    assert_string_equal(value(&cfg, "sink.c", "a"), "true");
    assert_string_equal(value(&cfg, "sink.c", "b"), "false");
    assert_string_equal(value(&cfg, "sink.c", "c"), "xfalsey");
    assert_null(config_entry(config_section(&cfg, "sink.c"), "a")->vars);
    assert_string_equal(config_entry(config_section(&cfg, "sink.c"), "c")->vars,
                        "$FERRY_T_ON");
    config_release(&cfg);

    setenv("FERRY_T_OFF", "true", 1);
    load_ok(&cfg, "a.ini");
    assert_string_equal(value(&cfg, "sink.c", "a"), "false");
    config_release(&cfg);
    setenv("FERRY_T_OFF", "0", 1);
    load_ok(&cfg, "a.ini");
    assert_string_equal(value(&cfg, "sink.c", "a"), "true");
    config_release(&cfg);

    setenv("FERRY_T_OFF", "maybe", 1);
    expect_load_error("a.ini", "a.ini:2: [sink.c] a: 'maybe' is not a boolean "
                               "(true/false, yes/no, on/off, 1/0) (from "
                               "$FERRY_T_OFF)");
    unsetenv("FERRY_T_OFF");
    put("a.ini", "[sink.c]\nwriter_lock = ${!FERRY_T_OFF:-nah}\n");
    expect_load_error("a.ini",
                      "a.ini:2: [sink.c] writer_lock: 'nah' is not a boolean "
                      "(true/false, yes/no, on/off, 1/0) (the default of "
                      "${!FERRY_T_OFF})");
    unsetenv("FERRY_T_ON");
}

static void test_env_notice(void **state)
{
    struct config cfg;

    (void)state;
    put("a.ini", "[env.FERRY_T_ASYNC]\n"
                 "type = bool\n"
                 "notice = ferry's initial load never blocks the stream\n"
                 "[sink.c]\n"
                 "x = 1\n");
    unsetenv("FERRY_T_ASYNC");
    load_ok(&cfg, "a.ini");
    assert_int_equal(cfg.nnotices, 0);
    assert_null(config_section(&cfg, "env.FERRY_T_ASYNC"));
    assert_int_equal(cfg.count, 1);
    config_release(&cfg);

    setenv("FERRY_T_ASYNC", "false", 1);
    load_ok(&cfg, "a.ini");
    assert_int_equal(cfg.nnotices, 1);
    assert_string_equal(cfg.notices[0], "FERRY_T_ASYNC=false: ferry's initial "
                                        "load never blocks the stream");
    assert_null(config_section(&cfg, "env.FERRY_T_ASYNC"));
    assert_non_null(config_section(&cfg, "sink.c"));
    config_release(&cfg);

    setenv("FERRY_T_ASYNC", "sometimes", 1);
    expect_load_error("a.ini", "a.ini:1: [env.FERRY_T_ASYNC] 'sometimes' is "
                               "not a boolean (true/false, yes/no, on/off, "
                               "1/0) (from $FERRY_T_ASYNC)");
    unsetenv("FERRY_T_ASYNC");
}

static void test_env_refuse_and_types(void **state)
{
    struct config cfg;

    (void)state;
    put("a.ini", "[env.FERRY_T_TLS]\n"
                 "type = bool\n"
                 "refuse = true\n"
                 "error = TLS to Redis is not supported yet\n"
                 "[env.FERRY_T_PORT]\n"
                 "type = int\n"
                 "min = 1\n"
                 "max = 65535\n"
                 "[env.FERRY_T_WAIT]\n"
                 "type = duration\n"
                 "notice = ignored\n");
    setenv("FERRY_T_TLS", "false", 1);
    setenv("FERRY_T_PORT", "8090", 1);
    setenv("FERRY_T_WAIT", "1.5s", 1);
    load_ok(&cfg, "a.ini");
    assert_int_equal(cfg.nnotices, 1);
    assert_string_equal(cfg.notices[0], "FERRY_T_WAIT=1.5s: ignored");
    assert_int_equal(cfg.count, 0);
    config_release(&cfg);

    setenv("FERRY_T_TLS", "TRUE", 1);
    expect_load_error("a.ini", "a.ini:1: [env.FERRY_T_TLS] FERRY_T_TLS=TRUE: "
                               "TLS to Redis is not supported yet");
    setenv("FERRY_T_TLS", "", 1);
    setenv("FERRY_T_PORT", "0", 1);
    expect_load_error("a.ini", "a.ini:5: [env.FERRY_T_PORT] '0' is out of "
                               "range (from $FERRY_T_PORT)");
    setenv("FERRY_T_PORT", "http", 1);
    expect_load_error("a.ini", "a.ini:5: [env.FERRY_T_PORT] 'http' is not an "
                               "integer (from $FERRY_T_PORT)");
    unsetenv("FERRY_T_PORT");
    setenv("FERRY_T_WAIT", "1d", 1);
    expect_load_error("a.ini", "a.ini:9: [env.FERRY_T_WAIT] '1d' is not a "
                               "duration (e.g. 250ms, 30s, 5m, 1h30m) (from "
                               "$FERRY_T_WAIT)");
    unsetenv("FERRY_T_WAIT");
    unsetenv("FERRY_T_TLS");

    put("a.ini", "[env.FERRY_T_X]\nrefuse = *\nerror = not yet\n");
    setenv("FERRY_T_X", "a:1, b:2", 1);
    expect_load_error("a.ini", "a.ini:1: [env.FERRY_T_X] FERRY_T_X=a:1, b:2: "
                               "not yet");
    unsetenv("FERRY_T_X");
    load_ok(&cfg, "a.ini");
    config_release(&cfg);

    put("a.ini", "[env.FERRY_T_X]\nmatch = http://*, https://?*\n");
    setenv("FERRY_T_X", "https://api.example", 1);
    load_ok(&cfg, "a.ini");
    config_release(&cfg);
    setenv("FERRY_T_X", "api.example", 1);
    expect_load_error("a.ini", "a.ini:1: [env.FERRY_T_X] 'api.example' does "
                               "not have the expected form (http://*, "
                               "https://?*) (from $FERRY_T_X)");
    unsetenv("FERRY_T_X");

    put("a.ini", "[env.FERRY_T_X]\ntyp = bool\n");
    expect_load_error("a.ini", "a.ini:2: [env.FERRY_T_X] unknown key 'typ' "
                               "(did you mean 'type'?)");
    setenv("FERRY_T_X", "1", 1);
    put("a.ini", "[env.FERRY_T_X]\ntype = number\n");
    expect_load_error("a.ini", "a.ini:1: [env.FERRY_T_X] type: 'number' is "
                               "not one of bool, int, duration, string");
    unsetenv("FERRY_T_X");
}

static void test_err_bad_enum(void **state)
{
    (void)state;
    expect_opt_error("[sink.c]\nmode = blok\n", "sink.c", sink_opts,
                     "a.ini:2: [sink.c] mode: 'blok' is not one of block, "
                     "coalesce, drop_newest, drop_oldest (did you mean "
                     "'block'?)");
    expect_opt_error("[sink.c]\nmode = fifo\n", "sink.c", sink_opts,
                     "a.ini:2: [sink.c] mode: 'fifo' is not one of block, "
                     "coalesce, drop_newest, drop_oldest");
}

static void test_err_missing_required(void **state)
{
    char err[256] = "";

    (void)state;
    expect_opt_error("[ferry]\n"
                     "\n"
                     "[route.main]\n"
                     "from = ws\n",
                     "route.main", route_opts,
                     "a.ini:3: [route.main] missing required key 'to'");
    expect_opt_error("[route.main]\nfrom = ws\nto =\n", "route.main",
                     route_opts, "a.ini:3: [route.main] to: must not be empty");
    assert_null(
        optset_new(NULL, "route.none", route_opts, NULL, err, sizeof(err)));
    assert_string_equal(err, "[route.none] missing required key 'from'");
}

static void test_optset_print_masks_secrets(void **state)
{
    struct config cfg;
    struct optset *o;
    char err[256] = "";
    char *text = NULL;
    size_t len = 0;
    FILE *out;

    (void)state;
    setenv("FERRY_T_PASS", "hunter2", 1);
    put("a.ini", "[sink.cache]\n"
                 "plugin = redis\n"
                 "password = ${FERRY_T_PASS}\n"
                 "mode = DROP_OLDEST\n"
                 "cluster_addrs = a:1 ,b:2,\n"
                 "ttl = 90s\n");
    load_ok(&cfg, "a.ini");
    o = optset_new(config_section(&cfg, "sink.cache"), "sink.cache", sink_opts,
                   plugin_key, err, sizeof(err));
    assert_non_null(o);
    out = open_memstream(&text, &len);
    assert_non_null(out);
    optset_print(o, out);
    fclose(out);
    assert_string_equal(text, "address = 127.0.0.1:6379\n"
                              "username =\n"
                              "password = ***\n"
                              "db = 0\n"
                              "ttl = 90s\n"
                              "max_message_size = 16MB\n"
                              "tls_verify = true\n"
                              "rate = 10\n"
                              "mode = drop_oldest\n"
                              "cluster_addrs = a:1, b:2\n"
                              "api_key = ***\n");
    assert_null(strstr(text, "hunter2"));
    assert_null(strstr(text, "k-default"));
    free(text);
    optset_free(o);

    /* An unset secret prints as empty, not as ***. */
    o = optset_new(NULL, "sink.x", sink_opts, NULL, err, sizeof(err));
    assert_non_null(o);
    text = NULL;
    out = open_memstream(&text, &len);
    optset_print(o, out);
    fclose(out);
    assert_non_null(strstr(text, "\npassword =\n"));
    free(text);
    optset_free(o);
    config_release(&cfg);
    unsetenv("FERRY_T_PASS");
}

static void test_suggest(void **state)
{
    static const char *const keys[] = {"address", "password",   "db",
                                       "url",     "key_prefix", NULL};

    (void)state;
    assert_string_equal(config_suggest("adress", keys), "address");
    assert_string_equal(config_suggest("adderss", keys), "address");
    assert_string_equal(config_suggest("ADDRESS", keys), "address");
    assert_string_equal(config_suggest("pasword", keys), "password");
    assert_string_equal(config_suggest("keyprefix", keys), "key_prefix");
    assert_string_equal(config_suggest("d", keys), "db");
    assert_null(config_suggest("ttl", keys));
    assert_null(config_suggest("color", keys));
    assert_null(config_suggest("adr", keys));
    assert_null(config_suggest("x", NULL));
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_load_sections_and_lines),
        T(test_load_empty_section_and_reopened_section),
        T(test_load_long_line),
        T(test_err_line_too_long),
        T(test_err_cannot_open),
        T(test_err_unknown_section_kind),
        T(test_err_bad_instance_names),
        T(test_err_key_outside_section),
        T(test_err_syntax),
        T(test_env_expansion),
        T(test_err_env_unset),
        T(test_env_only_winning_entries_expand),
        T(test_err_env_syntax),
        T(test_include_overrides),
        T(test_include_several_and_nested),
        T(test_include_path_from_env),
        T(test_include_overlay_swaps_plugin),
        T(test_err_include_cycle),
        T(test_err_include_missing),
        T(test_err_in_included_file),
        T(test_parse_duration),
        T(test_parse_duration_go),
        T(test_parse_size),
        T(test_parse_bool),
        T(test_parse_int),
        T(test_parse_double),
        T(test_parse_list),
        T(test_optset_values_and_defaults),
        T(test_optset_path_relative_to_file),
        T(test_err_unknown_key),
        T(test_err_unknown_key_in_included_file),
        T(test_err_wrong_type),
        T(test_err_out_of_range),
        T(test_optset_duration_rounds_up),
        T(test_err_names_variable),
        T(test_expand_negation),
        T(test_env_notice),
        T(test_env_refuse_and_types),
        T(test_err_bad_enum),
        T(test_err_missing_required),
        T(test_optset_print_masks_secrets),
        T(test_suggest),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
