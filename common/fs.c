#define _GNU_SOURCE
#include "common/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

rg_status fs_read_file(const char *path, size_t max_bytes, rg_buf *out, rg_err *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return rg_error(e, errno == ENOENT ? RG_ERR_NOT_FOUND : RG_ERR_IO, "cannot open %s: %s", path,
                        strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return rg_error(e, RG_ERR_INVALID, "%s is not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_bytes) {
        close(fd);
        return rg_error(e, RG_ERR_TOO_LARGE, "%s is %lld bytes, over the limit of %zu", path,
                        (long long)st.st_size, max_bytes);
    }
    rg_status s = rg_buf_reserve(out, (size_t)st.st_size, e);
    /* Read until EOF but never past the limit: the file may grow meanwhile. */
    while (!s) {
        if (out->len >= max_bytes + 1) {
            s = rg_error(e, RG_ERR_TOO_LARGE, "%s grew over the limit of %zu bytes", path, max_bytes);
            break;
        }
        char chunk[65536];
        size_t want = sizeof chunk;
        if (want > max_bytes + 1 - out->len)
            want = max_bytes + 1 - out->len;
        ssize_t n = read(fd, chunk, want);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            s = rg_error(e, RG_ERR_IO, "reading %s: %s", path, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        s = rg_buf_append(out, chunk, (size_t)n, e);
    }
    close(fd);
    if (!s && out->len > max_bytes)
        s = rg_error(e, RG_ERR_TOO_LARGE, "%s is over the limit of %zu bytes", path, max_bytes);
    return s;
}

rg_status fs_write_atomic(const char *path, const void *data, size_t len, rg_err *e)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return rg_error(e, RG_ERR_INVALID, "path too long: %s", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return rg_error(e, RG_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t n = write(fd, p, left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int err = errno;
            close(fd);
            unlink(tmp);
            return rg_error(e, RG_ERR_IO, "writing %s: %s", tmp, strerror(err));
        }
        p += n;
        left -= (size_t)n;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        unlink(tmp);
        return rg_error(e, RG_ERR_IO, "flushing %s: %s", tmp, strerror(errno));
    }
    if (rename(tmp, path) != 0) {
        int err = errno;
        unlink(tmp);
        return rg_error(e, RG_ERR_IO, "renaming %s: %s", tmp, strerror(err));
    }
    return RG_OK;
}

rg_status fs_mkdirs(const char *path, rg_err *e)
{
    char p[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof p)
        return rg_error(e, RG_ERR_INVALID, "bad directory path");
    memcpy(p, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] == '/' || p[i] == '\0') {
            char c = p[i];
            p[i] = '\0';
            if (mkdir(p, 0755) != 0 && errno != EEXIST)
                return rg_error(e, RG_ERR_IO, "cannot create directory %s: %s", p, strerror(errno));
            p[i] = c;
        }
    }
    if (!fs_is_dir(path))
        return rg_error(e, RG_ERR_IO, "%s exists and is not a directory", path);
    return RG_OK;
}

rg_status fs_remove(const char *path, rg_err *e)
{
    if (unlink(path) != 0 && errno != ENOENT)
        return rg_error(e, RG_ERR_IO, "cannot remove %s: %s", path, strerror(errno));
    return RG_OK;
}

int fs_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int fs_is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

const char *fs_basename(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

int64_t clock_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
