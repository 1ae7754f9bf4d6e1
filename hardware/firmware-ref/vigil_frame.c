/*
 * Vigil frame protocol v1 (revision 1.4) — portable C99 reference codec. See vigil_frame.h.
 */
#include "vigil_frame.h"

#include <string.h>

/* ---- little-endian helpers (shifts only: endian- and alignment-safe) ------------------ */

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | ((uint16_t)p[1] << 8)); }

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32); }

static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void wr64(uint8_t *p, uint64_t v)
{
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ---- CRC-32/ISO-HDLC ------------------------------------------------------------------
 * 16-entry nibble table (64 bytes of flash), two lookups per byte: about 4x faster than the
 * bitwise loop for 64 extra bytes, and far smaller than the usual 1 KiB byte table. A 248-byte
 * frame costs ~500 table steps, negligible next to its 21 ms on the wire at 115200 baud.
 * Table entry i = CRC of nibble i with the reflected polynomial 0xEDB88320. */
static const uint32_t crc_nibble[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u,
    0x4DB26158u, 0x5005713Cu, 0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
    0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu,
};

uint32_t vigil_crc32_update(uint32_t crc, const uint8_t *data, size_t len)
{
    size_t i;
    crc = ~crc;
    for (i = 0; i < len; i++) {
        crc ^= data[i];
        crc = (crc >> 4) ^ crc_nibble[crc & 0x0Fu];
        crc = (crc >> 4) ^ crc_nibble[crc & 0x0Fu];
    }
    return ~crc;
}

uint32_t vigil_crc32(const uint8_t *data, size_t len) { return vigil_crc32_update(0u, data, len); }

/* ---- COBS ----------------------------------------------------------------------------- */

size_t vigil_cobs_encode(const uint8_t *src, size_t n, uint8_t *dst, size_t cap)
{
    size_t code_idx = 0, w = 1, i;
    uint8_t code = 1;
    if (cap < VIGIL_COBS_MAX_WIRE(n)) return 0;
    for (i = 0; i < n; i++) {
        const uint8_t b = src[i]; /* read before any write: allows dst == src - 1 */
        if (b == 0u) {
            dst[code_idx] = code;
            code_idx = w++;
            code = 1;
        } else {
            dst[w++] = b;
            code++;
            if (code == 0xFFu) {
                dst[code_idx] = code;
                code_idx = w++;
                code = 1;
            }
        }
    }
    dst[code_idx] = code;
    dst[w++] = 0u;
    return w;
}

int vigil_cobs_decode(const uint8_t *src, size_t n, uint8_t *dst, size_t cap)
{
    size_t r = 0, w = 0;
    while (r < n) {
        const uint8_t code = src[r++];
        size_t stop;
        if (code == 0u) return -1;
        stop = r + code - 1u;
        if (stop > n) return -1;
        if (w + (stop - r) > cap) return -1;
        while (r < stop) {
            const uint8_t b = src[r++];
            if (b == 0u) return -1;
            dst[w++] = b;
        }
        /* A block shorter than 0xFF stands for a zero, except after the last block. */
        if (code != 0xFFu && r < n) {
            if (w >= cap) return -1;
            dst[w++] = 0u;
        }
    }
    return (int)w;
}

/* ---- encoding ------------------------------------------------------------------------- */

static size_t seal(uint8_t *out, uint8_t type, size_t len)
{
    out[0] = (uint8_t)VIGIL_PROTOCOL_VERSION;
    out[1] = type;
    wr16(out + 2, (uint16_t)len);
    wr32(out + VIGIL_HEADER_BYTES + len, vigil_crc32(out, VIGIL_HEADER_BYTES + len));
    return VIGIL_HEADER_BYTES + len + VIGIL_CRC_BYTES;
}

/* Well-formed UTF-8 (RFC 3629 §4): no overlong forms, no surrogates, nothing above U+10FFFF.
 * The gateway refuses ill-formed ERROR messages (PROTOCOL.md, ERROR: "invalid UTF-8 is
 * BAD_PAYLOAD"), so the encoder refuses them too and every accepted frame is canonical. */
static bool utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        const uint8_t c = s[i];
        size_t k;
        uint8_t lo = 0x80u, hi = 0xBFu;
        if (c < 0x80u) { i++; continue; }
        if (c >= 0xC2u && c <= 0xDFu) k = 1;
        else if (c >= 0xE0u && c <= 0xEFu) {
            k = 2;
            if (c == 0xE0u) lo = 0xA0u;
            if (c == 0xEDu) hi = 0x9Fu;
        } else if (c >= 0xF0u && c <= 0xF4u) {
            k = 3;
            if (c == 0xF0u) lo = 0x90u;
            if (c == 0xF4u) hi = 0x8Fu;
        } else return false;
        if (i + k >= n) return false; /* sequence runs past the end */
        if (s[i + 1] < lo || s[i + 1] > hi) return false;
        for (size_t j = 2; j <= k; j++)
            if ((s[i + j] & 0xC0u) != 0x80u) return false;
        i += k + 1;
    }
    return true;
}

