sink_redis_LIBS := $(shell pkg-config --libs hiredis)
