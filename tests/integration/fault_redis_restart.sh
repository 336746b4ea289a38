#!/bin/sh
# fault_redis_restart: the production pipeline (etc/ferry.ini; breaker
# threshold 3, timeout 1s) streams 50,000 mixed messages as fast as it
# reads; mid-stream redis-server is shut down (SHUTDOWN: the AOF is
# flushed) and the same command is started again 10 s later on the same
# port with the same data. Writes are refused, the breaker opens, probes
# every second and closes once Redis is back; the source stops reading
# meanwhile; nothing is lost: ferry stays up, under the RSS bound, and
# Redis ends up holding exactly the server's expected final state.
#
# The production writer lease (lock_ttl 15s, renewed every 5 s) outlasts
# a 10 s outage when the outage does not start in the last second before
# a renewal (fault_redis_outage sees to that; see there why). The lease
# key survives in the AOF, or has lapsed and is taken again.
. tests/lib.sh
. tests/support/fault/fault.inc

fault_redis_start
fault_server_start
fault_ini
fault_ferry_start

fault_wait_applied 15000
fault_redis_outage 10
fault_finish fault_redis_restart 1
echo "PASS fault_redis_restart"
