/* ragd ingest PATH... */
#define _GNU_SOURCE
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/cli.h"
#include "api/semantic.h"
#include "common/fs.h"
#include "ingest/pipeline.h"

#define INGEST_MAX_FILES 1000000
#define INGEST_MAX_DEPTH 64

static const char ingest_help[] =
    "usage: ragd ingest PATH... [options]\n\n"
    "Adds files to a collection; directories are walked recursively (hidden\n"
    "files and directories are skipped). Unchanged files are skipped, changed\n"
    "files replace their earlier version.\n\n"
    "  --collection C      collection (default 'default'; created if missing)\n"
    "  --data DIR          data directory (default $RAGD_DATA or ./data)\n"
    "  --metadata JSON     a JSON object stored with every document\n"
    "  --embed-model M     embed chunks with this model (directory or GGUF file), or 'none' (default: the\n"
    "                      installed all-MiniLM-L6-v2, as for serve)\n"
    "  --device D          where the model runs: cpu, cuda or auto (default: as for serve)\n"
    "  --index SPEC        the collection's vector index when this creates it:\n"
    "                      flat (exact, default) or hnsw[,m=N][,ef_construction=N][,ef_search=N]\n"
    "                      (an existing collection must already have this index)\n"
    "  --chunk-tokens N    target chunk size in tokens (default 256)\n"
    "  --chunk-overlap N   overlap between chunks in tokens (default 32)\n"
    "  --quiet             print only the summary\n";

typedef struct file_entry {
    char *path; /* as found */
    char *name; /* document name: relative to the directory given */
} file_entry;

typedef struct file_list {
    file_entry *items;
    size_t n, cap;
} file_list;

static int list_add(file_list *l, const char *path, const char *name)
{
    if (l->n == INGEST_MAX_FILES) {
        fprintf(stderr, "ragd: more than %d files; ingest fewer at a time\n", INGEST_MAX_FILES);
        return -1;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        file_entry *p = realloc(l->items, cap * sizeof *p);
        if (!p)
            return -1;
        l->items = p;
        l->cap = cap;
    }
    l->items[l->n].path = strdup(path);
    l->items[l->n].name = strdup(name);
    if (!l->items[l->n].path || !l->items[l->n].name)
        return -1;
    l->n++;
    return 0;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const file_entry *)a)->path, ((const file_entry *)b)->path);
}

/* Collects regular files under dir; rel is the name prefix ("" at top). */
static int walk(file_list *l, const char *dir, const char *rel, int depth)
{
    if (depth > INGEST_MAX_DEPTH) {
        fprintf(stderr, "ragd: %s: directories nested deeper than %d are skipped\n", dir, INGEST_MAX_DEPTH);
        return 0;
    }
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "ragd: cannot read directory %s\n", dir);
        return 0;
    }
    struct dirent *de;
    int rc = 0;
    while (!rc && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char path[PATH_MAX], name[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path ||
            snprintf(name, sizeof name, "%s%s%s", rel, *rel ? "/" : "", de->d_name) >= (int)sizeof name)
            continue;
        struct stat st;
        if (lstat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            rc = walk(l, path, name, depth + 1);
        else if (S_ISREG(st.st_mode))
            rc = list_add(l, path, name);
        /* symlinks, sockets and devices are not followed */
    }
    closedir(d);
    return rc;
}

static void progress(size_t done, size_t total, const char *name)
{
    int width = 30, filled = total ? (int)(done * (size_t)width / total) : width;
    fprintf(stderr, "\r[%.*s%*s] %zu/%zu %-40.40s", filled, "##############################", width - filled, "",
            done, total, name);
    fflush(stderr);
}

