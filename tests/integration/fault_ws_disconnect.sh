#!/bin/sh
# fault_ws_disconnect: the production pipeline (etc/ferry.ini) streams
# 50,000 mixed messages as fast as it reads while the server drops the
# WebSocket (no close frame) after every 1,000 messages. The source
# redials (reconnect_min 100ms: the connections live well under the 5 s
# after which it would redial at once) and resumes with replay_from;
# nothing is lost: ferry stays up, under the RSS bound, and Redis ends up
# holding exactly the server's expected final state.
#
# The breaker guards the sink, which never fails here, so the test
# asserts the opposite of the Redis fault tests: the breaker never opens
# (a source fault must not trip it).
. tests/lib.sh
. tests/support/fault/fault.inc

fault_redis_start
fault_server_start --disconnect-every 1000
fault_ini
fault_ferry_start

fault_wait_applied 25000
fault_finish fault_ws_disconnect 0
drops=$(grep -c '"event":"drop"' "$T/ts.log")
[ "$drops" -ge $((FAULT_MESSAGES / 1000 - 1)) ] ||
    fail "the server dropped only $drops connections"
reconnects=$(fault_metric ferry_source_reconnects_total "" "$T/metrics.txt")
[ "$reconnects" -ge $((FAULT_MESSAGES / 1000 - 1)) ] ||
    fail "ferry reconnected only $reconnects times for $drops drops"
echo "server drops: $drops, source reconnects: $reconnects"
echo "PASS fault_ws_disconnect"
