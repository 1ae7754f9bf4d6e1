/*
 * SHA-256 (FIPS 180-4), streaming, portable C99: no malloc, no stdio, endian- and
 * alignment-safe (bytes are assembled with shifts). Written for the Vigil bootloader
 * (vigil_fwu.c), which hashes a firmware image chunk by chunk as it arrives.
 * Test vectors: FIPS 180-4 examples / NIST CSRC "SHA256ShortMsg" (test/test_fwu.c).
 */
#ifndef VIGIL_SHA256_H
#define VIGIL_SHA256_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VIGIL_SHA256_DIGEST 32u

typedef struct {
    uint32_t h[8];
    uint64_t bytes;    /* message length so far */
    uint8_t block[64]; /* pending partial block */
    uint8_t fill;      /* bytes in block */
} vigil_sha256_t;

void vigil_sha256_init(vigil_sha256_t *s);
void vigil_sha256_update(vigil_sha256_t *s, const uint8_t *data, size_t len);
/** Writes the 32-byte digest. The context must be re-initialised before reuse. */
void vigil_sha256_final(vigil_sha256_t *s, uint8_t out[VIGIL_SHA256_DIGEST]);

#ifdef __cplusplus
}
#endif

#endif /* VIGIL_SHA256_H */
