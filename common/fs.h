/* fs.h - small file-system helpers with explicit limits. */
#ifndef RAGD_COMMON_FS_H
#define RAGD_COMMON_FS_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* Reads a whole regular file into out, refusing files over max_bytes
 * (RG_ERR_TOO_LARGE) before reading them. */
rg_status fs_read_file(const char *path, size_t max_bytes, rg_buf *out, rg_err *e);

/* Writes data to path via a temporary file in the same directory, fsync and
 * rename, so readers see the old or the new file, never half of one. */
rg_status fs_write_atomic(const char *path, const void *data, size_t len, rg_err *e);

/* mkdir -p. */
rg_status fs_mkdirs(const char *path, rg_err *e);

/* Removes a file; a missing file is not an error. */
rg_status fs_remove(const char *path, rg_err *e);

/* Nonzero when path names an existing directory / regular file. */
int fs_is_dir(const char *path);
int fs_is_file(const char *path);

/* Last path component (pointer into path). */
const char *fs_basename(const char *path);

/* Wall-clock time in milliseconds since the epoch, and a monotonic clock. */
int64_t clock_now_ms(void);
int64_t clock_mono_us(void);

#endif