static bool is_profile_char(uint8_t c) { return c >= 0x21u && c <= 0x7Eu; }

static bool is_name_char(uint8_t c)
{
    return (c >= (uint8_t)'a' && c <= (uint8_t)'z') || (c >= (uint8_t)'0' && c <= (uint8_t)'9') || c == (uint8_t)'_';
}

/* Length of a NUL-terminated string in a fixed array, or max+1 when unterminated/too long. */
static size_t bounded_len(const char *s, size_t max)
{
    size_t i;
    for (i = 0; i <= max; i++)
        if (s[i] == '\0') return i;
    return max + 1u;
}

size_t vigil_encode_data(const vigil_data_t *d, uint8_t *out, size_t cap)
{
    const size_t n = d->channel_count;
    const size_t len = VIGIL_DATA_FIXED_BYTES + 4u * n;
    const size_t p = VIGIL_HEADER_BYTES;
    size_t i;
    if (n < 1u || n > VIGIL_MAX_CHANNELS) return 0;
    if (d->timestamp_us >= VIGIL_MAX_TIME_US) return 0;
    if (cap < VIGIL_HEADER_BYTES + len + VIGIL_CRC_BYTES) return 0;
    wr32(out + p, d->device_id);
    wr32(out + p + 4, d->seq);
    wr64(out + p + 8, d->timestamp_us);
    out[p + 16] = (uint8_t)n;
    out[p + 17] = d->flags;
    for (i = 0; i < n; i++) wr32(out + p + VIGIL_DATA_FIXED_BYTES + 4u * i, f32_bits(d->values[i]));
    return seal(out, VIGIL_TYPE_DATA, len);
}

size_t vigil_encode_hello(const vigil_hello_t *h, uint8_t *out, size_t cap)
{
    const size_t n = h->channel_count;
    const size_t plen = bounded_len(h->profile, VIGIL_MAX_PROFILE_LEN);
    size_t len, o, i, k;
    if (plen > VIGIL_MAX_PROFILE_LEN) return 0;
    for (k = 0; k < plen; k++)
        if (!is_profile_char((uint8_t)h->profile[k])) return 0;
    if (n < 1u || n > VIGIL_MAX_CHANNELS) return 0;
    len = 13u + plen + 1u;
    for (i = 0; i < n; i++) {
        const vigil_channel_t *c = &h->channels[i];
        const size_t nl = bounded_len(c->name, VIGIL_MAX_CHANNEL_NAME);
        if (nl < 1u || nl > VIGIL_MAX_CHANNEL_NAME) return 0;
        for (k = 0; k < nl; k++)
            if (!is_name_char((uint8_t)c->name[k])) return 0;
        if (c->unit > VIGIL_MAX_UNIT) return 0;
        len += 2u + nl;
    }
    if (len > VIGIL_MAX_PAYLOAD) return 0;
    if (cap < VIGIL_HEADER_BYTES + len + VIGIL_CRC_BYTES) return 0;
    o = VIGIL_HEADER_BYTES;
    wr32(out + o, h->device_id);
    wr32(out + o + 4, h->boot_id);
    out[o + 8] = h->fw_major;
    out[o + 9] = h->fw_minor;
    wr16(out + o + 10, h->fw_patch);
    out[o + 12] = (uint8_t)plen;
    o += 13u;
    memcpy(out + o, h->profile, plen);
    o += plen;
    out[o++] = (uint8_t)n;
    for (i = 0; i < n; i++) {
        const vigil_channel_t *c = &h->channels[i];
        const size_t nl = bounded_len(c->name, VIGIL_MAX_CHANNEL_NAME);
        out[o++] = c->unit;
        out[o++] = (uint8_t)nl;
        memcpy(out + o, c->name, nl);
        o += nl;
    }
    return seal(out, VIGIL_TYPE_HELLO, len);
}

