/*
 * ferry/ferry.h: everything a plugin author needs, in one include.
 */
#ifndef FERRY_FERRY_H
#define FERRY_FERRY_H

#include "host.h"
#include "message.h"
#include "options.h"
#include "plugin.h"
#include "status.h"

#endif /* FERRY_FERRY_H */
