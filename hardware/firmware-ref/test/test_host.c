/*
 * Host test of the Vigil C reference (plain asserts, no framework).
 * Build and run: make -C hardware/firmware-ref test
 * Last line on success: "N passed, 0 failed".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../vigil_frame.h"
#include "../vigil_txq.h"
#include "vectors.inc"

static int passed, failed;

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (cond) {                                                                    \
            passed++;                                                                  \
        } else {                                                                       \
            failed++;                                                                  \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
        }                                                                              \
    } while (0)

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static size_t from_hex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = strlen(hex) / 2u, i;
    if (n > cap) abort();
    for (i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2u * i, "%2x", &v) != 1) abort();
        out[i] = (uint8_t)v;
    }
    return n;
}

/* Deterministic PRNG (xorshift32) for randomised round trips. */
static uint32_t rng_state = 0x12345678u;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static void test_crc(void)
{
    const uint8_t check[] = "123456789";
    uint32_t c;
    CHECK(vigil_crc32(check, 9) == 0xCBF43926u);
    c = vigil_crc32_update(0, check, 4);
    c = vigil_crc32_update(c, check + 4, 5);
    CHECK(c == 0xCBF43926u);
    CHECK(vigil_crc32(check, 0) == 0u);
}

static void cobs_round_trip(const uint8_t *src, size_t n)
{
    static uint8_t enc[2048], dec[2048];
    size_t e = vigil_cobs_encode(src, n, enc, sizeof enc), i;
    int d;
    bool zero_inside = false;
    CHECK(e > 0u && e <= VIGIL_COBS_MAX_WIRE(n));
    CHECK(enc[e - 1u] == 0u);
    for (i = 0; i + 1u < e; i++)
        if (enc[i] == 0u) zero_inside = true;
    CHECK(!zero_inside);
    d = vigil_cobs_decode(enc, e - 1u, dec, sizeof dec);
    CHECK(d == (int)n);
    CHECK(n == 0u || memcmp(dec, src, n) == 0);
    /* in-place decode */
    d = vigil_cobs_decode(enc, e - 1u, enc, sizeof enc);
    CHECK(d == (int)n && (n == 0u || memcmp(enc, src, n) == 0));
}

static void test_cobs(void)
{
    static uint8_t buf[1200], out[1200];
    size_t n, i;
    /* classic examples (Wikipedia / the paper) */
    {
        const uint8_t a[] = {0x00};
        const uint8_t a_enc[] = {0x01, 0x01, 0x00};
        const uint8_t b[] = {0x11, 0x22, 0x00, 0x33};
        const uint8_t b_enc[] = {0x03, 0x11, 0x22, 0x02, 0x33, 0x00};
        CHECK(vigil_cobs_encode(a, 1, out, sizeof out) == 3 && memcmp(out, a_enc, 3) == 0);
        CHECK(vigil_cobs_encode(b, 4, out, sizeof out) == 6 && memcmp(out, b_enc, 6) == 0);
        CHECK(vigil_cobs_encode(b, 0, out, sizeof out) == 2 && out[0] == 1 && out[1] == 0);
    }
    /* 254 non-zero bytes: FF block, then a final 01 block, then the delimiter (257 bytes). */
    for (i = 0; i < 254; i++) buf[i] = (uint8_t)(i + 1u);
    n = vigil_cobs_encode(buf, 254, out, sizeof out);
    CHECK(n == 257u && out[0] == 0xFFu && out[255] == 0x01u && out[256] == 0x00u);
    CHECK(vigil_cobs_encode(buf, 254, out, 256) == 0u); /* capacity enforced */
    /* runs of 253, 254, 255, 508, 509, 1000 non-zero bytes, with and without zeros around */
    {
        const size_t lens[] = {0, 1, 2, 253, 254, 255, 256, 507, 508, 509, 1000};
        for (i = 0; i < COUNT(lens); i++) {
            size_t k;
            for (k = 0; k < lens[i]; k++) buf[k] = (uint8_t)(1u + (k % 255u));
            cobs_round_trip(buf, lens[i]);
            if (lens[i] > 2u) {
                buf[0] = 0;
                buf[lens[i] - 1u] = 0;
                cobs_round_trip(buf, lens[i]);
                buf[lens[i] / 2u] = 0;
                cobs_round_trip(buf, lens[i]);
            }
        }
    }
    /* all zeros, random */
    memset(buf, 0, 600);
    cobs_round_trip(buf, 600);
    for (i = 0; i < 300; i++) {
        size_t k, len = rnd() % 1100u;
        for (k = 0; k < len; k++) buf[k] = (rnd() % 4u == 0u) ? 0u : (uint8_t)rnd();
        cobs_round_trip(buf, len);
    }
    /* invalid blocks */
    {
        const uint8_t past_end[] = {0x05, 0x11, 0x22};
        const uint8_t zero_code[] = {0x02, 0x11, 0x00, 0x22};
        const uint8_t zero_data[] = {0x03, 0x00, 0x22};
        const uint8_t ok[] = {0x03, 0x11, 0x22, 0x02, 0x33};
        CHECK(vigil_cobs_decode(past_end, 3, out, sizeof out) == -1);
        CHECK(vigil_cobs_decode(zero_code, 4, out, sizeof out) == -1);
        CHECK(vigil_cobs_decode(zero_data, 3, out, sizeof out) == -1);
        CHECK(vigil_cobs_decode(ok, 5, out, 4) == 4);
        CHECK(vigil_cobs_decode(ok, 5, out, 3) == -1); /* does not fit */
        CHECK(vigil_cobs_decode(ok, 5, out, 2) == -1);
        CHECK(vigil_cobs_decode(ok, 0, out, 0) == 0);
    }
}

/* Encodes f, decodes it back, re-encodes, checks wire form and in-place helper. */
static void frame_round_trip(const vigil_frame_t *f)
{
    static uint8_t a[VIGIL_MAX_FRAME], b[VIGIL_MAX_FRAME], wire[VIGIL_MAX_WIRE], wire2[VIGIL_MAX_WIRE];
    static vigil_frame_t g;
    size_t na = vigil_encode(f, a, sizeof a), nb, nw, nw2;
    CHECK(na >= 12u && na <= VIGIL_MAX_FRAME);
    memset(&g, 0xA5, sizeof g);
    CHECK(vigil_decode(a, na, &g) == VIGIL_OK);
    CHECK(g.type == f->type);
    nb = vigil_encode(&g, b, sizeof b);
    CHECK(nb == na && memcmp(a, b, na) == 0);
    nw = vigil_encode_wire(f, wire, sizeof wire);
    nw2 = vigil_cobs_encode(a, na, wire2, sizeof wire2);
    CHECK(nw == nw2 && nw > 0u && memcmp(wire, wire2, nw) == 0);
    CHECK(nw <= VIGIL_MAX_WIRE);
    CHECK(vigil_encode(f, a, na - 1u) == 0u); /* capacity enforced */
}

