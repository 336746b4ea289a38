# sink_file validates payloads with jansson.
sink_file_LIBS := -ljansson
