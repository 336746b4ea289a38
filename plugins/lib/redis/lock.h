/*
 * plugins/lib/redis/lock.h: the single-writer lease (a key holding a
 * random token with an expiry, taken with SET NX PX, renewed and released
 * only while it holds our token, by scripts from cmd.h).
 *
 * redis_instance_start() and redis_instance_stop() call these; a sink
 * only reads the lock's state (redis_instance_lock_lost()). The state
 * lives in struct redis_instance (instance.h).
 */
#ifndef FERRY_REDIS_LOCK_H
#define FERRY_REDIS_LOCK_H

#include <stddef.h>

struct redis_instance;

/* Writes "<hostname>-<pid>-<32 hex random>" into buf. Any thread. */
void redis_lock_token(char *buf, size_t len);

/*
 * Takes the lock, waiting as standby (one attempt every lock_ttl/3)
 * while another instance holds it, then starts the renewal timer.
 * Returns FERRY_OK, FERRY_CLOSED (stopped while waiting) or FERRY_ERROR
 * (SET refused, or no timer; logged). Main thread, from start().
 */
int redis_lock_acquire(struct redis_instance *in);

/* Timer callback: renews the lease when due; when ownership cannot be
 * confirmed for a whole lock_ttl, or another instance took it, asks the
 * host to stop the process. The host's timer thread. */
void redis_lock_renew(void *in);

/* Releases the lock if we hold it (compare-and-delete). Any thread, not
 * concurrently with redis_lock_acquire(). */
void redis_lock_release(struct redis_instance *in);

#endif