static void test_frames(void)
{
    static vigil_frame_t f, g;
    static uint8_t buf[VIGIL_MAX_FRAME];
    size_t n, i, k;

    memset(&f, 0, sizeof f);
    f.type = VIGIL_TYPE_DATA;
    f.u.data.device_id = 0xDEADBEEFu;
    f.u.data.seq = 0xFFFFFFFFu;
    f.u.data.timestamp_us = 9007199254740991ull;
    f.u.data.flags = 1;
    f.u.data.channel_count = 3;
    f.u.data.values[0] = 1.5f;
    f.u.data.values[1] = -0.0f;
    f.u.data.values[2] = 3.4028234663852886e38f;
    frame_round_trip(&f);
    n = vigil_encode(&f, buf, sizeof buf);
    CHECK(vigil_decode(buf, n, &g) == VIGIL_OK);
    CHECK(g.u.data.device_id == 0xDEADBEEFu && g.u.data.seq == 0xFFFFFFFFu);
    CHECK(g.u.data.timestamp_us == 9007199254740991ull && g.u.data.flags == 1u);
    CHECK(g.u.data.channel_count == 3u && g.u.data.values[0] == 1.5f);
    CHECK(memcmp(&g.u.data.values[1], &f.u.data.values[1], 4) == 0); /* -0 kept */
    f.u.data.channel_count = 32;
    frame_round_trip(&f);
    n = vigil_encode(&f, buf, sizeof buf);
    CHECK(n == VIGIL_DATA_FRAME_BYTES(32));
    f.u.data.channel_count = 0;
    CHECK(vigil_encode(&f, buf, sizeof buf) == 0u);
    f.u.data.channel_count = 33;
    CHECK(vigil_encode(&f, buf, sizeof buf) == 0u);

    /* random DATA frames */
    for (i = 0; i < 200; i++) {
        memset(&f, 0, sizeof f);
        f.type = VIGIL_TYPE_DATA;
        f.u.data.device_id = rnd();
        f.u.data.seq = rnd();
        f.u.data.timestamp_us = (((uint64_t)rnd() << 32) | rnd()) & (VIGIL_MAX_TIME_US - 1u); /* exact as a double */
        f.u.data.flags = (uint8_t)rnd();
        f.u.data.channel_count = (uint8_t)(1u + rnd() % 32u);
        for (k = 0; k < f.u.data.channel_count; k++) {
            uint32_t bits = rnd();
            if ((bits & 0x7F800000u) == 0x7F800000u) bits &= ~0x00800000u; /* keep finite */
            memcpy(&f.u.data.values[k], &bits, 4);
        }
        frame_round_trip(&f);
    }

    /* HELLO */
    memset(&f, 0, sizeof f);
    f.type = VIGIL_TYPE_HELLO;
    f.u.hello.device_id = 0x01020304u;
    f.u.hello.boot_id = 7;
    f.u.hello.fw_major = 1;
    f.u.hello.fw_minor = 2;
    f.u.hello.fw_patch = 300;
    strcpy(f.u.hello.profile, "rotating-v1");
    f.u.hello.channel_count = 2;
    strcpy(f.u.hello.channels[0].name, "vib_rms");
    f.u.hello.channels[0].unit = 1;
    strcpy(f.u.hello.channels[1].name, "temp_c");
    f.u.hello.channels[1].unit = 2;
    frame_round_trip(&f);
    n = vigil_encode(&f, buf, sizeof buf);
    CHECK(vigil_decode(buf, n, &g) == VIGIL_OK && strcmp(g.u.hello.profile, "rotating-v1") == 0);
    CHECK(strcmp(g.u.hello.channels[1].name, "temp_c") == 0 && g.u.hello.channels[1].unit == 2u);
    CHECK(g.u.hello.fw_patch == 300u && g.u.hello.boot_id == 7u);
    f.u.hello.profile[0] = '\0'; /* empty profile is allowed */
    frame_round_trip(&f);
    strcpy(f.u.hello.profile, "has space");
    CHECK(vigil_encode(&f, buf, sizeof buf) == 0u);
    strcpy(f.u.hello.profile, "p");
    strcpy(f.u.hello.channels[0].name, "Bad");
    CHECK(vigil_encode(&f, buf, sizeof buf) == 0u);
    strcpy(f.u.hello.channels[0].name, "ok");
    f.u.hello.channels[0].unit = 13;
    CHECK(vigil_encode(&f, buf, sizeof buf) == 0u);
    f.u.hello.channels[0].unit = 12;
    /* payload too large: 32 channels of 15-char names = 14 + 1 + 32*17 > 240 */
    f.u.hello.channel_count = 32;
    for (k = 0; k < 32; k++) {
        strcpy(f.u.hello.channels[k].name, "abcdefghijklmno");
        f.u.hello.channels[k].unit = 0;
    }
    CHECK(vigil_encode(&f, buf, sizeof buf) == 0u);
    /* largest that fits: 13 + 31 + 1 + 11*(2+15) + (2+8) = 242 -> use 10*17 + 2+15 ... build to exactly 240 */
    strcpy(f.u.hello.profile, "abcdefghijklmnopqrstuvwxyz01234"); /* 31 */
    f.u.hello.channel_count = 11;                                   /* 45 + 11*17 = 232 */
    strcpy(f.u.hello.channels[10].name, "abcdefghijklmno");
    frame_round_trip(&f);
    f.u.hello.channel_count = 12;
    strcpy(f.u.hello.channels[11].name, "abcdef"); /* 232 + 8 = 240 */
    frame_round_trip(&f);
    n = vigil_encode(&f, buf, sizeof buf);
    CHECK(n == VIGIL_MAX_FRAME);
    strcpy(f.u.hello.channels[11].name, "abcdefg"); /* 241 */
    CHECK(vigil_encode(&f, buf, sizeof buf) == 0u);

    /* ACK */
    memset(&f, 0, sizeof f);
    f.type = VIGIL_TYPE_ACK;
    f.u.ack.device_id = 42;
    f.u.ack.first_seq = 4294967290u;
    f.u.ack.count = 12;
    f.u.ack.gateway_time_us = 1764000000000001ull;
    frame_round_trip(&f);
    f.u.ack.count = 0;
    CHECK(vigil_encode(&f, buf, sizeof buf) == 0u);

    /* NACK */
    memset(&f, 0, sizeof f);
    f.type = VIGIL_TYPE_NACK;
    f.u.nack.device_id = 42;
    f.u.nack.seq = 99;
    f.u.nack.reason = VIGIL_NACK_STORE_UNAVAILABLE;
    frame_round_trip(&f);

    /* ERROR */
    memset(&f, 0, sizeof f);
    f.type = VIGIL_TYPE_ERROR;
    f.u.error.device_id = 42;
    f.u.error.code = 1;
    strcpy(f.u.error.message, "bearing thermocouple open");
    f.u.error.message_len = (uint8_t)strlen(f.u.error.message);
    frame_round_trip(&f);
    n = vigil_encode(&f, buf, sizeof buf);
    CHECK(vigil_decode(buf, n, &g) == VIGIL_OK && g.u.error.message_len == 25u);
    CHECK(strcmp(g.u.error.message, "bearing thermocouple open") == 0);
    f.u.error.message_len = 0;
    frame_round_trip(&f);
    f.u.error.message_len = 200;
    memset(f.u.error.message, 'x', 200);
    frame_round_trip(&f);
    f.u.error.message_len = 201;
    CHECK(vigil_encode(&f, buf, sizeof buf) == 0u);

    f.type = 9;
    CHECK(vigil_encode(&f, buf, sizeof buf) == 0u);
}