size_t vigil_encode_ack(const vigil_ack_t *a, uint8_t *out, size_t cap)
{
    if (a->count < 1u || a->gateway_time_us >= VIGIL_MAX_TIME_US) return 0;
    if (cap < VIGIL_HEADER_BYTES + 18u + VIGIL_CRC_BYTES) return 0;
    wr32(out + 4, a->device_id);
    wr32(out + 8, a->first_seq);
    wr16(out + 12, a->count);
    wr64(out + 14, a->gateway_time_us);
    return seal(out, VIGIL_TYPE_ACK, 18u);
}

size_t vigil_encode_nack(const vigil_nack_t *nk, uint8_t *out, size_t cap)
{
    /* BUSY carries retry_after_ms (payload 11 bytes); every other reason is 9 bytes. */
    const bool busy = nk->reason == VIGIL_NACK_BUSY;
    const size_t len = busy ? 11u : 9u;
    if (busy != (nk->retry_after_ms != 0u)) return 0;
    if (cap < VIGIL_HEADER_BYTES + len + VIGIL_CRC_BYTES) return 0;
    wr32(out + 4, nk->device_id);
    wr32(out + 8, nk->seq);
    out[12] = nk->reason;
    if (busy) wr16(out + 13, nk->retry_after_ms);
    return seal(out, VIGIL_TYPE_NACK, len);
}

size_t vigil_encode_error(const vigil_error_t *e, uint8_t *out, size_t cap)
{
    const size_t m = e->message_len;
    if (m > VIGIL_MAX_ERROR_MESSAGE) return 0;
    /* A message the gateway would drop as BAD_PAYLOAD (no reply, only a counter) is not sent. */
    if (!utf8_valid((const uint8_t *)e->message, m)) return 0;
    if (cap < VIGIL_HEADER_BYTES + 6u + m + VIGIL_CRC_BYTES) return 0;
    wr32(out + 4, e->device_id);
    out[8] = e->code;
    out[9] = (uint8_t)m;
    memcpy(out + 10, e->message, m);
    return seal(out, VIGIL_TYPE_ERROR, 6u + m);
}

static void wr_version(uint8_t *p, const vigil_fw_version_t *v)
{
    p[0] = v->major;
    p[1] = v->minor;
    wr16(p + 2, v->patch);
}

size_t vigil_encode_fw_offer(const vigil_fw_offer_t *o, uint8_t *out, size_t cap)
{
    if (o->release_id == 0u || o->image_size == 0u) return 0;
    if (cap < VIGIL_HEADER_BYTES + 52u + VIGIL_CRC_BYTES) return 0;
    wr32(out + 4, o->device_id);
    wr32(out + 8, o->release_id);
    wr_version(out + 12, &o->version);
    wr32(out + 16, o->security_counter);
    wr32(out + 20, o->image_size);
    memcpy(out + 24, o->sha256, VIGIL_SHA256_BYTES);
    return seal(out, VIGIL_TYPE_FW_OFFER, 52u);
}

