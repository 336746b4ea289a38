/*
 * core/loader.h: loading plugins with dlopen and checking their descriptor.
 */
#ifndef FERRY_CORE_LOADER_H
#define FERRY_CORE_LOADER_H

#include <stddef.h>
#include <stdio.h>

#include "ferry/plugin.h"

struct plugin {
    char *path;
    void *dl;
    /* Nonzero when a section's `plugin =` named this file by its path
     * rather than by a name looked up in the plugin folder. */
    int by_path;
    /* Copied from the .so: min(struct_size, sizeof) bytes, rest zero. */
    struct ferry_plugin desc;
};

/*
 * Opens path, finds `ferry_plugin`, and checks magic, ABI major (equal),
 * ABI minor (not newer than the core), struct_size (at least
 * FERRY_PLUGIN_SIZE_1_0), kind (equal to expect_kind unless it is 0), name
 * (non-empty) and the callbacks its kind requires, before calling
 * anything. Returns a new struct plugin, or NULL with one line in err
 * naming the file and both values, e.g.
 *   "build/plugins/sink_redis.so: ABI major 2, core supports 1".
 */
struct plugin *loader_open(const char *path, int expect_kind, char *err,
                           size_t errlen);
/* dlcloses and frees. Accepts NULL. */
void loader_close(struct plugin *p);

/* "<dir>/<kind>_<name>.so" into buf. Returns buf. */
char *loader_path(char *buf, size_t len, const char *dir, int kind,
                  const char *name);
/* Nonzero when a `plugin =` value is a path to a file (it contains a '/'
 * or ends in ".so") rather than a plugin name. Any thread. */
int loader_ref_is_path(const char *value);

/*
 * The plugin folder used when neither -d, [ferry] plugin_dir nor
 * $FERRY_PLUGIN_DIR names one: <dir of the running binary>/../lib/ferry/
 * plugins when that folder exists (so an install under any PREFIX finds
 * its own plugins without a rebuild), else the compiled-in
 * FERRY_PLUGIN_DIR. Returns a malloc'd string the caller frees, or NULL
 * when out of memory. Any thread.
 */
char *loader_default_dir(void);

/* "string", "int", ... for a FERRY_OPT_* type; NULL for an unknown one. */
const char *loader_opt_type_name(int type);
/* Nonzero when name is a valid plugin or option name: 1 to 64 letters,
 * digits, '_' or '-'. */
int loader_name_valid(const char *name);

/*
 * Checks a descriptor found in memory (the `ferry_plugin` symbol of path)
 * exactly as loader_open() does, and on success copies it into *out.
 * sym_size is the symbol's size from the ELF symbol table, or 0 when
 * unknown; when known, nothing beyond it is read. Returns 0, or -1 with
 * one line in err. For loader_open() and tests; any thread.
 */
int loader_check_desc(const char *path, const void *sym, size_t sym_size,
                      int expect_kind, struct ferry_plugin *out, char *err,
                      size_t errlen);
/* Copies min(src_size, sizeof(*dst)) bytes of a descriptor into dst and
 * zero-fills the rest of dst. Checks nothing. */
void loader_copy_desc(struct ferry_plugin *dst, const void *src,
                      size_t src_size);

/* "source", "sink", "policy"; NULL for an unknown kind. */
const char *loader_kind_name(int kind);
/* FERRY_KIND_* for "source" etc., or 0. */
int loader_kind_parse(const char *name);

/*
 * A set of loaded plugins with unique names per kind: refuses a second
 * plugin of the same kind and name from another file ("duplicate name").
 */
struct plugin_set;
struct plugin_set *plugin_set_new(const char *dir);
/* Loads (or returns the already loaded) <kind>_<name>.so from the set's
 * directory. NULL with the message in err. */
struct plugin *plugin_set_get(struct plugin_set *s, int kind,
                              const char *name, char *err, size_t errlen);
/*
 * Resolves a section's `plugin =` value and loads it. A value that
 * loader_ref_is_path() calls a path is a .so file: absolute, or relative
 * to the folder of cfg_file (the configuration file that set the value;
 * NULL or a bare file name means the working directory), made canonical
 * with realpath() when the file exists. Any other value is a name, as for
 * plugin_set_get(). Every check of loader_open() and the set's duplicate
 * name check apply to both. Returns the plugin, owned by the set, or NULL
 * with one line in err. Called from the thread that builds a pipeline.
 */
struct plugin *plugin_set_ref(struct plugin_set *s, int kind, const char *value,
                              const char *cfg_file, char *err, size_t errlen);
/* Adds an explicit file (tests, `ferry inspect`). */
struct plugin *plugin_set_add(struct plugin_set *s, const char *path,
                              int expect_kind, char *err, size_t errlen);
void plugin_set_free(struct plugin_set *s);

/* An option table as a Markdown section ("### title", description, a
 * table of key, type, default, description), as `ferry inspect
 * --markdown` prints it and README.md embeds it. */
void loader_options_markdown(FILE *out, const char *title,
                             const char *description,
                             const struct ferry_option *table);

/* `ferry plugins [-d DIR]`: one line per .so: kind, name, version, ABI.
 * Broken files are listed with their error. Returns 0, or 2 when DIR
 * cannot be read. */
int loader_cmd_plugins(const char *dir);
/* `ferry inspect FILE.so [--markdown]`: descriptor and option table.
 * Returns 0, or 2 when the file is refused. */
int loader_cmd_inspect(const char *path, int markdown);

#endif