static void test_vectors(void)
{
    static uint8_t raw[600], enc[VIGIL_MAX_FRAME], wire[600], mywire[VIGIL_MAX_WIRE];
    static vigil_frame_t f;
    size_t i;
    for (i = 0; i < COUNT(valid_vectors); i++) {
        size_t n = from_hex(valid_vectors[i].hex, raw, sizeof raw);
        size_t nw = from_hex(valid_vectors[i].wire, wire, sizeof wire);
        size_t ne, nmw;
        CHECK(vigil_decode(raw, n, &f) == VIGIL_OK);
        ne = vigil_encode(&f, enc, sizeof enc);
        CHECK(ne == n && memcmp(enc, raw, n) == 0);
        nmw = vigil_encode_wire(&f, mywire, sizeof mywire);
        CHECK(nmw == nw && memcmp(mywire, wire, nw) == 0);
    }
    for (i = 0; i < COUNT(invalid_vectors); i++) {
        size_t n = from_hex(invalid_vectors[i].hex, raw, sizeof raw);
        vigil_reject_t r = vigil_decode(raw, n, &f);
        if (strcmp(vigil_reject_name(r), invalid_vectors[i].reason) != 0)
            fprintf(stderr, "vector %s: got %s want %s\n", invalid_vectors[i].name, vigil_reject_name(r),
                    invalid_vectors[i].reason);
        CHECK(strcmp(vigil_reject_name(r), invalid_vectors[i].reason) == 0);
    }
}

/* Builds a valid frame with a valid CRC after patching header/payload bytes. */
static size_t reseal(uint8_t *b, size_t n)
{
    uint32_t c = vigil_crc32(b, n - 4u);
    b[n - 4u] = (uint8_t)c;
    b[n - 3u] = (uint8_t)(c >> 8);
    b[n - 2u] = (uint8_t)(c >> 16);
    b[n - 1u] = (uint8_t)(c >> 24);
    return n;
}

/*
 * ERROR messages: the encoder refuses exactly what the decoder (and the gateway's fatal
 * TextDecoder) refuses as BAD_PAYLOAD: ill-formed UTF-8 (PROTOCOL.md, ERROR). Before, the
 * encoder sent such a message and the gateway dropped the frame without a reply.
 */
static void test_error_utf8(void)
{
    static const struct {
        const char *bytes;
        size_t len;
        bool valid;
    } cases[] = {
        {"", 0, true},
        {"bearing 85 \xC2\xB0" "C", 14, true},     /* U+00B0 */
        {"\xE2\x9C\x93", 3, true},                 /* U+2713 */
        {"\xF0\x9F\x94\xA5", 4, true},             /* U+1F525 */
        {"\xEF\xBB\xBF" "x", 4, true},             /* a leading BOM is part of the message */
        {"\xED\x9F\xBF", 3, true},                 /* U+D7FF, last before the surrogates */
        {"\xF4\x8F\xBF\xBF", 4, true},             /* U+10FFFF */
        {"a\0b", 3, true},                         /* U+0000 is well-formed */
        {"\xC3\x28", 2, false},                    /* bad continuation byte */
        {"\x80", 1, false},                        /* lone continuation byte */
        {"\xC0\xAF", 2, false},                    /* overlong '/' */
        {"\xC1\xBF", 2, false},                    /* overlong */
        {"\xE0\x80\xAF", 3, false},                /* overlong 3-byte */
        {"\xF0\x8F\xBF\xBF", 4, false},            /* overlong 4-byte */
        {"\xED\xA0\x80", 3, false},                /* surrogate U+D800 */
        {"\xF4\x90\x80\x80", 4, false},            /* above U+10FFFF */
        {"\xF5\x80\x80\x80", 4, false},
        {"\xFF", 1, false},
        {"temp \xE2\x82", 7, false},               /* sequence cut by the end */
        {"\xE2\x28\xA1", 3, false},
        {"\xF0\x9F\x94" "a", 4, false},
    };
    static vigil_frame_t f, g;
    static uint8_t buf[VIGIL_MAX_FRAME], b[VIGIL_MAX_FRAME];
    unsigned i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const size_t m = cases[i].len;
        size_t n;
        memset(&f, 0, sizeof f);
        f.type = VIGIL_TYPE_ERROR;
        f.u.error.device_id = 42;
        f.u.error.code = 4;
        f.u.error.message_len = (uint8_t)m;
        memcpy(f.u.error.message, cases[i].bytes, m);
        n = vigil_encode(&f, buf, sizeof buf);
        if (cases[i].valid != (n > 0u)) fprintf(stderr, "  encoder, case %u\n", i);
        CHECK(cases[i].valid == (n > 0u));
        if (n > 0u) CHECK(vigil_decode(buf, n, &g) == VIGIL_OK && g.u.error.message_len == m &&
                          memcmp(g.u.error.message, cases[i].bytes, m) == 0);
        /* the same bytes built by hand: the decoder's verdict */
        memset(b, 0, sizeof b);
        b[0] = 1;
        b[1] = VIGIL_TYPE_ERROR;
        b[2] = (uint8_t)(6u + m);
        b[4] = 42;
        b[8] = 4;
        b[9] = (uint8_t)m;
        memcpy(b + 10, cases[i].bytes, m);
        n = reseal(b, 4u + 6u + m + 4u);
        CHECK((vigil_decode(b, n, &g) == VIGIL_OK) == cases[i].valid);
    }
}

