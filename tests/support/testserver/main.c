/*
 * tests/support/testserver/main.c: command line, workload generation and
 * the startup self-check of the bundled Schematic datastream test server.
 * See tests/support/README.md for the options and what is sent.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testserver.h"

static const char usage[] =
    "usage: testserver [options]\n"
    "  --port N              ws:// + http:// on 127.0.0.1 (0 = any)\n"
    "  --tls-port N --cert F --key F   wss:// + https:// as well\n"
    "  --ready-file F        written as \"<port> <tls_port>\\n\" when "
    "listening\n"
    "  --api-key K           required X-Schematic-Api-Key (test-key)\n"
    "  --seed N --companies N --users N --flags N   initial state\n"
    "  --messages N          stream messages (1000)\n"
    "  --mix F:P:D           full:partial:delete weights (40:50:10)\n"
    "  --company-bytes N     approximate company size (1500)\n"
    "  --rate R              messages per second per connection (0 = "
    "unlimited)\n"
    "  --disconnect-every N  drop the connection after every N messages\n"
    "  --reload-at N         send one reload frame after message N\n"
    "  --malformed-every N   a malformed frame after every N messages\n"
    "  --malformed-huge      include a > 16 MB frame in the malformed "
    "cycle\n"
    "  --stall-after N       stop reading and writing after N messages\n"
    "  --cache-version V     (c0ffee01)   --key-prefix P (schematic)\n"
    "  --expect F            write the expected final cache (JSON)\n"
    "  --samples DIR         add the spec's sample flags, company and user\n"
    "  --base-ms N|now       stream position base (1767225600000)\n"
    "  --log F               JSONL event log\n";

enum {
    OPT_PORT = 256,
    OPT_TLS_PORT,
    OPT_CERT,
    OPT_KEY,
    OPT_READY,
    OPT_API_KEY,
    OPT_SEED,
    OPT_COMPANIES,
    OPT_USERS,
    OPT_FLAGS,
    OPT_MESSAGES,
    OPT_MIX,
    OPT_COMPANY_BYTES,
    OPT_RATE,
    OPT_DISCONNECT,
    OPT_RELOAD,
    OPT_MALFORMED,
    OPT_MALFORMED_HUGE,
    OPT_STALL,
    OPT_VERSION,
    OPT_PREFIX,
    OPT_EXPECT,
    OPT_LOG,
    OPT_SAMPLES,
    OPT_BASE_MS,
    OPT_HELP
};

static const struct option long_opts[] = {
    {"port", required_argument, NULL, OPT_PORT},
    {"tls-port", required_argument, NULL, OPT_TLS_PORT},
    {"cert", required_argument, NULL, OPT_CERT},
    {"key", required_argument, NULL, OPT_KEY},
    {"ready-file", required_argument, NULL, OPT_READY},
    {"api-key", required_argument, NULL, OPT_API_KEY},
    {"seed", required_argument, NULL, OPT_SEED},
    {"companies", required_argument, NULL, OPT_COMPANIES},
    {"users", required_argument, NULL, OPT_USERS},
    {"flags", required_argument, NULL, OPT_FLAGS},
    {"messages", required_argument, NULL, OPT_MESSAGES},
    {"mix", required_argument, NULL, OPT_MIX},
    {"company-bytes", required_argument, NULL, OPT_COMPANY_BYTES},
    {"rate", required_argument, NULL, OPT_RATE},
    {"disconnect-every", required_argument, NULL, OPT_DISCONNECT},
    {"reload-at", required_argument, NULL, OPT_RELOAD},
    {"malformed-every", required_argument, NULL, OPT_MALFORMED},
    {"malformed-huge", no_argument, NULL, OPT_MALFORMED_HUGE},
    {"stall-after", required_argument, NULL, OPT_STALL},
    {"cache-version", required_argument, NULL, OPT_VERSION},
    {"key-prefix", required_argument, NULL, OPT_PREFIX},
    {"expect", required_argument, NULL, OPT_EXPECT},
    {"samples", required_argument, NULL, OPT_SAMPLES},
    {"base-ms", required_argument, NULL, OPT_BASE_MS},
    {"log", required_argument, NULL, OPT_LOG},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0}};

static int parse_num(const char *opt, const char *s, long min, long max,
                     long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) {
        fprintf(stderr,
                "testserver: --%s: expected an integer in [%ld, "
                "%ld], got \"%s\"\n",
                opt, min, max, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_mix(const char *s, struct ts_opts *o)
{
    int f, p, d, n = 0;

    if (sscanf(s, "%d:%d:%d%n", &f, &p, &d, &n) != 3 || s[n] || f < 0 ||
        p < 0 || d < 0 || f + p + d == 0) {
        fprintf(stderr,
                "testserver: --mix: expected F:P:D (non-negative, "
                "not all zero), got \"%s\"\n",
                s);
        return -1;
    }
    o->mix_full = f;
    o->mix_partial = p;
    o->mix_delete = d;
    return 0;
}

long long ts_base_ms = TS_BASE_MS;

static int parse_args(int argc, char **argv, struct ts_opts *o)
{
    long v;
    int c;

    memset(o, 0, sizeof(*o));
    o->tls_port = -1;
    o->api_key = "test-key";
    o->seed = 1;
    o->companies = 100;
    o->users = 100;
    o->flags = 10;
    o->messages = 1000;
    o->mix_full = 40;
    o->mix_partial = 50;
    o->mix_delete = 10;
    o->company_bytes = 1500;
    o->cache_version = "c0ffee01";
    o->key_prefix = "schematic";

    while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
        const char *name = NULL;

        for (const struct option *lo = long_opts; lo->name; lo++)
            if (lo->val == c)
                name = lo->name;
        switch (c) {
        case OPT_PORT:
            if (parse_num(name, optarg, 0, 65535, &v))
                return -1;
            o->port = (int)v;
            break;
        case OPT_TLS_PORT:
            if (parse_num(name, optarg, 0, 65535, &v))
                return -1;
            o->tls_port = (int)v;
            break;
        case OPT_CERT:
            o->cert = optarg;
            break;
        case OPT_KEY:
            o->key = optarg;
            break;
        case OPT_READY:
            o->ready_file = optarg;
            break;
        case OPT_API_KEY:
            o->api_key = optarg;
            break;
        case OPT_SEED: {
            char *end;

            errno = 0;
            o->seed = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end) {
                fprintf(stderr, "testserver: --seed: bad value \"%s\"\n",
                        optarg);
                return -1;
            }
            break;
        }
        case OPT_COMPANIES:
            if (parse_num(name, optarg, 0, 100000000, &o->companies))
                return -1;
            break;
        case OPT_USERS:
            if (parse_num(name, optarg, 0, 100000000, &o->users))
                return -1;
            break;
        case OPT_FLAGS:
            if (parse_num(name, optarg, 0, 1000000, &o->flags))
                return -1;
            break;
        case OPT_MESSAGES:
            if (parse_num(name, optarg, 0, 1000000000, &o->messages))
                return -1;
            break;
        case OPT_MIX:
            if (parse_mix(optarg, o))
                return -1;
            break;
        case OPT_COMPANY_BYTES:
            if (parse_num(name, optarg, 0, 10000000, &o->company_bytes))
                return -1;
            break;
        case OPT_RATE: {
            char *end;

            errno = 0;
            o->rate = strtod(optarg, &end);
            if (errno || end == optarg || *end || o->rate < 0) {
                fprintf(stderr, "testserver: --rate: bad value \"%s\"\n",
                        optarg);
                return -1;
            }
            break;
        }
        case OPT_DISCONNECT:
            if (parse_num(name, optarg, 0, 1000000000, &o->disconnect_every))
                return -1;
            break;
        case OPT_RELOAD:
            if (parse_num(name, optarg, 0, 1000000000, &o->reload_at))
                return -1;
            break;
        case OPT_MALFORMED:
            if (parse_num(name, optarg, 0, 1000000000, &o->malformed_every))
                return -1;
            break;
        case OPT_MALFORMED_HUGE:
            o->malformed_huge = 1;
            break;
        case OPT_STALL:
            if (parse_num(name, optarg, 0, 1000000000, &o->stall_after))
                return -1;
            break;
        case OPT_VERSION:
            o->cache_version = optarg;
            break;
        case OPT_PREFIX:
            o->key_prefix = optarg;
            break;
        case OPT_EXPECT:
            o->expect = optarg;
            break;
        case OPT_LOG:
            o->log = optarg;
            break;
        case OPT_SAMPLES:
            o->samples = optarg;
            break;
        case OPT_BASE_MS:
            if (strcmp(optarg, "now") == 0) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts_base_ms = (long long)ts.tv_sec * 1000 +
                             ts.tv_nsec / 1000000;
            } else {
                char *end;
                ts_base_ms = strtoll(optarg, &end, 10);
                if (*end || ts_base_ms <= 0) {
                    fprintf(stderr, "testserver: --base-ms: expected a "
                                    "positive integer or 'now'\n");
                    return -1;
                }
            }
            break;
        case OPT_HELP:
            fputs(usage, stdout);
            exit(0);
        default:
            fputs(usage, stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "testserver: unexpected argument \"%s\"\n",
                argv[optind]);
        return -1;
    }
    if (o->tls_port >= 0 && (!o->cert || !o->key)) {
        fprintf(stderr, "testserver: --tls-port needs --cert and --key\n");
        return -1;
    }
    if (!*o->cache_version || strchr(o->cache_version, ':')) {
        fprintf(stderr, "testserver: --cache-version must be non-empty "
                        "and contain no ':'\n");
        return -1;
    }
    return 0;
}

/* Every initial company and user must come back unchanged from the REST
 * conversion, or REST-loaded state could never match the expected one. */