size_t vigil_encode_fw_chunk(const vigil_fw_chunk_t *c, uint8_t *out, size_t cap)
{
    const size_t n = c->data_len;
    if (c->release_id == 0u || n < 1u || n > VIGIL_FW_MAX_CHUNK) return 0;
    if ((uint64_t)c->offset + n > 0x100000000ull) return 0;
    if (cap < VIGIL_HEADER_BYTES + 16u + n + VIGIL_CRC_BYTES) return 0;
    wr32(out + 4, c->device_id);
    wr32(out + 8, c->release_id);
    wr32(out + 12, c->offset);
    wr32(out + 16, vigil_crc32(c->data, n));
    memcpy(out + 20, c->data, n);
    return seal(out, VIGIL_TYPE_FW_CHUNK, 16u + n);
}

size_t vigil_encode_fw_abort(const vigil_fw_abort_t *a, uint8_t *out, size_t cap)
{
    if (a->release_id == 0u) return 0;
    if (cap < VIGIL_HEADER_BYTES + 9u + VIGIL_CRC_BYTES) return 0;
    wr32(out + 4, a->device_id);
    wr32(out + 8, a->release_id);
    out[12] = a->reason;
    return seal(out, VIGIL_TYPE_FW_ABORT, 9u);
}

size_t vigil_encode_fw_status(const vigil_fw_status_t *st, uint8_t *out, size_t cap)
{
    if (st->state > VIGIL_FW_TESTING || st->result > VIGIL_FW_RESULT_ABORTED) return 0;
    if (st->window < 1u || st->window > VIGIL_FW_MAX_WINDOW) return 0;
    if (st->max_chunk < VIGIL_FW_MIN_CHUNK || st->max_chunk > VIGIL_FW_MAX_CHUNK) return 0;
    if (cap < VIGIL_HEADER_BYTES + 29u + VIGIL_CRC_BYTES) return 0;
    wr32(out + 4, st->device_id);
    out[8] = st->state;
    out[9] = st->result;
    out[10] = st->reason;
    out[11] = st->window;
    wr32(out + 12, st->release_id);
    wr32(out + 16, st->next_offset);
    wr32(out + 20, st->slot_size);
    wr32(out + 24, st->security_counter);
    wr_version(out + 28, &st->version);
    out[32] = st->max_chunk;
    return seal(out, VIGIL_TYPE_FW_STATUS, 29u);
}

size_t vigil_encode_fw_chunk_ack(const vigil_fw_chunk_ack_t *a, uint8_t *out, size_t cap)
{
    if (a->release_id == 0u || a->status > VIGIL_FW_ACK_BAD_LENGTH) return 0;
    if (cap < VIGIL_HEADER_BYTES + 13u + VIGIL_CRC_BYTES) return 0;
    wr32(out + 4, a->device_id);
    wr32(out + 8, a->release_id);
    wr32(out + 12, a->next_offset);
    out[16] = a->status;
    return seal(out, VIGIL_TYPE_FW_CHUNK_ACK, 13u);
}

size_t vigil_encode(const vigil_frame_t *f, uint8_t *out, size_t cap)
{
    switch (f->type) {
    case VIGIL_TYPE_HELLO: return vigil_encode_hello(&f->u.hello, out, cap);
    case VIGIL_TYPE_DATA: return vigil_encode_data(&f->u.data, out, cap);
    case VIGIL_TYPE_ACK: return vigil_encode_ack(&f->u.ack, out, cap);
    case VIGIL_TYPE_NACK: return vigil_encode_nack(&f->u.nack, out, cap);
    case VIGIL_TYPE_ERROR: return vigil_encode_error(&f->u.error, out, cap);
    case VIGIL_TYPE_FW_OFFER: return vigil_encode_fw_offer(&f->u.fw_offer, out, cap);
    case VIGIL_TYPE_FW_CHUNK: return vigil_encode_fw_chunk(&f->u.fw_chunk, out, cap);
    case VIGIL_TYPE_FW_ABORT: return vigil_encode_fw_abort(&f->u.fw_abort, out, cap);
    case VIGIL_TYPE_FW_STATUS: return vigil_encode_fw_status(&f->u.fw_status, out, cap);
    case VIGIL_TYPE_FW_CHUNK_ACK: return vigil_encode_fw_chunk_ack(&f->u.fw_chunk_ack, out, cap);
    default: return 0;
    }
}

