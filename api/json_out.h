/* json_out.h - the wire shapes of ragd's objects (documented in docs/api.md). */
#ifndef RAGD_API_JSON_OUT_H
#define RAGD_API_JSON_OUT_H

#include <cjson/cJSON.h>

#include "store/store.h"

cJSON *json_collection(const rg_collection *c);
cJSON *json_document(const rg_document *d);
cJSON *json_task(const rg_task *t);
cJSON *json_chunk(const rg_chunk *c);
cJSON *json_hit(const rg_hit *h);
/* Parses stored metadata text into a JSON value ({} when empty/invalid). */
cJSON *json_metadata(const char *text);
/* {"object":"list","data":[]}; returns the list and sets *data. */
cJSON *json_list(cJSON **data);

#endif
