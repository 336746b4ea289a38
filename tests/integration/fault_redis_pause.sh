#!/bin/sh
# fault_redis_pause: the production pipeline (etc/ferry.ini; breaker
# threshold 3, timeout 1s; sink command_timeout 1s) streams 50,000 mixed
# messages as fast as it reads while Redis is frozen twice mid-stream
# with DEBUG SLEEP 5. Writes time out, the breaker opens and closes again,
# and nothing is lost: ferry stays up, under the RSS bound, and Redis
# ends up holding exactly the server's expected final state.
. tests/lib.sh
. tests/support/fault/fault.inc

fault_redis_start
fault_server_start
fault_ini
fault_ferry_start

fault_wait_applied 10000
fault_redis_sleep
fault_wait_applied 30000
fault_redis_sleep
fault_finish fault_redis_pause 2
echo "PASS fault_redis_pause"