size_t vigil_encode_wire(const vigil_frame_t *f, uint8_t *wire, size_t cap)
{
    size_t n;
    if (cap < 2u) return 0;
    /* Frame at wire+1, then COBS in place: frames are < 254 bytes, so the encoder's write
     * index never passes its read index. */
    n = vigil_encode(f, wire + 1, cap - 1u);
    if (n == 0u) return 0;
    return vigil_cobs_encode(wire + 1, n, wire, cap);
}

/* ---- decoding ------------------------------------------------------------------------- */

static vigil_reject_t decode_data(const uint8_t *buf, size_t p, size_t len, vigil_data_t *d)
{
    size_t i, count, o;
    if (len < VIGIL_DATA_FIXED_BYTES) return VIGIL_BAD_PAYLOAD;
    count = buf[p + 16];
    if (count < 1u || count > VIGIL_MAX_CHANNELS) return VIGIL_BAD_PAYLOAD;
    if (len != VIGIL_DATA_FIXED_BYTES + 4u * count) return VIGIL_BAD_PAYLOAD;
    o = p + VIGIL_DATA_FIXED_BYTES;
    for (i = 0; i < count; i++, o += 4u) {
        /* NaN and +-Inf are well-formed since revision 1.2 (a sensor that could not read). */
        d->values[i] = bits_f32(rd32(buf + o));
    }
    d->device_id = rd32(buf + p);
    d->seq = rd32(buf + p + 4);
    d->timestamp_us = rd64(buf + p + 8);
    if (d->timestamp_us >= VIGIL_MAX_TIME_US) return VIGIL_BAD_PAYLOAD;
    d->channel_count = (uint8_t)count;
    d->flags = buf[p + 17];
    return VIGIL_OK;
}

static vigil_reject_t decode_hello(const uint8_t *buf, size_t p, size_t len, vigil_hello_t *h)
{
    const size_t end = p + len;
    size_t o, i, k, plen, count;
    if (len < 14u) return VIGIL_BAD_PAYLOAD;
    plen = buf[p + 12];
    if (plen > VIGIL_MAX_PROFILE_LEN) return VIGIL_BAD_PAYLOAD;
    o = p + 13u;
    if (o + plen + 1u > end) return VIGIL_BAD_PAYLOAD;
    for (k = 0; k < plen; k++) {
        if (!is_profile_char(buf[o + k])) return VIGIL_BAD_PAYLOAD;
        h->profile[k] = (char)buf[o + k];
    }
    h->profile[plen] = '\0';
    o += plen;
    count = buf[o++];
    if (count < 1u || count > VIGIL_MAX_CHANNELS) return VIGIL_BAD_PAYLOAD;
    for (i = 0; i < count; i++) {
        vigil_channel_t *c = &h->channels[i];
        uint8_t unit, nl;
        if (o + 2u > end) return VIGIL_BAD_PAYLOAD;
        unit = buf[o];
        nl = buf[o + 1];
        o += 2u;
        if (unit > VIGIL_MAX_UNIT) return VIGIL_BAD_PAYLOAD;
        if (nl < 1u || nl > VIGIL_MAX_CHANNEL_NAME || o + nl > end) return VIGIL_BAD_PAYLOAD;
        for (k = 0; k < nl; k++) {
            if (!is_name_char(buf[o + k])) return VIGIL_BAD_PAYLOAD;
            c->name[k] = (char)buf[o + k];
        }
        c->name[nl] = '\0';
        c->unit = unit;
        o += nl;
    }
    if (o != end) return VIGIL_BAD_PAYLOAD;
    h->device_id = rd32(buf + p);
    h->boot_id = rd32(buf + p + 4);
    h->fw_major = buf[p + 8];
    h->fw_minor = buf[p + 9];
    h->fw_patch = rd16(buf + p + 10);
    h->channel_count = (uint8_t)count;
    return VIGIL_OK;
}

