/* sha256.h - SHA-256 (FIPS 180-4) for content hashes of documents.
 * None of ragd's chosen dependencies exports a hash, so this one lives here. */
#ifndef RAGD_COMMON_SHA256_H
#define RAGD_COMMON_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct rg_sha256 {
    uint32_t h[8];
    uint64_t total;
    uint8_t block[64];
    size_t fill;
} rg_sha256;

void sha256_init(rg_sha256 *s);
void sha256_update(rg_sha256 *s, const void *data, size_t len);
void sha256_final(rg_sha256 *s, uint8_t out[32]);
/* One-shot: writes 64 lowercase hex digits and a NUL into hex. */
void sha256_hex(const void *data, size_t len, char hex[65]);
void sha256_to_hex(const uint8_t digest[32], char hex[65]);

#endif
