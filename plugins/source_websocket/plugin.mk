# The Schematic datastream source: libwebsockets client, libcurl (REST
# initial load), jansson (through plugins/common).
source_websocket_LIBS := $(shell pkg-config --libs libwebsockets libcurl jansson)