static void rd_version(const uint8_t *p, vigil_fw_version_t *v)
{
    v->major = p[0];
    v->minor = p[1];
    v->patch = rd16(p + 2);
}

static vigil_reject_t decode_fw_offer(const uint8_t *buf, size_t p, size_t len, vigil_fw_offer_t *o)
{
    if (len != 52u) return VIGIL_BAD_PAYLOAD;
    o->device_id = rd32(buf + p);
    o->release_id = rd32(buf + p + 4);
    rd_version(buf + p + 8, &o->version);
    o->security_counter = rd32(buf + p + 12);
    o->image_size = rd32(buf + p + 16);
    memcpy(o->sha256, buf + p + 20, VIGIL_SHA256_BYTES);
    return (o->release_id == 0u || o->image_size == 0u) ? VIGIL_BAD_PAYLOAD : VIGIL_OK;
}

static vigil_reject_t decode_fw_chunk(const uint8_t *buf, size_t p, size_t len, vigil_fw_chunk_t *c)
{
    size_t n;
    if (len < 17u) return VIGIL_BAD_PAYLOAD; /* no data */
    n = len - 16u;                            /* <= 224 because len <= 240 */
    c->device_id = rd32(buf + p);
    c->release_id = rd32(buf + p + 4);
    c->offset = rd32(buf + p + 8);
    if ((uint64_t)c->offset + n > 0x100000000ull) return VIGIL_BAD_PAYLOAD;
    if (rd32(buf + p + 12) != vigil_crc32(buf + p + 16, n)) return VIGIL_BAD_PAYLOAD;
    c->data_len = (uint8_t)n;
    memcpy(c->data, buf + p + 16, n);
    return c->release_id == 0u ? VIGIL_BAD_PAYLOAD : VIGIL_OK;
}

static vigil_reject_t decode_fw_status(const uint8_t *buf, size_t p, size_t len, vigil_fw_status_t *st)
{
    if (len != 29u) return VIGIL_BAD_PAYLOAD;
    st->device_id = rd32(buf + p);
    st->state = buf[p + 4];
    st->result = buf[p + 5];
    st->reason = buf[p + 6];
    st->window = buf[p + 7];
    st->release_id = rd32(buf + p + 8);
    st->next_offset = rd32(buf + p + 12);
    st->slot_size = rd32(buf + p + 16);
    st->security_counter = rd32(buf + p + 20);
    rd_version(buf + p + 24, &st->version);
    st->max_chunk = buf[p + 28];
    if (st->state > VIGIL_FW_TESTING || st->result > VIGIL_FW_RESULT_ABORTED) return VIGIL_BAD_PAYLOAD;
    if (st->window < 1u || st->window > VIGIL_FW_MAX_WINDOW) return VIGIL_BAD_PAYLOAD;
    if (st->max_chunk < VIGIL_FW_MIN_CHUNK || st->max_chunk > VIGIL_FW_MAX_CHUNK) return VIGIL_BAD_PAYLOAD;
    return VIGIL_OK;
}

