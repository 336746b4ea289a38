# The Schematic datastream source: libwebsockets (event loop, sockets),
# OpenSSL (TLS, handshake digest), libcurl (REST initial load), jansson
# (through plugins/common).
source_websocket_LIBS := $(shell pkg-config --libs libwebsockets libcurl jansson openssl)
