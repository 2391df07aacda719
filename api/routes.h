/* routes.h - the route handlers, one file per resource. */
#ifndef RAGD_API_ROUTES_H
#define RAGD_API_ROUTES_H

#include <stddef.h>

#include "api/http.h"

typedef void (*rg_handler)(rg_request *r);

/* routes_system.c */
void route_health_live(rg_request *r);
void route_health_ready(rg_request *r);
void route_version(rg_request *r);
void route_metrics(rg_request *r);
/* Serves an embedded web asset; returns 0 when path is not one. */
int route_static(rg_request *r);

/* routes_collections.c */
void route_collections_create(rg_request *r);
void route_collections_list(rg_request *r);
void route_collections_get(rg_request *r);
void route_collections_delete(rg_request *r);

/* routes_documents.c */
void route_documents_list(rg_request *r);
void route_documents_get(rg_request *r);
void route_documents_delete(rg_request *r);
void route_tasks_get(rg_request *r);
void route_tasks_list(rg_request *r);

/* routes_upload.c: POST /v1/documents streams multipart data to disk. */
typedef struct rg_upload rg_upload;
/* Starts an upload; on failure answers the request and returns NULL. */
rg_upload *upload_begin(rg_request *r);
/* Feeds body bytes; returns 0 once an error was answered (stop feeding). */
int upload_feed(rg_upload *u, const char *data, size_t size);
/* Queues the uploaded files as tasks and answers 202 (or an error). */
void upload_finish(rg_upload *u);
/* Frees the upload, removing spooled files that were not queued. */
void upload_free(rg_upload *u);

/* routes_embeddings.c */
void route_models(rg_request *r);
void route_embeddings(rg_request *r);

/* routes_ranking.c */
void route_ranking(rg_request *r);
void route_rerank(rg_request *r);

/* routes_completions.c: OpenAI completions and chat completions */
void route_completions(rg_request *r);
void route_chat_completions(rg_request *r);

/* routes_retrieval.c */
void route_retrieval(rg_request *r);
void route_search(rg_request *r); /* the RAG Blueprint's POST /v1/search */

#endif
