/* ragd ls, ragd rm, ragd search: commands that read or edit the store. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/cli.h"
#include "common/fs.h"
#include "common/utf8.h"
#include "api/semantic.h"
#include "index/search.h"
#include "store/store.h"

int cli_open_store(const char *data_dir, int create, rg_store **out)
{
    rg_err e;
    char db[4200];
    if (!create && !fs_is_dir(data_dir)) {
        fprintf(stderr, "ragd: no data directory %s (set --data or RAGD_DATA, or ingest something first)\n",
                data_dir);
        return -1;
    }
    if (create && fs_mkdirs(data_dir, &e) != RG_OK) {
        fprintf(stderr, "ragd: %s\n", e.msg);
        return -1;
    }
    snprintf(db, sizeof db, "%s/ragd.db", data_dir);
    if (store_open(db, out, &e) != RG_OK) {
        fprintf(stderr, "ragd: %s\n", e.msg);
        return -1;
    }
    return 0;
}

/* Resolves --collection to an id (0 = all); -1 after printing an error. */
static int collection_id(rg_store *s, const rg_cli_opt *o, int64_t *id)
{
    *id = 0;
    if (!o)
        return 0;
    rg_collection c = {0};
    rg_err e;
    if (store_collection_get(s, o->value, &c, &e) != RG_OK) {
        fprintf(stderr, "ragd: %s\n", e.msg);
        return -1;
    }
    *id = c.id;
    store_collection_free(&c);
    return 0;
}

static const char ls_help[] = "usage: ragd ls [--collection C] [--data DIR]\n\n"
                              "Lists documents: id, collection, status, chunks, bytes, name (and errors).\n";

int cli_ls(int argc, char **argv)
{
    rg_cli_opt opts[] = {{"--collection", "-c", 1, NULL, 0}, {"--data", NULL, 1, NULL, 0}};
    size_t n = sizeof opts / sizeof opts[0], npos;
    const char *pos[1];
    int parsed = cli_parse(argc, argv, 2, opts, n, pos, 0, &npos, ls_help);
    if (parsed)
        return parsed < 0 ? 2 : 0;
    rg_store *s;
    if (cli_open_store(cli_data_dir(opts, n), 0, &s))
        return 1;
    int64_t cid;
    int rc = collection_id(s, cli_opt(opts, n, "--collection"), &cid) ? 1 : 0;
    printf("%6s  %-16s %-7s %6s %10s  %s\n", "ID", "COLLECTION", "STATUS", "CHUNKS", "BYTES", "NAME");
    for (size_t offset = 0; !rc;) {
        rg_document *docs = NULL;
        size_t nd = 0;
        rg_err e;
        if (store_document_list(s, cid, 500, offset, &docs, &nd, &e) != RG_OK) {
            fprintf(stderr, "ragd: %s\n", e.msg);
            rc = 1;
            break;
        }
        for (size_t i = 0; i < nd; i++) {
            const rg_document *d = &docs[i];
            printf("%6lld  %-16s %-7s %6lld %10lld  %s\n", (long long)d->id, d->collection, d->status,
                   (long long)d->n_chunks, (long long)d->byte_size, d->name);
            if (d->error)
                printf("%8s%s\n", "", d->error);
        }
        store_documents_free(docs, nd);
        if (nd < 500)
            break;
        offset += nd;
    }
    store_close(s);
    return rc;
}

static const char rm_help[] = "usage: ragd rm DOC_ID... [--data DIR]\n\n"
                              "Deletes documents (ids as shown by 'ragd ls') with their chunks.\n";

int cli_rm(int argc, char **argv)
{
    rg_cli_opt opts[] = {{"--data", NULL, 1, NULL, 0}};
    size_t n = sizeof opts / sizeof opts[0], npos;
    const char *pos[64];
    int parsed = cli_parse(argc, argv, 2, opts, n, pos, 64, &npos, rm_help);
    if (parsed)
        return parsed < 0 ? 2 : 0;
    if (npos == 0) {
        fputs(rm_help, stderr);
        return 2;
    }
    rg_store *s;
    if (cli_open_store(cli_data_dir(opts, n), 0, &s))
        return 1;
    int rc = 0;
    for (size_t i = 0; i < npos; i++) {
        char *end;
        errno = 0;
        long long id = strtoll(pos[i], &end, 10);
        rg_err e;
        if (errno || *end || id <= 0) {
            fprintf(stderr, "ragd: '%s' is not a document id\n", pos[i]);
            rc = 1;
        } else if (store_document_delete(s, id, &e) != RG_OK) {
            fprintf(stderr, "ragd: %s\n", e.msg);
            rc = 1;
        } else {
            printf("deleted document %lld\n", id);
        }
    }
    store_close(s);
    return rc;
}