static void test_decode_precedence(void)
{
    static uint8_t b[400];
    static vigil_frame_t f;
    size_t n;
    /* size checks come first: 249 bytes is OVERSIZED whatever the content */
    memset(b, 0, sizeof b);
    CHECK(vigil_decode(b, 249, &f) == VIGIL_OVERSIZED);
    CHECK(vigil_decode(b, 7, &f) == VIGIL_TRUNCATED);
    CHECK(vigil_decode(b, 0, &f) == VIGIL_TRUNCATED);
    /* length field 241 with 8 bytes: OVERSIZED before TRUNCATED */
    b[2] = 241;
    CHECK(vigil_decode(b, 8, &f) == VIGIL_OVERSIZED);
    /* bad CRC wins over bad version/type */
    b[0] = 2;
    b[1] = 9;
    b[2] = 0;
    CHECK(vigil_decode(b, 8, &f) == VIGIL_BAD_CRC);
    reseal(b, 8);
    CHECK(vigil_decode(b, 8, &f) == VIGIL_BAD_VERSION); /* version before type */
    b[0] = 1;
    reseal(b, 8);
    CHECK(vigil_decode(b, 8, &f) == VIGIL_BAD_TYPE);
    b[1] = 0;
    reseal(b, 8);
    CHECK(vigil_decode(b, 8, &f) == VIGIL_BAD_TYPE);
    /* empty payloads of every known type: BAD_PAYLOAD */
    for (b[1] = 1; b[1] <= 5; b[1]++) {
        reseal(b, 8);
        CHECK(vigil_decode(b, 8, &f) == VIGIL_BAD_PAYLOAD);
    }
    /* NACK: ok with 9 bytes of payload */
    memset(b, 0, sizeof b);
    b[0] = 1;
    b[1] = 4;
    b[2] = 9;
    n = reseal(b, 17);
    CHECK(vigil_decode(b, n, &f) == VIGIL_OK && f.type == 4);
    /* ACK with count 0 */
    memset(b, 0, sizeof b);
    b[0] = 1;
    b[1] = 3;
    b[2] = 18;
    n = reseal(b, 26);
    CHECK(vigil_decode(b, n, &f) == VIGIL_BAD_PAYLOAD);
    b[12] = 1;
    n = reseal(b, 26);
    CHECK(vigil_decode(b, n, &f) == VIGIL_OK && f.u.ack.count == 1u);
    /* ERROR message length mismatch and > 200 */
    memset(b, 0, sizeof b);
    b[0] = 1;
    b[1] = 5;
    b[2] = 8;
    b[9] = 3; /* says 3, has 2 */
    n = reseal(b, 16);
    CHECK(vigil_decode(b, n, &f) == VIGIL_BAD_PAYLOAD);
    b[9] = 2;
    b[10] = 'h';
    b[11] = 'i';
    n = reseal(b, 16);
    CHECK(vigil_decode(b, n, &f) == VIGIL_OK && strcmp(f.u.error.message, "hi") == 0);
    b[2] = 207;
    b[9] = 201;
    n = reseal(b, 4 + 207 + 4);
    CHECK(vigil_decode(b, n, &f) == VIGIL_BAD_PAYLOAD);
    /* DATA: +Inf is well-formed (revision 1.2), BAD_PAYLOAD for channel count 0 */
    memset(b, 0, sizeof b);
    b[0] = 1;
    b[1] = 2;
    b[2] = 22;
    b[4 + 16] = 1;
    b[4 + 18 + 3] = 0x7F;
    b[4 + 18 + 2] = 0x80; /* +Inf */
    n = reseal(b, 30);
    CHECK(vigil_decode(b, n, &f) == VIGIL_OK);
    CHECK(f.type == VIGIL_TYPE_DATA && isinf(f.u.data.values[0]));
    b[4 + 18 + 2] = 0x7F; /* largest finite exponent: 0x7F7F0000 */
    n = reseal(b, 30);
    CHECK(vigil_decode(b, n, &f) == VIGIL_OK);
    b[4 + 16] = 0;
    n = reseal(b, 30);
    CHECK(vigil_decode(b, n, &f) == VIGIL_BAD_PAYLOAD);
    /* HELLO trailing byte, bad name char, bad profile char */
    {
        static vigil_frame_t h;
        size_t k;
        memset(&h, 0, sizeof h);
        h.type = VIGIL_TYPE_HELLO;
        strcpy(h.u.hello.profile, "p1");
        h.u.hello.channel_count = 1;
        strcpy(h.u.hello.channels[0].name, "ab");
        n = vigil_encode(&h, b, sizeof b);
        CHECK(n > 0u && vigil_decode(b, n, &f) == VIGIL_OK);
        for (k = 4; k < n - 4u; k++) {
            /* Any single-byte change in the payload either still decodes or is BAD_PAYLOAD. */
            static uint8_t c[400];
            vigil_reject_t r;
            memcpy(c, b, n);
            c[k] ^= 0x40;
            reseal(c, n);
            r = vigil_decode(c, n, &f);
            CHECK(r == VIGIL_OK || r == VIGIL_BAD_PAYLOAD);
        }
        b[4 + 14] = ' '; /* profile char */
        reseal(b, n);
        CHECK(vigil_decode(b, n, &f) == VIGIL_BAD_PAYLOAD);
    }
}

/* ---- receiver ------------------------------------------------------------------------- */

#define MAX_EVENTS 64
typedef struct {
    int n;
    vigil_rx_event_t ev[MAX_EVENTS];
    vigil_reject_t reason[MAX_EVENTS];
    size_t raw_len[MAX_EVENTS];
    uint8_t type[MAX_EVENTS];
} events_t;

