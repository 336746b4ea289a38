# datastream.c (plugins/common) parses frames with jansson.
source_file_LIBS := -ljansson
