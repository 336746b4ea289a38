/*
 * ferry/status.h: the one status vocabulary shared by the core and plugins.
 *
 * 0 is success; every failure is negative. Dependency conventions (inih's
 * nonzero-is-success, hiredis error contexts, lws callback returns) are
 * translated into these codes at the boundary where they occur.
 */
#ifndef FERRY_STATUS_H
#define FERRY_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

enum ferry_status {
    FERRY_OK = 0,
    /* A bounded channel is full: backpressure. Nothing was taken; the
     * caller still owns what it offered and may offer it again later. */
    FERRY_WOULD_BLOCK = -1,
    /* Transient failure (connection lost, server busy): the core keeps
     * the batch and calls again after a backoff. Never drops anything. */
    FERRY_RETRY = -2,
    /* Permanent failure of this input: counted, logged with its stream
     * position, and skipped. */
    FERRY_ERROR = -3,
    /* Invalid argument or invalid input. */
    FERRY_EINVAL = -4,
    /* Out of memory. */
    FERRY_ENOMEM = -5,
    /* A timed wait ended before the operation could complete. */
    FERRY_TIMEDOUT = -6,
    /* The pipeline or channel is shutting down. */
    FERRY_CLOSED = -7,
    /* Nothing to report (e.g. no stored replay position). */
    FERRY_NOT_FOUND = -8
};

/* Returns a static, human-readable name for a status code. */
static inline const char *ferry_status_str(int status)
{
    switch (status) {
    case FERRY_OK:
        return "ok";
    case FERRY_WOULD_BLOCK:
        return "would block";
    case FERRY_RETRY:
        return "retry";
    case FERRY_ERROR:
        return "error";
    case FERRY_EINVAL:
        return "invalid argument";
    case FERRY_ENOMEM:
        return "out of memory";
    case FERRY_TIMEDOUT:
        return "timed out";
    case FERRY_CLOSED:
        return "closed";
    case FERRY_NOT_FOUND:
        return "not found";
    default:
        return "unknown status";
    }
}

#ifdef __cplusplus
}
#endif

#endif /* FERRY_STATUS_H */