/* Feeds `data` split into chunks of `chunk` bytes (0 = byte by byte via push_byte). */
static void feed(vigil_rx_t *rx, const uint8_t *data, size_t len, size_t chunk, events_t *e)
{
    static vigil_frame_t f;
    size_t off = 0;
    while (off < len) {
        vigil_rx_event_t ev;
        if (chunk == 0u) {
            ev = vigil_rx_push_byte(rx, data[off], &f);
            off++;
        } else {
            size_t take = len - off < chunk ? len - off : chunk;
            size_t k = vigil_rx_push(rx, data + off, take, &f, &ev);
            CHECK(k >= 1u && k <= take);
            off += k;
        }
        if (ev != VIGIL_RX_NONE && e->n < MAX_EVENTS) {
            size_t rl = 0;
            (void)vigil_rx_raw(rx, &rl);
            e->ev[e->n] = ev;
            e->reason[e->n] = rx->reason;
            e->raw_len[e->n] = ev == VIGIL_RX_FRAME ? rl : 0u;
            e->type[e->n] = ev == VIGIL_RX_FRAME ? f.type : 0u;
            e->n++;
        }
    }
}

static size_t append(uint8_t *dst, size_t at, const uint8_t *src, size_t n)
{
    memcpy(dst + at, src, n);
    return at + n;
}

static void test_rx(void)
{
    static uint8_t stream[4096], raw[600], wire[600];
    static vigil_rx_t rx;
    static events_t e;
    const size_t chunks[] = {0, 1, 2, 3, 7, 64, 250, 4096};
    size_t len = 0, i, c;
    const uint8_t garbage[] = {0x11, 0x22, 0x33, 0x00};
    const uint8_t bad_cobs[] = {0x05, 0x01, 0x00};
    const uint8_t empties[] = {0x00, 0x00, 0x00};
    size_t nw;

    /* stream: empties, v0, garbage, v1, oversized run, v2, bad COBS, v3, trailing-byte frame */
    len = append(stream, len, empties, sizeof empties);
    nw = from_hex(valid_vectors[0].wire, wire, sizeof wire);
    len = append(stream, len, wire, nw);
    len = append(stream, len, garbage, sizeof garbage);
    nw = from_hex(valid_vectors[1].wire, wire, sizeof wire);
    len = append(stream, len, wire, nw);
    memset(stream + len, 0x55, 600); /* 600 bytes without delimiter */
    len += 600;
    stream[len++] = 0;
    nw = from_hex(valid_vectors[5].wire, wire, sizeof wire);
    len = append(stream, len, wire, nw);
    len = append(stream, len, bad_cobs, sizeof bad_cobs);
    nw = from_hex(valid_vectors[7].wire, wire, sizeof wire);
    len = append(stream, len, wire, nw);
    {
        size_t n = from_hex(invalid_vectors[3].hex, raw, sizeof raw); /* trailing-byte */
        len += vigil_cobs_encode(raw, n, stream + len, sizeof stream - len);
    }
    len = append(stream, len, empties, sizeof empties);

    for (c = 0; c < COUNT(chunks); c++) {
        vigil_rx_init(&rx);
        memset(&e, 0, sizeof e);
        feed(&rx, stream, len, chunks[c], &e);
        CHECK(e.n == 8);
        CHECK(e.ev[0] == VIGIL_RX_FRAME && e.type[0] == VIGIL_TYPE_DATA && e.raw_len[0] == 30u);
        CHECK(e.ev[1] == VIGIL_RX_REJECT && e.reason[1] == VIGIL_BAD_COBS); /* 11 22 33: code past end */
        CHECK(e.ev[2] == VIGIL_RX_FRAME && e.type[2] == VIGIL_TYPE_DATA);
        CHECK(e.ev[3] == VIGIL_RX_REJECT && e.reason[3] == VIGIL_OVERSIZED); /* exactly once */
        CHECK(e.ev[4] == VIGIL_RX_FRAME && e.type[4] == VIGIL_TYPE_HELLO);
        CHECK(e.ev[5] == VIGIL_RX_REJECT && e.reason[5] == VIGIL_BAD_COBS);
        CHECK(e.ev[6] == VIGIL_RX_FRAME && e.type[6] == VIGIL_TYPE_NACK);
        CHECK(e.ev[7] == VIGIL_RX_REJECT && e.reason[7] == VIGIL_LENGTH_MISMATCH);
        CHECK(rx.bytes_discarded == 600u);
        CHECK(rx.len == 0u && vigil_rx_flush(&rx) == VIGIL_OK);
    }

    /* boundary: a 249-byte segment is decoded, a 250-byte one is OVERSIZED */
    vigil_rx_init(&rx);
    memset(&e, 0, sizeof e);
    memset(stream, 0x01, 249); /* 249 code bytes 01 -> 248 zero bytes, length field 0 */
    stream[249] = 0;
    feed(&rx, stream, 250, 0, &e);
    CHECK(e.n == 1 && e.ev[0] == VIGIL_RX_REJECT && e.reason[0] == VIGIL_LENGTH_MISMATCH);
    vigil_rx_init(&rx);
    memset(&e, 0, sizeof e);
    memset(stream, 0x01, 250);
    stream[250] = 0;
    feed(&rx, stream, 251, 0, &e);
    CHECK(e.n == 1 && e.ev[0] == VIGIL_RX_REJECT && e.reason[0] == VIGIL_OVERSIZED);
    CHECK(rx.bytes_discarded == 250u);
    /* a maximum-size frame (248 bytes) on the wire: 250 bytes with its delimiter */
    {
        static vigil_frame_t h;
        size_t k;
        memset(&h, 0, sizeof h);
        h.type = VIGIL_TYPE_ERROR;
        h.u.error.device_id = 0x01010101u;
        h.u.error.code = 4;
        h.u.error.message_len = 200;
        for (k = 0; k < 200; k++) h.u.error.message[k] = (char)('a' + k % 26u);
        /* 4 + 206 + 4 = 214: pad via a HELLO instead for 248 */
        memset(&h, 0, sizeof h);
        h.type = VIGIL_TYPE_HELLO;
        h.u.hello.device_id = 0x01010101u;
        h.u.hello.boot_id = 0x01010101u;
        h.u.hello.fw_major = h.u.hello.fw_minor = 1;
        h.u.hello.fw_patch = 0x0101u;
        strcpy(h.u.hello.profile, "abcdefghijklmnopqrstuvwxyz01234");
        h.u.hello.channel_count = 12;
        for (k = 0; k < 11; k++) {
            strcpy(h.u.hello.channels[k].name, "abcdefghijklmno");
            h.u.hello.channels[k].unit = 1;
        }
        strcpy(h.u.hello.channels[11].name, "abcdef");
        h.u.hello.channels[11].unit = 1;
        nw = vigil_encode_wire(&h, wire, VIGIL_MAX_WIRE);
        CHECK(nw >= 249u && nw <= VIGIL_MAX_WIRE);
        vigil_rx_init(&rx);
        memset(&e, 0, sizeof e);
        feed(&rx, wire, nw, 0, &e);
        CHECK(e.n == 1 && e.ev[0] == VIGIL_RX_FRAME && e.raw_len[0] == VIGIL_MAX_FRAME);
    }

    /* flush: partial frame is TRUNCATED, discarding run is not reported */
    vigil_rx_init(&rx);
    memset(&e, 0, sizeof e);
    feed(&rx, garbage, 3, 0, &e);
    CHECK(e.n == 0 && vigil_rx_flush(&rx) == VIGIL_TRUNCATED && rx.len == 0u);
    memset(stream, 0x55, 300);
    feed(&rx, stream, 300, 0, &e);
    CHECK(e.n == 1 && vigil_rx_flush(&rx) == VIGIL_OK);

    /* random garbage never crashes and never holds more than VIGIL_MAX_ENCODED bytes */
    vigil_rx_init(&rx);
    for (i = 0; i < 20000; i++) {
        static vigil_frame_t f;
        uint8_t b = (rnd() % 50u == 0u) ? 0u : (uint8_t)rnd();
        (void)vigil_rx_push_byte(&rx, b, &f);
        if (rx.len > VIGIL_MAX_ENCODED) break;
    }
    CHECK(rx.len <= VIGIL_MAX_ENCODED);
}

