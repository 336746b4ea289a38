/*
 * plugins/lib/json/utf8.h: strict UTF-8 (RFC 3629) checking, decoding,
 * encoding and Unicode simple lower-casing, for the JSON kit and any
 * plugin that handles text. Pure functions over caller-owned memory:
 * thread-safe, no allocation.
 */
#ifndef FERRY_COMMON_UTF8_H
#define FERRY_COMMON_UTF8_H

#include <stddef.h>
#include <stdint.h>

/*
 * Returns len when s[0..len) is well-formed UTF-8 (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF, no truncated sequence),
 * else the offset of the first byte of the first bad sequence.
 */
size_t utf8_check(const char *s, size_t len);

/*
 * Decodes one well-formed sequence at s (at most len bytes). Returns its
 * length and stores the code point in *cp; returns 0 for a bad or
 * truncated sequence (*cp untouched).
 */
size_t utf8_decode(const char *s, size_t len, uint32_t *cp);

/* Encodes cp (<= U+10FFFF, not a surrogate) into out[4]; returns the
 * length. */
size_t utf8_encode(uint32_t cp, char *out);

/*
 * Writes the Unicode simple lowercase of s[0..len) to out (Go's
 * strings.ToLower; bytes of a bad sequence are copied as they are) and a
 * NUL; returns the length written without the NUL. out must hold
 * UTF8_LOWER_MAX(len) bytes: a lowercase form is at most 3/2 as long
 * (2-byte U+023A becomes 3-byte U+2C65). Defined in utf8_lower.c.
 */
#define UTF8_LOWER_MAX(len) ((len) + (len) / 2 + 1)
size_t utf8_lower(const char *s, size_t len, char *out);

#endif