int cli_ingest(int argc, char **argv)
{
    rg_cli_opt opts[] = {
        {"--collection", "-c", 1, NULL, 0},  {"--data", NULL, 1, NULL, 0},
        {"--metadata", NULL, 1, NULL, 0},    {"--chunk-tokens", NULL, 1, NULL, 0},
        {"--chunk-overlap", NULL, 1, NULL, 0}, {"--quiet", "-q", 0, NULL, 0},
        {"--embed-model", NULL, 1, NULL, 0}, {"--index", NULL, 1, NULL, 0},
        {"--device", NULL, 1, NULL, 0},
    };
    size_t n = sizeof opts / sizeof opts[0], npos;
    const char **pos = calloc((size_t)argc, sizeof *pos);
    int parsed = pos ? cli_parse(argc, argv, 2, opts, n, pos, (size_t)argc, &npos, ingest_help) : -1;
    if (parsed) {
        free(pos);
        return parsed < 0 ? 2 : 0;
    }
    if (npos == 0) {
        fputs(ingest_help, stderr);
        free(pos);
        return 2;
    }
    const rg_cli_opt *o = cli_opt(opts, n, "--collection");
    const char *collection = o ? o->value : "default";
    o = cli_opt(opts, n, "--metadata");
    const char *metadata = o ? o->value : NULL;
    rg_ingest_opts io;
    ingest_opts_default(&io);
    if (cli_size(cli_opt(opts, n, "--chunk-tokens"), 16, 8192, &io.chunk.target_tokens) ||
        cli_size(cli_opt(opts, n, "--chunk-overlap"), 0, 4096, &io.chunk.overlap_tokens)) {
        free(pos);
        return 2;
    }
    if (io.chunk.overlap_tokens * 2 >= io.chunk.target_tokens) {
        fprintf(stderr, "ragd: --chunk-overlap must be less than half of --chunk-tokens\n");
        free(pos);
        return 2;
    }
    int quiet = cli_opt(opts, n, "--quiet") != NULL;

    file_list files = {0};
    int rc = 0;
    size_t missing = 0;
    for (size_t i = 0; i < npos && !rc; i++) {
        if (fs_is_dir(pos[i])) {
            size_t before = files.n;
            rc = walk(&files, pos[i], "", 0);
            if (!rc)
                qsort(files.items + before, files.n - before, sizeof *files.items, entry_cmp);
        } else if (fs_is_file(pos[i])) {
            rc = list_add(&files, pos[i], fs_basename(pos[i]));
        } else {
            fprintf(stderr, "ragd: %s: no such file or directory\n", pos[i]);
            missing++;
        }
    }
    free(pos);

    rg_store *store = NULL;
    if (!rc && cli_open_store(cli_data_dir(opts, n), 1, &store))
        rc = 1;
    o = cli_opt(opts, n, "--index");
    if (!rc && o) {
        rg_index_settings ix;
        rg_err e;
        if (semantic_index_parse(o->value, &ix, &e) != RG_OK ||
            store_collection_ensure_indexed(store, collection, &ix, NULL, &e) != RG_OK) {
            fprintf(stderr, "ragd: --index: %s\n", e.msg);
            rc = 1;
        }
    }
    /* With an embedding model, chunks are embedded as they are stored; a
     * running server's indexes pick the vectors up from the store. */
    rg_semantic sem = {0};
    char model[4096];
    semantic_default_model(model, sizeof model);
    o = cli_opt(opts, n, "--embed-model");
    const char *model_dir = o ? (strcmp(o->value, "none") == 0 ? NULL : o->value) : (fs_is_dir(model) ? model : NULL);
    if (!rc && model_dir) {
        rg_embedder_opts eo;
        rg_err e;
        embedder_opts_default(&eo);
        if (cli_device(opts, n, &eo.device))
            rc = 2;
        else if (embedder_start(model_dir, &eo, &sem.embedder, &e) != RG_OK) {
            fprintf(stderr, "ragd: embedding model %s: %s\n", model_dir, e.msg);
            rc = 1;
        }
        semantic_attach(&sem, &io);
    }
    size_t added = 0, replaced = 0, unchanged = 0, failed = missing, chunks = 0;
    int tty = isatty(2) && !quiet;
    for (size_t i = 0; i < files.n && !rc; i++) {
        if (tty)
            progress(i, files.n, files.items[i].name);
        char *abs = realpath(files.items[i].path, NULL);
        rg_ingest_result res;
        rg_err e;
        if (ingest_file(store, &io, collection, files.items[i].name, files.items[i].path,
                        abs ? abs : files.items[i].path, metadata, &res, &e)) {
            if (tty)
                fputc('\n', stderr);
            fprintf(stderr, "ragd: %s: %s\n", files.items[i].path, e.msg);
            free(abs);
            rc = 1;
            break;
        }
        free(abs);
        if (res.failed) {
            failed++;
            if (tty)
                fputc('\n', stderr);
            fprintf(stderr, "error   %s: %s\n", files.items[i].path, res.error);
            continue;
        }
        chunks += res.n_chunks;
        const char *what = "added";
        if (res.outcome == STORE_PUT_ADDED)
            added++;
        else if (res.outcome == STORE_PUT_REPLACED)
            replaced++, what = "replaced";
        else
            unchanged++, what = "unchanged";
        if (!tty && !quiet)
            printf("%-9s %s (%zu chunks)\n", what, files.items[i].name, res.n_chunks);
    }
    if (tty && files.n) {
        progress(files.n, files.n, "");
        fputc('\n', stderr);
    }
    if (store) {
        printf("documents: %zu (added %zu, replaced %zu, unchanged %zu), chunks: %zu, errors: %zu\n",
               added + replaced + unchanged, added, replaced, unchanged, chunks, failed);
        store_close(store);
    }
    embedder_stop(sem.embedder);
    for (size_t i = 0; i < files.n; i++) {
        free(files.items[i].path);
        free(files.items[i].name);
    }
    free(files.items);
    if (rc)
        return 1;
    return failed ? 1 : 0;
}
