/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to mgmt/: the little JSON the admin API needs — validate a body,
 * read top-level members of an object, walk an array of objects, and write
 * escaped strings. Inputs are NUL-terminated texts the caller owns; results
 * point into them or are copied into caller buffers.
 */
#ifndef KEEL_MGMT_JSON_H
#define KEEL_MGMT_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Whether text is exactly one valid JSON value (nesting at most 16 deep). */
bool mjson_valid(const char *text);
/* The raw value of member key in the object text (first match), or NULL. */
const char *mjson_get(const char *obj, const char *key);
/* Typed reads of a member; 0 on success, -1 when missing or of another type. */
int mjson_get_str(const char *obj, const char *key, char *out, size_t n);
int mjson_get_u64(const char *obj, const char *key, uint64_t *out);
int mjson_get_bool(const char *obj, const char *key, bool *out);
/* A string or a number member as text (config values may be either). */
int mjson_get_scalar(const char *obj, const char *key, char *out, size_t n);
/* Array walk: *it = NULL to start; returns the next element or NULL at the end. */
const char *mjson_array_next(const char *array, const char **it);
/* Whether obj is an object whose every key is in the NULL-terminated list. */
bool mjson_keys_within(const char *obj, const char *const *allowed, char *bad, size_t n);
/* Write s as a JSON string literal (quotes included); returns the length
 * it needed (snprintf-style). */
size_t mjson_quote(char *out, size_t n, const char *s);

#endif
