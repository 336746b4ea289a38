/*
 * core/host.h: the host table handed to plugins (core/host.c).
 */
#ifndef FERRY_CORE_HOST_H
#define FERRY_CORE_HOST_H

#include "ferry/host.h"

/* The one host table; every instance's init() gets it. Immutable, so any
 * thread may read it. */
extern const struct ferry_host host_table;

#endif