/* ---- resend ring ---------------------------------------------------------------------- */

static vigil_data_t mk(uint32_t seq)
{
    vigil_data_t d;
    memset(&d, 0, sizeof d);
    d.device_id = 42;
    d.seq = seq;
    d.timestamp_us = 0;
    d.channel_count = 2;
    d.values[0] = (float)seq;
    d.values[1] = 1.0f;
    return d;
}

static uint32_t frame_seq(const uint8_t *p) { return (uint32_t)p[8] | (uint32_t)p[9] << 8 | (uint32_t)p[10] << 16 | (uint32_t)p[11] << 24; }

static vigil_txq_nack_t nack(vigil_txq_t *q, uint32_t seq, uint8_t reason, uint32_t now)
{
    vigil_nack_t n;
    n.device_id = 42;
    n.seq = seq;
    n.reason = reason;
    n.retry_after_ms = 0;
    return vigil_txq_nack(q, &n, now);
}

static vigil_txq_nack_t busy(vigil_txq_t *q, uint32_t seq, uint16_t retry_after, uint32_t now)
{
    vigil_nack_t n;
    n.device_id = 42;
    n.seq = seq;
    n.reason = VIGIL_NACK_BUSY;
    n.retry_after_ms = retry_after;
    return vigil_txq_nack(q, &n, now);
}

/* BUSY: the queue sends nothing (new or resent) until retry_after_ms has passed. */
static void test_txq_busy(void)
{
    static vigil_txq_t q;
    const uint8_t *p;
    size_t len;
    uint32_t i;
    vigil_data_t d;
    vigil_txq_init(&q);
    for (i = 0; i < 3; i++) {
        d = mk(10u + i);
        vigil_txq_push(&q, &d);
    }
    for (i = 0; i < 3; i++) CHECK(vigil_txq_poll(&q, 100u, &len) != NULL);
    CHECK(busy(&q, 11u, 250u, 110u) == VIGIL_TXQ_NACK_BUSY);
    CHECK(vigil_txq_holding(&q, 110u) && vigil_txq_holding(&q, 359u) && !vigil_txq_holding(&q, 360u));
    d = mk(13u);
    vigil_txq_push(&q, &d); /* new frames wait too */
    CHECK(vigil_txq_poll(&q, 200u, &len) == NULL);
    CHECK(vigil_txq_poll(&q, 359u, &len) == NULL);
    /* a shorter BUSY does not shorten the hold; a longer one extends it; unknown seq still holds */
    CHECK(busy(&q, 10u, 10u, 300u) == VIGIL_TXQ_NACK_BUSY);
    CHECK(vigil_txq_poll(&q, 359u, &len) == NULL);
    CHECK(busy(&q, 999u, 100u, 300u) == VIGIL_TXQ_NACK_UNKNOWN_SEQ);
    CHECK(vigil_txq_poll(&q, 399u, &len) == NULL);
    /* hold over: the BUSY-NACKed frames first (10, 11), then the new one (13), oldest first */
    p = vigil_txq_poll(&q, 400u, &len);
    CHECK(p != NULL && frame_seq(p) == 10u);
    p = vigil_txq_poll(&q, 400u, &len);
    CHECK(p != NULL && frame_seq(p) == 11u);
    p = vigil_txq_poll(&q, 400u, &len);
    CHECK(p != NULL && frame_seq(p) == 13u);
    CHECK(vigil_txq_poll(&q, 400u, &len) == NULL);
    /* the retransmission timer restarted at the end of the hold */
    CHECK(vigil_txq_poll(&q, 899u, &len) == NULL);
    p = vigil_txq_poll(&q, 900u, &len);
    CHECK(p != NULL && frame_seq(p) == 10u);
    CHECK(vigil_txq_count(&q) == 4u);
    /* SEQ_OUT_OF_RANGE drops the frame (it will never be accepted in this boot) */
    CHECK(nack(&q, 12u, VIGIL_NACK_SEQ_OUT_OF_RANGE, 900u) == VIGIL_TXQ_NACK_DROPPED);
    CHECK(vigil_txq_count(&q) == 3u);
    /* a hold across the uint32 millisecond wrap */
    CHECK(busy(&q, 13u, 1000u, 0xFFFFFF00u) == VIGIL_TXQ_NACK_BUSY);
    CHECK(vigil_txq_poll(&q, 0x000002E7u, &len) == NULL); /* 999 ms later */
    CHECK(vigil_txq_poll(&q, 0x000002E8u, &len) != NULL); /* 1000 ms later */
}