static const char search_help[] =
    "usage: ragd search \"TEXT\" [--collection C] [-k N] [--mode M] [--data DIR]\n\n"
    "Prints the best matching chunks, best first.\n"
    "  -k N               how many results (default 5, at most 100)\n"
    "  --mode M           lexical (BM25), dense (embeddings) or hybrid (both, fused);\n"
    "                     default hybrid when an embedding model is installed, else lexical\n"
    "  --embed-model M    the embedding model (directory or GGUF file), or 'none' (default: as for serve)\n"
    "  --device D         where the model runs: cpu, cuda or auto (default: as for serve)\n";

int cli_search(int argc, char **argv)
{
    rg_cli_opt opts[] = {{"--collection", "-c", 1, NULL, 0}, {"--top-k", "-k", 1, NULL, 0},
                         {"--data", NULL, 1, NULL, 0},         {"--mode", "-m", 1, NULL, 0},
                         {"--embed-model", NULL, 1, NULL, 0}, {"--device", NULL, 1, NULL, 0}};
    size_t n = sizeof opts / sizeof opts[0], npos;
    const char *pos[1];
    int parsed = cli_parse(argc, argv, 2, opts, n, pos, 1, &npos, search_help);
    if (parsed)
        return parsed < 0 ? 2 : 0;
    if (npos != 1) {
        fputs(search_help, stderr);
        return 2;
    }
    size_t k = 5;
    rg_device device;
    if (cli_size(cli_opt(opts, n, "--top-k"), 1, 100, &k) || cli_device(opts, n, &device))
        return 2;
    rg_store *s;
    if (cli_open_store(cli_data_dir(opts, n), 0, &s))
        return 1;
    int64_t cid;
    int rc = collection_id(s, cli_opt(opts, n, "--collection"), &cid) ? 1 : 0;
    rg_err e;
    char model[4096];
    semantic_default_model(model, sizeof model);
    const rg_cli_opt *o = cli_opt(opts, n, "--embed-model");
    const char *model_dir = o ? (strcmp(o->value, "none") == 0 ? NULL : o->value) : (fs_is_dir(model) ? model : NULL);
    rg_search_mode mode = model_dir ? SEARCH_HYBRID : SEARCH_LEXICAL;
    if ((o = cli_opt(opts, n, "--mode")) && search_mode_parse(o->value, &mode, &e) != RG_OK) {
        fprintf(stderr, "ragd: %s\n", e.msg);
        store_close(s);
        return 2;
    }
    rg_search search = {.store = s};
    if (!rc && mode != SEARCH_LEXICAL && model_dir) {
        rg_embedder_opts eo;
        embedder_opts_default(&eo);
        eo.device = device;
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/indexes", cli_data_dir(opts, n));
        if (embedder_start(model_dir, &eo, &search.embedder, &e) != RG_OK ||
            vindex_open(s, dir, embedder_model_id(search.embedder), (int)embedder_dim(search.embedder),
                        &search.vindex, &e) != RG_OK) {
            fprintf(stderr, "ragd: %s\n", e.msg);
            rc = 1;
        }
    }
    rg_search_result res = {0};
    if (!rc && search_run(&search, cid, pos[0], mode, k, k > 50 ? k : 50, &res, &e) != RG_OK) {
        fprintf(stderr, "ragd: %s\n", e.msg);
        rc = 1;
    }
    vindex_close(search.vindex);
    embedder_stop(search.embedder);
    rg_hit *hits = res.hits;
    size_t nh = res.n;
    if (!rc && nh == 0)
        printf("no matches\n");
    for (size_t i = 0; i < nh; i++) {
        const rg_hit *h = &hits[i];
        printf("%zu. %s%s%s  (score %.3f, document %lld, chunk %lld)\n", i + 1, h->document,
               h->heading_path ? " > " : "", h->heading_path ? h->heading_path : "", h->score,
               (long long)h->document_id, (long long)h->chunk_id);
        /* A one-paragraph preview: newlines folded, cut at 300 bytes. */
        char preview[304];
        size_t len = strlen(h->text), j = utf8_truncate(h->text, len, 300);
        for (size_t t = 0; t < j; t++)
            preview[t] = (h->text[t] == '\n') ? ' ' : h->text[t];
        preview[j] = '\0';
        printf("   %s%s\n\n", preview, len > j ? "..." : "");
    }
    search_result_free(&res);
    store_close(s);
    return rc;
}
