/*
 * core/channel.h: a bounded multi-producer multi-consumer queue of
 * pointers.
 *
 * Ownership: a successful push moves the item into the channel; a failed
 * push leaves it with the caller. A successful pop moves it to the caller.
 * All functions are thread-safe. Deadlines are absolute times on the
 * monotonic clock (clock_now_ns()).
 */
#ifndef FERRY_CORE_CHANNEL_H
#define FERRY_CORE_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

struct channel;

/* Returns a new channel holding at most capacity (>= 1) items, or NULL. */
struct channel *channel_new(size_t capacity);
/* Frees the channel. Items still queued are passed to free_item (when not
 * NULL). No thread may be using the channel. Accepts NULL. */
void channel_free(struct channel *ch, void (*free_item)(void *item));

/* Blocks until there is room. FERRY_OK, or FERRY_CLOSED (item not taken). */
int channel_push(struct channel *ch, void *item);
/* FERRY_OK, FERRY_WOULD_BLOCK when full, or FERRY_CLOSED. */
int channel_try_push(struct channel *ch, void *item);
/* Waits until deadline_ns at most: FERRY_OK, FERRY_TIMEDOUT, FERRY_CLOSED. */
int channel_push_until(struct channel *ch, void *item, uint64_t deadline_ns);

/* Blocks until an item is there: FERRY_OK, or FERRY_CLOSED once the
 * channel is closed and empty. */
int channel_pop(struct channel *ch, void **item);
/* FERRY_OK, FERRY_WOULD_BLOCK when empty, FERRY_CLOSED when closed and
 * empty. */
int channel_try_pop(struct channel *ch, void **item);
/* FERRY_OK, FERRY_TIMEDOUT, FERRY_CLOSED. */
int channel_pop_until(struct channel *ch, void **item, uint64_t deadline_ns);
/* Moves up to max queued items into items[], oldest first. If none is
 * queued, waits until deadline_ns for the first. Returns the number moved
 * (0 on timeout, or when closed and empty; see channel_is_closed()). */
size_t channel_pop_many(struct channel *ch, void **items, size_t max,
                        uint64_t deadline_ns);

/* Waits until max items are queued (or deadline_ns passes, the channel is
 * full, closed or kicked), then moves up to max into items[]. Returns the
 * number moved, possibly 0. */
size_t channel_pop_batch(struct channel *ch, void **items, size_t max,
                         uint64_t deadline_ns);

/* After close, pushes fail with FERRY_CLOSED and pops drain what is left.
 * Wakes every waiter. Idempotent. */
void channel_close(struct channel *ch);
/* Wakes every thread blocked in a pop once (they return as on a timeout),
 * e.g. so a worker notices a shutdown request. */
void channel_kick(struct channel *ch);
int channel_is_closed(struct channel *ch);

size_t channel_depth(struct channel *ch);
size_t channel_capacity(struct channel *ch);

/*
 * Reservations, for all-or-nothing delivery to several channels: reserve a
 * slot in each (FERRY_OK, FERRY_WOULD_BLOCK or FERRY_CLOSED), then either
 * channel_push_reserved() into each or channel_unreserve() each. A reserved
 * slot counts as occupied.
 */
int channel_reserve(struct channel *ch);
void channel_push_reserved(struct channel *ch, void *item);
void channel_unreserve(struct channel *ch);

/*
 * Under the channel lock, finds the newest queued item for which
 * match(item, arg) is nonzero and replaces it with item (the replaced one
 * is stored in *old). Returns FERRY_OK, or FERRY_NOT_FOUND (nothing
 * changed).
 */
int channel_replace_newest(struct channel *ch,
                           int (*match)(void *queued, void *arg), void *arg,
                           void *item, void **old);
/* Removes the oldest queued item into *old: FERRY_OK or FERRY_NOT_FOUND. */
int channel_drop_oldest(struct channel *ch, void **old);
/* Removes the oldest queued item for which ok(item, arg) is nonzero:
 * FERRY_OK or FERRY_NOT_FOUND. */
int channel_drop_oldest_if(struct channel *ch, int (*ok)(void *item, void *arg),
                           void *arg, void **old);

/* Calls cb(arg) (without the channel lock held, from the popping thread)
 * each time a pop makes room after a push or reservation failed with
 * FERRY_WOULD_BLOCK. */
void channel_on_room(struct channel *ch, void (*cb)(void *arg), void *arg);

#endif
