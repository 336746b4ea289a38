/*
 * plugins/lib/json/json.h: the JSON kit of the plugin libraries
 * (libferry-json.a), for plugin authors. It needs nothing but libc and
 * libm, and knows nothing about any data model.
 *
 * The pieces, each usable alone:
 *   json/jsonscan.h  the one JSON reader: a pull scanner that hands out a
 *                    document's tokens in order, checked as read; it
 *                    accepts exactly what jansson's json_loadb(...,
 *                    JSON_DECODE_ANY) accepts, up to a nesting limit.
 *                    Allocates nothing. Use it to pick a few members out
 *                    of a large document, or to find a value's raw span.
 *   json/jv.h        a read-only document tree in one arena, built on the
 *                    scanner (one parse, one free). Use it to walk a
 *                    whole document on a hot path.
 *   json/gojson.h    the one writer: appends JSON text into a growing
 *                    buffer with exactly the bytes Go's encoding/json
 *                    writes (string escaping, float64 formatting,
 *                    compact).
 *   json/utf8.h      strict UTF-8 checking, decoding and encoding, and
 *                    Unicode simple lower-casing as Go's strings.ToLower.
 *
 * Conventions shared by all of them: inputs are (pointer, length) pairs
 * and need not be NUL-terminated; nothing keeps a pointer to its input
 * past the call, except a jsonscan scanner (until its scan ends) and a jv
 * document (which points into its own arena, not into the input). Every
 * object (scanner, document, buffer) belongs to one thread at a time;
 * distinct objects are independent. Allocation failure aborts.
 */
#ifndef FERRY_JSON_JSON_H
#define FERRY_JSON_JSON_H

#include "json/gojson.h"
#include "json/jsonscan.h"
#include "json/jv.h"
#include "json/utf8.h"

#endif