static int roundtrip_self_check(const struct ts_world *w)
{
    static const enum sch_type types[2] = {SCH_COMPANY, SCH_USER};

    for (int k = 0; k < 2; k++) {
        enum sch_type t = types[k];

        for (size_t i = 1; i <= w->nslot[t]; i++) {
            const struct ts_val *v = &w->init[t][i];
            const char *text = ts_text(w, v);
            json_t *e;
            char err[512];
            int rc;

            if (!v->live)
                continue;
            e = json_loadb(text, v->len, 0, NULL);
            rc = !e ||
                 rest_roundtrip_check(t, e, text, v->len, err, sizeof(err));
            if (rc) {
                fprintf(stderr, "testserver: self-check failed for %.*s: %s\n",
                        (int)(v->len > 60 ? 60 : v->len), text,
                        e ? err : "unparsable");
                json_decref(e);
                return -1;
            }
            json_decref(e);
        }
    }
    return 0;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    struct ts_opts o;
    struct ts_gen g;
    struct ts_world w;
    double t0 = now_s();
    int rc = 2;

    memset(&w, 0, sizeof(w));
    memset(&g, 0, sizeof(g));
    if (parse_args(argc, argv, &o))
        return 2;
    if (evlog_open(o.log))
        return 2;
    if (o.samples && samples_load(o.samples))
        goto out;
    if (gen_init(&g, &o, &w) || roundtrip_self_check(&w) || gen_stream(&g))
        goto out;
    if (o.expect && gen_write_expect(&g, o.expect))
        goto out;
    gen_release(&g);
    if (o.messages >= 100000)
        fprintf(stderr,
                "testserver: %ld messages, %.1f MB of frames, generated "
                "in %.1f s\n",
                o.messages, (double)w.frames.len / 1e6, now_s() - t0);
    rc = server_run(&o, &w);
out:
    gen_release(&g);
    world_release(&w);
    samples_release();
    evlog_close();
    return rc;
}
