sink_redis_kv_LIBS := $(shell pkg-config --libs hiredis)
