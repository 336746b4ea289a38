#!/bin/sh
# fault_all: the faults of fault_redis_pause, fault_redis_restart and
# fault_ws_disconnect in one run of the production pipeline
# (etc/ferry.ini; breaker threshold 3, timeout 1s; sink command_timeout
# 1s): 50,000 mixed messages, the WebSocket dropped after every 1,000
# messages throughout, Redis frozen twice with DEBUG SLEEP 5, then shut
# down and restarted from its AOF 10 s later. Nothing is lost: ferry
# stays up, under the RSS bound, the breaker opens and closes for each
# Redis fault, and Redis ends up holding exactly the server's expected
# final state.
#
# Between the second sleep and the outage the test waits for a renewal
# of the writer lease (see fault_wait_lease: otherwise the two faults add
# up to a lease ferry cannot confirm for lock_ttl, and it stops by
# design); the server's fixed rate keeps the stream flowing meanwhile.
. tests/lib.sh
. tests/support/fault/fault.inc

fault_redis_start
fault_server_start --disconnect-every 1000 --rate "${FAULT_RATE:-5000}"
fault_ini
fault_ferry_start

fault_wait_applied 6000
fault_redis_sleep
fault_wait_applied 12000
fault_redis_sleep
fault_wait_lease
fault_redis_outage 10
fault_finish fault_all 3
drops=$(grep -c '"event":"drop"' "$T/ts.log")
[ "$drops" -ge $((FAULT_MESSAGES / 1000 - 1)) ] ||
    fail "the server dropped only $drops connections"
echo "server drops: $drops"
echo "PASS fault_all"