/* SCHEMA_MISMATCH (PROTOCOL.md, NACK reason 4, revision 1.3): HELLO and the resend, at most
   VIGIL_TXQ_SCHEMA_MISMATCH_MAX (3) times per frame: the 3rd drops it (a HELLO cannot fix it). */
static void test_txq_schema_mismatch(void)
{
    static vigil_txq_t q;
    const uint8_t *p;
    size_t len;
    uint32_t k;
    vigil_data_t d;
    CHECK(VIGIL_TXQ_SCHEMA_MISMATCH_MAX == 3u);
    vigil_txq_init(&q);
    d = mk(50u);
    vigil_txq_push(&q, &d);
    d = mk(51u);
    vigil_txq_push(&q, &d);
    CHECK(vigil_txq_poll(&q, 0u, &len) != NULL && vigil_txq_poll(&q, 0u, &len) != NULL);
    for (k = 1; k < VIGIL_TXQ_SCHEMA_MISMATCH_MAX; k++) {
        CHECK(nack(&q, 50u, VIGIL_NACK_SCHEMA_MISMATCH, k) == VIGIL_TXQ_NACK_SEND_HELLO);
        p = vigil_txq_poll(&q, k, &len); /* the resend, after the HELLO */
        CHECK(p != NULL && frame_seq(p) == 50u);
        /* other reasons do not count */
        CHECK(nack(&q, 50u, VIGIL_NACK_STORE_UNAVAILABLE, k) == VIGIL_TXQ_NACK_RETRY_LATER);
    }
    /* the 3rd: dropped, not resent; the other frame is untouched */
    CHECK(nack(&q, 50u, VIGIL_NACK_SCHEMA_MISMATCH, 10u) == VIGIL_TXQ_NACK_DROPPED);
    CHECK(vigil_txq_count(&q) == 1u && vigil_txq_oldest(&q)->seq == 51u);
    CHECK(vigil_txq_poll(&q, 10u, &len) == NULL);
    CHECK(nack(&q, 50u, VIGIL_NACK_SCHEMA_MISMATCH, 11u) == VIGIL_TXQ_NACK_UNKNOWN_SEQ);
    /* counted per frame: 51's first SCHEMA_MISMATCH asks for HELLO */
    CHECK(nack(&q, 51u, VIGIL_NACK_SCHEMA_MISMATCH, 12u) == VIGIL_TXQ_NACK_SEND_HELLO);
    p = vigil_txq_poll(&q, 12u, &len);
    CHECK(p != NULL && frame_seq(p) == 51u);
    /* a frame in the dropped frame's slot (and under its seq) starts from 0 */
    d = mk(50u);
    vigil_txq_push(&q, &d);
    CHECK(q.order[1] == 0u && q.slots[0].schema_mismatches == 0u);
    for (k = 1; k < VIGIL_TXQ_SCHEMA_MISMATCH_MAX; k++)
        CHECK(nack(&q, 50u, VIGIL_NACK_SCHEMA_MISMATCH, 20u) == VIGIL_TXQ_NACK_SEND_HELLO);
    CHECK(nack(&q, 51u, VIGIL_NACK_SCHEMA_MISMATCH, 20u) == VIGIL_TXQ_NACK_SEND_HELLO);
    CHECK(nack(&q, 51u, VIGIL_NACK_SCHEMA_MISMATCH, 20u) == VIGIL_TXQ_NACK_DROPPED);
    CHECK(nack(&q, 50u, VIGIL_NACK_SCHEMA_MISMATCH, 20u) == VIGIL_TXQ_NACK_DROPPED);
    CHECK(vigil_txq_count(&q) == 0u);
}

