/* weights.h - the safetensors weights of a Hugging Face model directory:
 * one model.safetensors, or a sharded set described by
 * model.safetensors.index.json ({"weight_map": {tensor name: file name}})
 * as transformers writes for larger checkpoints.
 *
 * With an index, a tensor is looked up in the file the index names for it;
 * tensors a shard holds but the index does not list are not visible (so a
 * shard may be shared with another model whose extra tensors are ignored).
 * Shard names must be plain file names inside the directory (no '/', no
 * leading '.'); at most WEIGHTS_MAX_SHARDS files and WEIGHTS_MAX_INDEX bytes
 * of index, each checked before use. Every shard is mapped and validated by
 * model/safetensors.c at open. */
#ifndef RAGD_MODEL_WEIGHTS_H
#define RAGD_MODEL_WEIGHTS_H

#include <stddef.h>

#include "common/err.h"
#include "model/safetensors.h"

#define WEIGHTS_MAX_SHARDS 256
#define WEIGHTS_MAX_INDEX ((size_t)16 << 20)

typedef struct rg_weights rg_weights;

/* Opens dir/model.safetensors when present, else the set named by
 * dir/model.safetensors.index.json. RG_ERR_NOT_FOUND when neither exists,
 * RG_ERR_CORRUPT for a malformed index or shard, naming the file. */
rg_status weights_open(const char *dir, rg_weights **out, rg_err *e);
void weights_close(rg_weights *w); /* NULL is fine */

/* NULL when the set has no tensor of that name. */
const rg_st_tensor *weights_find(const rg_weights *w, const char *name);
/* weights_find plus a shape check (safetensors_expect's messages). */
rg_status weights_expect(const rg_weights *w, const char *name, int rank, const size_t *shape,
                         const rg_st_tensor **out, rg_err *e);
/* Number of files (1 without an index). */
size_t weights_shard_count(const rg_weights *w);

#endif