vigil_reject_t vigil_decode(const uint8_t *buf, size_t n, vigil_frame_t *out)
{
    const size_t p = VIGIL_HEADER_BYTES;
    size_t len, expected;
    if (n > VIGIL_MAX_FRAME) return VIGIL_OVERSIZED;
    if (n < VIGIL_HEADER_BYTES + VIGIL_CRC_BYTES) return VIGIL_TRUNCATED;
    len = rd16(buf + 2);
    if (len > VIGIL_MAX_PAYLOAD) return VIGIL_OVERSIZED;
    expected = VIGIL_HEADER_BYTES + len + VIGIL_CRC_BYTES;
    if (n < expected) return VIGIL_TRUNCATED;
    if (n > expected) return VIGIL_LENGTH_MISMATCH;
    if (rd32(buf + p + len) != vigil_crc32(buf, p + len)) return VIGIL_BAD_CRC;
    if (buf[0] != VIGIL_PROTOCOL_VERSION) return VIGIL_BAD_VERSION;
    out->type = buf[1];
    switch (buf[1]) {
    case VIGIL_TYPE_DATA: return decode_data(buf, p, len, &out->u.data);
    case VIGIL_TYPE_HELLO: return decode_hello(buf, p, len, &out->u.hello);
    case VIGIL_TYPE_ACK:
        if (len != 18u) return VIGIL_BAD_PAYLOAD;
        out->u.ack.count = rd16(buf + p + 8);
        if (out->u.ack.count == 0u) return VIGIL_BAD_PAYLOAD;
        out->u.ack.device_id = rd32(buf + p);
        out->u.ack.first_seq = rd32(buf + p + 4);
        out->u.ack.gateway_time_us = rd64(buf + p + 10);
        if (out->u.ack.gateway_time_us >= VIGIL_MAX_TIME_US) return VIGIL_BAD_PAYLOAD;
        return VIGIL_OK;
    case VIGIL_TYPE_NACK:
        /* 9 bytes, or 11 for BUSY (a v1.0 receiver refuses the longer form: PROTOCOL.md, Versioning). */
        if (len < 9u) return VIGIL_BAD_PAYLOAD;
        out->u.nack.device_id = rd32(buf + p);
        out->u.nack.seq = rd32(buf + p + 4);
        out->u.nack.reason = buf[p + 8];
        out->u.nack.retry_after_ms = 0;
        if (buf[p + 8] != VIGIL_NACK_BUSY) return len == 9u ? VIGIL_OK : VIGIL_BAD_PAYLOAD;
        if (len != 11u) return VIGIL_BAD_PAYLOAD;
        out->u.nack.retry_after_ms = rd16(buf + p + 9);
        return out->u.nack.retry_after_ms == 0u ? VIGIL_BAD_PAYLOAD : VIGIL_OK;
    case VIGIL_TYPE_FW_OFFER: return decode_fw_offer(buf, p, len, &out->u.fw_offer);
    case VIGIL_TYPE_FW_CHUNK: return decode_fw_chunk(buf, p, len, &out->u.fw_chunk);
    case VIGIL_TYPE_FW_ABORT:
        if (len != 9u) return VIGIL_BAD_PAYLOAD;
        out->u.fw_abort.device_id = rd32(buf + p);
        out->u.fw_abort.release_id = rd32(buf + p + 4);
        out->u.fw_abort.reason = buf[p + 8];
        return out->u.fw_abort.release_id == 0u ? VIGIL_BAD_PAYLOAD : VIGIL_OK;
    case VIGIL_TYPE_FW_STATUS: return decode_fw_status(buf, p, len, &out->u.fw_status);
    case VIGIL_TYPE_FW_CHUNK_ACK:
        if (len != 13u) return VIGIL_BAD_PAYLOAD;
        out->u.fw_chunk_ack.device_id = rd32(buf + p);
        out->u.fw_chunk_ack.release_id = rd32(buf + p + 4);
        out->u.fw_chunk_ack.next_offset = rd32(buf + p + 8);
        out->u.fw_chunk_ack.status = buf[p + 12];
        if (out->u.fw_chunk_ack.release_id == 0u || out->u.fw_chunk_ack.status > VIGIL_FW_ACK_BAD_LENGTH)
            return VIGIL_BAD_PAYLOAD;
        return VIGIL_OK;
    case VIGIL_TYPE_ERROR: {
        size_t m;
        if (len < 6u) return VIGIL_BAD_PAYLOAD;
        m = buf[p + 5];
        if (m > VIGIL_MAX_ERROR_MESSAGE || len != 6u + m) return VIGIL_BAD_PAYLOAD;
        if (!utf8_valid(buf + p + 6, m)) return VIGIL_BAD_PAYLOAD;
        out->u.error.device_id = rd32(buf + p);
        out->u.error.code = buf[p + 4];
        out->u.error.message_len = (uint8_t)m;
        memcpy(out->u.error.message, buf + p + 6, m);
        out->u.error.message[m] = '\0';
        return VIGIL_OK;
    }
    default: return VIGIL_BAD_TYPE;
    }
}