static void test_txq(void)
{
    static vigil_txq_t q;
    static vigil_frame_t f;
    const uint8_t *p;
    size_t len;
    uint32_t i, t = 1000;
    vigil_data_t d;

    vigil_txq_init(&q);
    CHECK(vigil_txq_poll(&q, t, &len) == NULL && len == 0u);
    for (i = 0; i < 5; i++) {
        d = mk(0xFFFFFFFEu + i); /* wraps: FFFFFFFE, FFFFFFFF, 0, 1, 2 */
        CHECK(vigil_txq_push(&q, &d) == VIGIL_TXQ_OK);
    }
    CHECK(vigil_txq_count(&q) == 5u);
    /* new frames come out in order, each a valid DATA frame */
    for (i = 0; i < 5; i++) {
        p = vigil_txq_poll(&q, t, &len);
        CHECK(p != NULL && len == VIGIL_DATA_FRAME_BYTES(2));
        CHECK(p != NULL && vigil_decode(p, len, &f) == VIGIL_OK && f.u.data.seq == 0xFFFFFFFEu + i);
    }
    CHECK(vigil_txq_poll(&q, t + 499u, &len) == NULL);
    /* timeout: the oldest is resent, backoff doubles 500 -> 1000 -> ... -> 8000 */
    p = vigil_txq_poll(&q, t + 500u, &len);
    CHECK(p != NULL && frame_seq(p) == 0xFFFFFFFEu);
    CHECK(vigil_txq_poll(&q, t + 1499u, &len) == NULL);
    CHECK(vigil_txq_poll(&q, t + 1500u, &len) != NULL);
    t += 1500u;
    CHECK(q.rto_ms == 2000u);
    t += 2000u;
    CHECK(vigil_txq_poll(&q, t, &len) != NULL);
    t += 4000u;
    CHECK(vigil_txq_poll(&q, t, &len) != NULL);
    CHECK(q.rto_ms == 8000u);
    t += 8000u;
    CHECK(vigil_txq_poll(&q, t, &len) != NULL);
    CHECK(q.rto_ms == 8000u); /* capped */

    /* ACK across the wrap: FFFFFFFF, 0 (first_seq FFFFFFFF count 2) */
    CHECK(vigil_txq_ack(&q, 0xFFFFFFFFu, 2, t) == 2u);
    CHECK(vigil_txq_count(&q) == 3u && q.rto_ms == 500u);
    CHECK(vigil_txq_ack(&q, 0xFFFFFFFFu, 2, t) == 0u); /* duplicate ACK: nothing */
    p = vigil_txq_poll(&q, t + 500u, &len);
    CHECK(p != NULL && frame_seq(p) == 0xFFFFFFFEu); /* oldest still first */
    /* ACK range covering everything left */
    CHECK(vigil_txq_ack(&q, 0xFFFFFFF0u, 0xFFFF, t) == 3u);
    CHECK(vigil_txq_count(&q) == 0u && !q.timer_running);
    CHECK(vigil_txq_poll(&q, t + 100000u, &len) == NULL);

    /* overflow: 33 pushes keep the newest 32, report the drop */
    vigil_txq_init(&q);
    for (i = 0; i < 32; i++) {
        d = mk(100u + i);
        CHECK(vigil_txq_push(&q, &d) == VIGIL_TXQ_OK);
    }
    d = mk(132);
    CHECK(vigil_txq_push(&q, &d) == VIGIL_TXQ_DROPPED_OLDEST);
    CHECK(vigil_txq_count(&q) == 32u && q.overflows == 1u);
    p = vigil_txq_poll(&q, 0, &len);
    CHECK(p != NULL && frame_seq(p) == 101u);
    /* ACK a run in the middle, then the order of what is left is preserved */
    CHECK(vigil_txq_ack(&q, 110u, 10, 0) == 10u);
    CHECK(vigil_txq_count(&q) == 22u);
    d = mk(133);
    CHECK(vigil_txq_push(&q, &d) == VIGIL_TXQ_OK); /* reuses a freed slot */
    /* unsent frames in age order: 102..109, 120..132, then the new 133 */
    for (i = 0; i < 22; i++) {
        const uint32_t want = i < 8u ? 102u + i : 112u + i;
        p = vigil_txq_poll(&q, 0, &len);
        CHECK(p != NULL && frame_seq(p) == want);
    }
    CHECK(vigil_txq_poll(&q, 0, &len) == NULL);

    /* NACKs */
    CHECK(nack(&q, 5000u, VIGIL_NACK_NON_FINITE, 0) == VIGIL_TXQ_NACK_UNKNOWN_SEQ);
    CHECK(nack(&q, 101u, VIGIL_NACK_NON_FINITE, 0) == VIGIL_TXQ_NACK_DROPPED);
    CHECK(nack(&q, 102u, VIGIL_NACK_ABSURD_TIMESTAMP, 0) == VIGIL_TXQ_NACK_DROPPED);
    CHECK(nack(&q, 103u, 200u, 0) == VIGIL_TXQ_NACK_DROPPED); /* unknown reason */
    CHECK(vigil_txq_count(&q) == 20u);
    CHECK(nack(&q, 104u, VIGIL_NACK_STORE_UNAVAILABLE, 0) == VIGIL_TXQ_NACK_RETRY_LATER);
    CHECK(nack(&q, 104u, VIGIL_NACK_RATE_LIMITED, 0) == VIGIL_TXQ_NACK_RETRY_LATER);
    CHECK(vigil_txq_count(&q) == 20u && q.rto_ms == 2000u);
    CHECK(vigil_txq_poll(&q, 1999u, &len) == NULL);
    p = vigil_txq_poll(&q, 2000u, &len);
    CHECK(p != NULL && frame_seq(p) == 104u);
    CHECK(nack(&q, 106u, VIGIL_NACK_SCHEMA_MISMATCH, 2000u) == VIGIL_TXQ_NACK_SEND_HELLO);
    p = vigil_txq_poll(&q, 2001u, &len); /* immediately due again (after the HELLO) */
    CHECK(p != NULL && frame_seq(p) == 106u);
    CHECK(nack(&q, 105u, VIGIL_NACK_REVOKED_DEVICE, 2001u) == VIGIL_TXQ_NACK_STOP);
    CHECK(vigil_txq_count(&q) == 20u && vigil_txq_poll(&q, 100000u, &len) == NULL);
    vigil_txq_resume(&q);
    CHECK(vigil_txq_poll(&q, 100000u, &len) != NULL);
    CHECK(nack(&q, 105u, VIGIL_NACK_UNKNOWN_DEVICE, 0) == VIGIL_TXQ_NACK_STOP);
    vigil_txq_resume(&q);
    /* the refusal of a HELLO carries seq 0, which no queued frame has: it stops the queue too */
    CHECK(nack(&q, 0u, VIGIL_NACK_REVOKED_DEVICE, 0) == VIGIL_TXQ_NACK_STOP);
    CHECK(vigil_txq_poll(&q, 200000u, &len) == NULL);
    /* while stopped the oldest kept frame is still at hand, for the probe (PROTOCOL.md, "A
       stopped device"); poll() stays silent */
    {
        const vigil_txq_slot_t *o = vigil_txq_oldest(&q);
        CHECK(o != NULL && o->seq == q.slots[q.order[0]].seq && frame_seq(o->bytes) == o->seq && o->len > 0u);
        CHECK(vigil_txq_poll(&q, 200001u, &len) == NULL && vigil_txq_count(&q) == 20u);
    }
    vigil_txq_resume(&q);
    CHECK(nack(&q, 0u, VIGIL_NACK_UNKNOWN_DEVICE, 0) == VIGIL_TXQ_NACK_STOP);
    vigil_txq_resume(&q);

    /* invalid frames are refused without evicting anything */
    d = mk(1);
    d.channel_count = 0;
    CHECK(vigil_txq_push(&q, &d) == VIGIL_TXQ_INVALID && vigil_txq_count(&q) == 20u);
    d = mk(1);
    d.timestamp_us = 1ull << 53; /* a clock gone wrong: the frame cannot be encoded */
    CHECK(vigil_txq_push(&q, &d) == VIGIL_TXQ_INVALID && vigil_txq_count(&q) == 20u);

    /* timer arithmetic survives the uint32 millisecond wrap */
    vigil_txq_init(&q);
    CHECK(vigil_txq_oldest(&q) == NULL);
    d = mk(7);
    vigil_txq_push(&q, &d);
    CHECK(vigil_txq_poll(&q, 0xFFFFFF00u, &len) != NULL);
    CHECK(vigil_txq_poll(&q, 0x00000010u, &len) == NULL); /* 272 ms later */
    CHECK(vigil_txq_poll(&q, 0x000000F4u, &len) != NULL); /* 500 ms later */
}

int main(void)
{
    test_crc();
    test_cobs();
    test_frames();
    test_vectors();
    test_decode_precedence();
    test_error_utf8();
    test_rx();
    test_txq();
    test_txq_busy();
    test_txq_schema_mismatch();
    printf("sizeof(vigil_rx_t)=%u sizeof(vigil_frame_t)=%u sizeof(vigil_txq_t)=%u\n", (unsigned)sizeof(vigil_rx_t),
           (unsigned)sizeof(vigil_frame_t), (unsigned)sizeof(vigil_txq_t));
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