const char *vigil_reject_name(vigil_reject_t r)
{
    switch (r) {
    case VIGIL_OK: return "OK";
    case VIGIL_BAD_COBS: return "BAD_COBS";
    case VIGIL_OVERSIZED: return "OVERSIZED";
    case VIGIL_TRUNCATED: return "TRUNCATED";
    case VIGIL_LENGTH_MISMATCH: return "LENGTH_MISMATCH";
    case VIGIL_BAD_CRC: return "BAD_CRC";
    case VIGIL_BAD_VERSION: return "BAD_VERSION";
    case VIGIL_BAD_TYPE: return "BAD_TYPE";
    case VIGIL_BAD_PAYLOAD: return "BAD_PAYLOAD";
    case VIGIL_NON_FINITE: return "NON_FINITE";
    default: return "UNKNOWN";
    }
}

/* ---- incremental receiver ------------------------------------------------------------- */

void vigil_rx_init(vigil_rx_t *rx)
{
    rx->len = 0;
    rx->raw_len = 0;
    rx->discarding = false;
    rx->reason = VIGIL_OK;
    rx->bytes_discarded = 0;
}

static void add_discarded(vigil_rx_t *rx, uint32_t k)
{
    rx->bytes_discarded = (rx->bytes_discarded > UINT32_MAX - k) ? UINT32_MAX : rx->bytes_discarded + k;
}

vigil_rx_event_t vigil_rx_push_byte(vigil_rx_t *rx, uint8_t byte, vigil_frame_t *out)
{
    if (byte != 0u) {
        if (rx->discarding) {
            add_discarded(rx, 1u);
        } else if (rx->len >= VIGIL_MAX_ENCODED) {
            /* More than VIGIL_MAX_ENCODED bytes without a delimiter: report once, then drop. */
            add_discarded(rx, (uint32_t)rx->len + 1u);
            rx->len = 0;
            rx->discarding = true;
            rx->reason = VIGIL_OVERSIZED;
            return VIGIL_RX_REJECT;
        } else {
            rx->buf[rx->len++] = byte;
        }
        return VIGIL_RX_NONE;
    }
    /* Delimiter. */
    {
        const size_t len = rx->len;
        int dec;
        rx->discarding = false;
        rx->len = 0;
        if (len == 0u) return VIGIL_RX_NONE; /* empty segment (or end of a discarded run) */
        dec = vigil_cobs_decode(rx->buf, len, rx->buf, VIGIL_MAX_FRAME);
        if (dec < 0) {
            rx->reason = VIGIL_BAD_COBS;
            return VIGIL_RX_REJECT;
        }
        rx->raw_len = (uint16_t)dec;
        rx->reason = vigil_decode(rx->buf, (size_t)dec, out);
        if (rx->reason != VIGIL_OK) {
            rx->raw_len = 0;
            return VIGIL_RX_REJECT;
        }
        return VIGIL_RX_FRAME;
    }
}

size_t vigil_rx_push(vigil_rx_t *rx, const uint8_t *data, size_t len, vigil_frame_t *out,
                     vigil_rx_event_t *event)
{
    size_t i;
    *event = VIGIL_RX_NONE;
    for (i = 0; i < len; i++) {
        const vigil_rx_event_t ev = vigil_rx_push_byte(rx, data[i], out);
        if (ev != VIGIL_RX_NONE) {
            *event = ev;
            return i + 1u;
        }
    }
    return len;
}

const uint8_t *vigil_rx_raw(const vigil_rx_t *rx, size_t *len)
{
    *len = rx->raw_len;
    return rx->buf;
}

vigil_reject_t vigil_rx_flush(vigil_rx_t *rx)
{
    const bool partial = rx->len > 0u;
    rx->len = 0;
    rx->discarding = false;
    return partial ? VIGIL_TRUNCATED : VIGIL_OK;
}
