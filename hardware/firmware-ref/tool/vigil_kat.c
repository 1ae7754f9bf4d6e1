/*
 * vigil_kat: host CLI that exposes the C reference to the TypeScript test suite
 * (test/protocol/c-reference.test.ts) so both codecs can be compared byte for byte.
 *
 * Line protocol on stdin, one answer per request on stdout (flushed):
 *   decode HEX         -> ok FRAME_JSON | err REASON
 *   encode FRAME_JSON  -> ok HEX WIREHEX | err MESSAGE
 *   stream HEX         -> ok N, then N lines "frame HEX" (unencoded) or "reject REASON"
 *   streamflush HEX    -> like stream, then end of stream (vigil_rx_flush)
 *   sha256 HEX         -> ok DIGESTHEX (fed to vigil_sha256_update in pieces of 1..97 bytes)
 * FRAME_JSON has the shape of the TypeScript Frame objects (vectors' "frame" field); byte fields
 * (FW_OFFER sha256, FW_CHUNK data) are lowercase hex strings.
 * The JSON reader below is purpose-built for those objects and lives here, not in the library.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../vigil_frame.h"
#include "../vigil_sha256.h"

/* ---- output helpers ------------------------------------------------------------------- */

static void put_hex(const uint8_t *b, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;
    for (i = 0; i < n; i++) {
        putchar(digits[b[i] >> 4]);
        putchar(digits[b[i] & 15u]);
    }
}

static void put_json_string(const char *s, size_t n)
{
    size_t i;
    putchar('"');
    for (i = 0; i < n; i++) {
        const unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            putchar('\\');
            putchar(c);
        } else if (c < 0x20u) {
            printf("\\u%04x", c);
        } else {
            putchar(c); /* UTF-8 bytes pass through */
        }
    }
    putchar('"');
}

static void put_version(const vigil_fw_version_t *v)
{
    printf(",\"firmware\":{\"major\":%u,\"minor\":%u,\"patch\":%u}", (unsigned)v->major, (unsigned)v->minor,
           (unsigned)v->patch);
}

static void put_frame_json(const vigil_frame_t *f)
{
    unsigned i;
    switch (f->type) {
    case VIGIL_TYPE_DATA: {
        const vigil_data_t *d = &f->u.data;
        printf("{\"type\":2,\"deviceId\":%" PRIu32 ",\"seq\":%" PRIu32 ",\"timestampUs\":%" PRIu64
               ",\"flags\":%u,\"values\":[",
               d->device_id, d->seq, d->timestamp_us, (unsigned)d->flags);
        uint32_t non_finite = 0;
        for (i = 0; i < d->channel_count; i++) {
            const double x = (double)d->values[i];
            /* NaN/+-Inf (revision 1.2) as the vectors write them: "NaN", "Infinity", "-Infinity". */
            if (isnan(x)) printf("%s\"NaN\"", i ? "," : "");
            else if (isinf(x)) printf("%s\"%sInfinity\"", i ? "," : "", x < 0 ? "-" : "");
            else printf("%s%.9g", i ? "," : "", x);
            if (!isfinite(x)) non_finite |= (uint32_t)1u << i;
        }
        printf("]");
        if (non_finite) printf(",\"nonFinite\":%" PRIu32, non_finite);
        printf("}");
        break;
    }
    case VIGIL_TYPE_HELLO: {
        const vigil_hello_t *h = &f->u.hello;
        printf("{\"type\":1,\"deviceId\":%" PRIu32 ",\"bootId\":%" PRIu32
               ",\"firmware\":{\"major\":%u,\"minor\":%u,\"patch\":%u},\"profile\":",
               h->device_id, h->boot_id, (unsigned)h->fw_major, (unsigned)h->fw_minor, (unsigned)h->fw_patch);
        put_json_string(h->profile, strlen(h->profile));
        printf(",\"channels\":[");
        for (i = 0; i < h->channel_count; i++) {
            printf("%s{\"name\":", i ? "," : "");
            put_json_string(h->channels[i].name, strlen(h->channels[i].name));
            printf(",\"unit\":%u}", (unsigned)h->channels[i].unit);
        }
        printf("]}");
        break;
    }
    case VIGIL_TYPE_ACK:
        printf("{\"type\":3,\"deviceId\":%" PRIu32 ",\"firstSeq\":%" PRIu32 ",\"count\":%u,\"gatewayTimeUs\":%" PRIu64 "}",
               f->u.ack.device_id, f->u.ack.first_seq, (unsigned)f->u.ack.count, f->u.ack.gateway_time_us);
        break;
    case VIGIL_TYPE_NACK:
        printf("{\"type\":4,\"deviceId\":%" PRIu32 ",\"seq\":%" PRIu32 ",\"reason\":%u", f->u.nack.device_id,
               f->u.nack.seq, (unsigned)f->u.nack.reason);
        if (f->u.nack.reason == VIGIL_NACK_BUSY) printf(",\"retryAfterMs\":%u", (unsigned)f->u.nack.retry_after_ms);
        putchar('}');
        break;
    case VIGIL_TYPE_FW_OFFER: {
        const vigil_fw_offer_t *o = &f->u.fw_offer;
        printf("{\"type\":16,\"deviceId\":%" PRIu32 ",\"releaseId\":%" PRIu32, o->device_id, o->release_id);
        put_version(&o->version);
        printf(",\"securityCounter\":%" PRIu32 ",\"imageSize\":%" PRIu32 ",\"sha256\":\"", o->security_counter,
               o->image_size);
        put_hex(o->sha256, VIGIL_SHA256_BYTES);
        printf("\"}");
        break;
    }
    case VIGIL_TYPE_FW_CHUNK: {
        const vigil_fw_chunk_t *c = &f->u.fw_chunk;
        printf("{\"type\":17,\"deviceId\":%" PRIu32 ",\"releaseId\":%" PRIu32 ",\"offset\":%" PRIu32
               ",\"data\":\"",
               c->device_id, c->release_id, c->offset);
        put_hex(c->data, c->data_len);
        printf("\"}");
        break;
    }
    case VIGIL_TYPE_FW_ABORT:
        printf("{\"type\":18,\"deviceId\":%" PRIu32 ",\"releaseId\":%" PRIu32 ",\"reason\":%u}",
               f->u.fw_abort.device_id, f->u.fw_abort.release_id, (unsigned)f->u.fw_abort.reason);
        break;
    case VIGIL_TYPE_FW_STATUS: {
        const vigil_fw_status_t *st = &f->u.fw_status;
        printf("{\"type\":19,\"deviceId\":%" PRIu32 ",\"state\":%u,\"result\":%u,\"reason\":%u,\"window\":%u"
               ",\"releaseId\":%" PRIu32 ",\"nextOffset\":%" PRIu32 ",\"slotSize\":%" PRIu32
               ",\"securityCounter\":%" PRIu32,
               st->device_id, (unsigned)st->state, (unsigned)st->result, (unsigned)st->reason, (unsigned)st->window,
               st->release_id, st->next_offset, st->slot_size, st->security_counter);
        put_version(&st->version);
        printf(",\"maxChunk\":%u}", (unsigned)st->max_chunk);
        break;
    }
    case VIGIL_TYPE_FW_CHUNK_ACK:
        printf("{\"type\":20,\"deviceId\":%" PRIu32 ",\"releaseId\":%" PRIu32 ",\"nextOffset\":%" PRIu32
               ",\"status\":%u}",
               f->u.fw_chunk_ack.device_id, f->u.fw_chunk_ack.release_id, f->u.fw_chunk_ack.next_offset,
               (unsigned)f->u.fw_chunk_ack.status);
        break;
    case VIGIL_TYPE_ERROR:
        printf("{\"type\":5,\"deviceId\":%" PRIu32 ",\"code\":%u,\"message\":", f->u.error.device_id,
               (unsigned)f->u.error.code);
        put_json_string(f->u.error.message, f->u.error.message_len);
        putchar('}');
        break;
    default: printf("null"); break;
    }
}

/* ---- input helpers -------------------------------------------------------------------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Parses hex in place into out (out may alias s). Returns length or -1. */
static long parse_hex(const char *s, uint8_t *out)
{
    size_t n = strlen(s), i;
    if (n % 2u != 0u) return -1;
    for (i = 0; i < n / 2u; i++) {
        const int hi = hexval((unsigned char)s[2u * i]), lo = hexval((unsigned char)s[2u * i + 1u]);
        if (hi < 0 || lo < 0) return -1;
        out[i] = (uint8_t)(hi * 16 + lo);
    }
    return (long)(n / 2u);
}

/* ---- minimal JSON reader (objects, arrays, strings, numbers, true/false/null) --------- */

enum { J_NUM, J_STR, J_ARR, J_OBJ, J_LIT };
typedef struct {
    int type;
    const char *key; /* member name (NUL-terminated, in the string pool) or NULL */
    const char *num; /* number text start */
    size_t numlen;
    char *str; /* decoded string (pool) */
    size_t strlen;
    int first, next; /* child / sibling indices, -1 = none */
} jnode_t;

#define J_MAX_NODES 1024
#define J_POOL 65536
static jnode_t jn[J_MAX_NODES];
static int jcount;
static char jpool[J_POOL];
static size_t jpool_used;
static const char *jp; /* cursor */
static const char *jerr;

static void jws(void)
{
    while (*jp == ' ' || *jp == '\t' || *jp == '\r' || *jp == '\n') jp++;
}

static void put_utf8(char **w, unsigned long cp)
{
    unsigned char *o = (unsigned char *)*w;
    if (cp < 0x80u) {
        *o++ = (unsigned char)cp;
    } else if (cp < 0x800u) {
        *o++ = (unsigned char)(0xC0u | (cp >> 6));
        *o++ = (unsigned char)(0x80u | (cp & 0x3Fu));
    } else if (cp < 0x10000u) {
        *o++ = (unsigned char)(0xE0u | (cp >> 12));
        *o++ = (unsigned char)(0x80u | ((cp >> 6) & 0x3Fu));
        *o++ = (unsigned char)(0x80u | (cp & 0x3Fu));
    } else {
        *o++ = (unsigned char)(0xF0u | (cp >> 18));
        *o++ = (unsigned char)(0x80u | ((cp >> 12) & 0x3Fu));
        *o++ = (unsigned char)(0x80u | ((cp >> 6) & 0x3Fu));
        *o++ = (unsigned char)(0x80u | (cp & 0x3Fu));
    }
    *w = (char *)o;
}

static int jhex4(unsigned long *v)
{
    int i;
    *v = 0;
    for (i = 0; i < 4; i++) {
        const int h = hexval((unsigned char)jp[i]);
        if (h < 0) return -1;
        *v = *v * 16u + (unsigned long)h;
    }
    jp += 4;
    return 0;
}

/* Parses a string at jp (after the opening quote check) into the pool. */
static char *jstring(size_t *len)
{
    char *start, *w;
    if (*jp != '"') {
        jerr = "expected string";
        return NULL;
    }
    jp++;
    if (jpool_used + strlen(jp) * 2u + 8u > J_POOL) {
        jerr = "string pool exhausted";
        return NULL;
    }
    start = w = jpool + jpool_used;
    while (*jp != '"') {
        if (*jp == '\0' || (unsigned char)*jp < 0x20u) {
            jerr = "bad string";
            return NULL;
        }
        if (*jp == '\\') {
            jp++;
            switch (*jp++) {
            case '"': *w++ = '"'; break;
            case '\\': *w++ = '\\'; break;
            case '/': *w++ = '/'; break;
            case 'b': *w++ = '\b'; break;
            case 'f': *w++ = '\f'; break;
            case 'n': *w++ = '\n'; break;
            case 'r': *w++ = '\r'; break;
            case 't': *w++ = '\t'; break;
            case 'u': {
                unsigned long cp, lo;
                if (jhex4(&cp) < 0) {
                    jerr = "bad \\u escape";
                    return NULL;
                }
                if (cp >= 0xD800u && cp <= 0xDBFFu && jp[0] == '\\' && jp[1] == 'u') {
                    const char *save = jp;
                    jp += 2;
                    if (jhex4(&lo) == 0 && lo >= 0xDC00u && lo <= 0xDFFFu)
                        cp = 0x10000u + ((cp - 0xD800u) << 10) + (lo - 0xDC00u);
                    else
                        jp = save;
                }
                if (cp >= 0xD800u && cp <= 0xDFFFu) cp = 0xFFFDu; /* lone surrogate, as Buffer.from does */
                put_utf8(&w, cp);
                break;
            }
            default: jerr = "bad escape"; return NULL;
            }
        } else {
            *w++ = *jp++;
        }
    }
    jp++;
    *w++ = '\0';
    *len = (size_t)(w - start) - 1u;
    jpool_used += (size_t)(w - start);
    return start;
}

static int jvalue(void);

static int jnew(int type)
{
    if (jcount >= J_MAX_NODES) {
        jerr = "too many JSON nodes";
        return -1;
    }
    jn[jcount].type = type;
    jn[jcount].key = NULL;
    jn[jcount].first = jn[jcount].next = -1;
    return jcount++;
}

static int jvalue(void)
{
    int id;
    jws();
    if (*jp == '{' || *jp == '[') {
        const int obj = *jp == '{';
        const char close = obj ? '}' : ']';
        int prev = -1;
        id = jnew(obj ? J_OBJ : J_ARR);
        if (id < 0) return -1;
        jp++;
        jws();
        if (*jp == close) {
            jp++;
            return id;
        }
        for (;;) {
            const char *key = NULL;
            int child;
            jws();
            if (obj) {
                size_t kl;
                key = jstring(&kl);
                if (!key) return -1;
                jws();
                if (*jp++ != ':') {
                    jerr = "expected ':'";
                    return -1;
                }
            }
            child = jvalue();
            if (child < 0) return -1;
            jn[child].key = key;
            if (prev < 0) jn[id].first = child;
            else jn[prev].next = child;
            prev = child;
            jws();
            if (*jp == ',') {
                jp++;
                continue;
            }
            if (*jp == close) {
                jp++;
                return id;
            }
            jerr = "expected ',' or closing bracket";
            return -1;
        }
    }
    if (*jp == '"') {
        id = jnew(J_STR);
        if (id < 0) return -1;
        jn[id].str = jstring(&jn[id].strlen);
        return jn[id].str ? id : -1;
    }
    if (*jp == '-' || (*jp >= '0' && *jp <= '9')) {
        const char *s = jp;
        if (*jp == '-') jp++;
        if (!(*jp >= '0' && *jp <= '9')) {
            jerr = "bad number";
            return -1;
        }
        while ((*jp >= '0' && *jp <= '9') || *jp == '.' || *jp == 'e' || *jp == 'E' || *jp == '+' || *jp == '-') jp++;
        id = jnew(J_NUM);
        if (id < 0) return -1;
        jn[id].num = s;
        jn[id].numlen = (size_t)(jp - s);
        return id;
    }
    if (strncmp(jp, "true", 4) == 0 || strncmp(jp, "null", 4) == 0) {
        jp += 4;
        return jnew(J_LIT);
    }
    if (strncmp(jp, "false", 5) == 0) {
        jp += 5;
        return jnew(J_LIT);
    }
    jerr = "unexpected character";
    return -1;
}

static int jget(int obj, const char *key)
{
    int c;
    for (c = jn[obj].first; c >= 0; c = jn[c].next)
        if (jn[c].key && strcmp(jn[c].key, key) == 0) return c;
    return -1;
}

/* Unsigned integer field in 0..max (digits only: what JSON.stringify prints below 1e21). */
static int juint(int obj, const char *key, uint64_t max, uint64_t *out)
{
    const int id = jget(obj, key);
    size_t i;
    uint64_t v = 0;
    if (id < 0 || jn[id].type != J_NUM || jn[id].numlen == 0u) return -1;
    for (i = 0; i < jn[id].numlen; i++) {
        const char c = jn[id].num[i];
        if (c < '0' || c > '9') return -1;
        if (v > (UINT64_MAX - 9u) / 10u) return -1;
        v = v * 10u + (uint64_t)(c - '0');
    }
    if (v > max) return -1;
    *out = v;
    return 0;
}

static int jdouble(int id, double *out)
{
    char tmp[64];
    char *end;
    if (id < 0 || jn[id].type != J_NUM || jn[id].numlen >= sizeof tmp) return -1;
    memcpy(tmp, jn[id].num, jn[id].numlen);
    tmp[jn[id].numlen] = '\0';
    *out = strtod(tmp, &end);
    return *end == '\0' ? 0 : -1;
}

static const char *jstr_field(int obj, const char *key, size_t *len)
{
    const int id = jget(obj, key);
    if (id < 0 || jn[id].type != J_STR) return NULL;
    *len = jn[id].strlen;
    return jn[id].str;
}

#define MAX_SAFE 9007199254740991ull

/* {"major","minor","patch"} under "firmware". */
static int jversion(int obj, vigil_fw_version_t *ver)
{
    const int fw = jget(obj, "firmware");
    uint64_t v;
    if (fw < 0 || jn[fw].type != J_OBJ) return -1;
    if (juint(fw, "major", 255, &v) < 0) return -1;
    ver->major = (uint8_t)v;
    if (juint(fw, "minor", 255, &v) < 0) return -1;
    ver->minor = (uint8_t)v;
    if (juint(fw, "patch", 65535, &v) < 0) return -1;
    ver->patch = (uint16_t)v;
    return 0;
}

/* Hex string field into out (min..max bytes); returns the length or -1. */
static long jbytes(int obj, const char *key, uint8_t *out, size_t min, size_t max)
{
    size_t len, i;
    const char *s = jstr_field(obj, key, &len);
    if (!s || len % 2u != 0u || len / 2u < min || len / 2u > max) return -1;
    for (i = 0; i < len / 2u; i++) {
        const int hi = hexval((unsigned char)s[2u * i]), lo = hexval((unsigned char)s[2u * i + 1u]);
        if (hi < 0 || lo < 0) return -1;
        out[i] = (uint8_t)(hi * 16 + lo);
    }
    return (long)(len / 2u);
}

/* Fills f from the JSON text; returns NULL or an error message. */
static const char *frame_from_json(const char *text, vigil_frame_t *f)
{
    int root, c, i;
    uint64_t v;
    jcount = 0;
    jpool_used = 0;
    jerr = NULL;
    jp = text;
    root = jvalue();
    if (root < 0) return jerr ? jerr : "bad JSON";
    jws();
    if (*jp != '\0') return "trailing characters after JSON";
    if (jn[root].type != J_OBJ) return "frame must be an object";
    memset(f, 0, sizeof *f);
    if (juint(root, "type", 255, &v) < 0) return "type must be an integer";
    f->type = (uint8_t)v;
    switch (f->type) {
    case VIGIL_TYPE_DATA: {
        vigil_data_t *d = &f->u.data;
        const int vals = jget(root, "values");
        if (juint(root, "deviceId", UINT32_MAX, &v) < 0) return "deviceId must be a u32";
        d->device_id = (uint32_t)v;
        if (juint(root, "seq", UINT32_MAX, &v) < 0) return "seq must be a u32";
        d->seq = (uint32_t)v;
        if (juint(root, "timestampUs", MAX_SAFE, &v) < 0) return "timestampUs must be a safe non-negative integer";
        d->timestamp_us = v;
        if (juint(root, "flags", 255, &v) < 0) return "flags must be a u8";
        d->flags = (uint8_t)v;
        if (vals < 0 || jn[vals].type != J_ARR) return "values must be an array";
        for (i = 0, c = jn[vals].first; c >= 0; c = jn[c].next, i++) {
            double x;
            if (i >= (int)VIGIL_MAX_CHANNELS) return "values must have 1..32 channels";
            if (jdouble(c, &x) < 0) {
                size_t n;
                const char *t = jn[c].type == J_STR ? jn[c].str : NULL;
                n = t ? jn[c].strlen : 0;
                if (t && n == 3 && memcmp(t, "NaN", 3) == 0) x = NAN;
                else if (t && n == 8 && memcmp(t, "Infinity", 8) == 0) x = INFINITY;
                else if (t && n == 9 && memcmp(t, "-Infinity", 9) == 0) x = -INFINITY;
                else return "values must be numbers or NaN/Infinity/-Infinity";
            }
            d->values[i] = (float)x; /* round to nearest binary32, like Math.fround / writeFloatLE */
        }
        d->channel_count = (uint8_t)i;
        break;
    }
    case VIGIL_TYPE_HELLO: {
        vigil_hello_t *h = &f->u.hello;
        const int fw = jget(root, "firmware"), chans = jget(root, "channels");
        const char *s;
        size_t len;
        if (juint(root, "deviceId", UINT32_MAX, &v) < 0) return "deviceId must be a u32";
        h->device_id = (uint32_t)v;
        if (juint(root, "bootId", UINT32_MAX, &v) < 0) return "bootId must be a u32";
        h->boot_id = (uint32_t)v;
        if (fw < 0 || jn[fw].type != J_OBJ) return "firmware must be an object";
        if (juint(fw, "major", 255, &v) < 0) return "firmware.major must be a u8";
        h->fw_major = (uint8_t)v;
        if (juint(fw, "minor", 255, &v) < 0) return "firmware.minor must be a u8";
        h->fw_minor = (uint8_t)v;
        if (juint(fw, "patch", 65535, &v) < 0) return "firmware.patch must be a u16";
        h->fw_patch = (uint16_t)v;
        s = jstr_field(root, "profile", &len);
        if (!s || len > VIGIL_MAX_PROFILE_LEN || strlen(s) != len) return "profile must be a string of at most 31 characters";
        memcpy(h->profile, s, len + 1u);
        if (chans < 0 || jn[chans].type != J_ARR) return "channels must be an array";
        for (i = 0, c = jn[chans].first; c >= 0; c = jn[c].next, i++) {
            if (i >= (int)VIGIL_MAX_CHANNELS) return "channels must have 1..32 entries";
            if (jn[c].type != J_OBJ) return "channel must be an object";
            s = jstr_field(c, "name", &len);
            if (!s || len > VIGIL_MAX_CHANNEL_NAME || strlen(s) != len) return "channel name must be a string of at most 15 characters";
            memcpy(h->channels[i].name, s, len + 1u);
            if (juint(c, "unit", 255, &v) < 0) return "unit must be an integer";
            h->channels[i].unit = (uint8_t)v;
        }
        h->channel_count = (uint8_t)i;
        break;
    }
    case VIGIL_TYPE_ACK:
        if (juint(root, "deviceId", UINT32_MAX, &v) < 0) return "deviceId must be a u32";
        f->u.ack.device_id = (uint32_t)v;
        if (juint(root, "firstSeq", UINT32_MAX, &v) < 0) return "firstSeq must be a u32";
        f->u.ack.first_seq = (uint32_t)v;
        if (juint(root, "count", 65535, &v) < 0) return "count must be 1..65535";
        f->u.ack.count = (uint16_t)v;
        if (juint(root, "gatewayTimeUs", MAX_SAFE, &v) < 0) return "gatewayTimeUs must be a safe non-negative integer";
        f->u.ack.gateway_time_us = v;
        break;
    case VIGIL_TYPE_NACK:
        if (juint(root, "deviceId", UINT32_MAX, &v) < 0) return "deviceId must be a u32";
        f->u.nack.device_id = (uint32_t)v;
        if (juint(root, "seq", UINT32_MAX, &v) < 0) return "seq must be a u32";
        f->u.nack.seq = (uint32_t)v;
        if (juint(root, "reason", 255, &v) < 0) return "reason must be a u8";
        f->u.nack.reason = (uint8_t)v;
        if (jget(root, "retryAfterMs") >= 0) {
            if (juint(root, "retryAfterMs", 65535, &v) < 0) return "retryAfterMs must be a u16";
            f->u.nack.retry_after_ms = (uint16_t)v;
        }
        break;
    case VIGIL_TYPE_FW_OFFER: {
        vigil_fw_offer_t *o = &f->u.fw_offer;
        if (juint(root, "deviceId", UINT32_MAX, &v) < 0) return "deviceId must be a u32";
        o->device_id = (uint32_t)v;
        if (juint(root, "releaseId", UINT32_MAX, &v) < 0) return "releaseId must be a u32";
        o->release_id = (uint32_t)v;
        if (jversion(root, &o->version) < 0) return "firmware must be {major u8, minor u8, patch u16}";
        if (juint(root, "securityCounter", UINT32_MAX, &v) < 0) return "securityCounter must be a u32";
        o->security_counter = (uint32_t)v;
        if (juint(root, "imageSize", UINT32_MAX, &v) < 0) return "imageSize must be a u32";
        o->image_size = (uint32_t)v;
        if (jbytes(root, "sha256", o->sha256, VIGIL_SHA256_BYTES, VIGIL_SHA256_BYTES) < 0) return "sha256 must be 32 bytes of hex";
        break;
    }
    case VIGIL_TYPE_FW_CHUNK: {
        vigil_fw_chunk_t *ch = &f->u.fw_chunk;
        long n;
        if (juint(root, "deviceId", UINT32_MAX, &v) < 0) return "deviceId must be a u32";
        ch->device_id = (uint32_t)v;
        if (juint(root, "releaseId", UINT32_MAX, &v) < 0) return "releaseId must be a u32";
        ch->release_id = (uint32_t)v;
        if (juint(root, "offset", UINT32_MAX, &v) < 0) return "offset must be a u32";
        ch->offset = (uint32_t)v;
        n = jbytes(root, "data", ch->data, 0, VIGIL_FW_MAX_CHUNK);
        if (n < 0) return "data must be at most 224 bytes of hex";
        ch->data_len = (uint8_t)n;
        break;
    }
    case VIGIL_TYPE_FW_ABORT:
        if (juint(root, "deviceId", UINT32_MAX, &v) < 0) return "deviceId must be a u32";
        f->u.fw_abort.device_id = (uint32_t)v;
        if (juint(root, "releaseId", UINT32_MAX, &v) < 0) return "releaseId must be a u32";
        f->u.fw_abort.release_id = (uint32_t)v;
        if (juint(root, "reason", 255, &v) < 0) return "reason must be a u8";
        f->u.fw_abort.reason = (uint8_t)v;
        break;
    case VIGIL_TYPE_FW_STATUS: {
        vigil_fw_status_t *st = &f->u.fw_status;
        if (juint(root, "deviceId", UINT32_MAX, &v) < 0) return "deviceId must be a u32";
        st->device_id = (uint32_t)v;
        if (juint(root, "state", 255, &v) < 0) return "state must be a u8";
        st->state = (uint8_t)v;
        if (juint(root, "result", 255, &v) < 0) return "result must be a u8";
        st->result = (uint8_t)v;
        if (juint(root, "reason", 255, &v) < 0) return "reason must be a u8";
        st->reason = (uint8_t)v;
        if (juint(root, "window", 255, &v) < 0) return "window must be a u8";
        st->window = (uint8_t)v;
        if (juint(root, "releaseId", UINT32_MAX, &v) < 0) return "releaseId must be a u32";
        st->release_id = (uint32_t)v;
        if (juint(root, "nextOffset", UINT32_MAX, &v) < 0) return "nextOffset must be a u32";
        st->next_offset = (uint32_t)v;
        if (juint(root, "slotSize", UINT32_MAX, &v) < 0) return "slotSize must be a u32";
        st->slot_size = (uint32_t)v;
        if (juint(root, "securityCounter", UINT32_MAX, &v) < 0) return "securityCounter must be a u32";
        st->security_counter = (uint32_t)v;
        if (jversion(root, &st->version) < 0) return "firmware must be {major u8, minor u8, patch u16}";
        if (juint(root, "maxChunk", 255, &v) < 0) return "maxChunk must be a u8";
        st->max_chunk = (uint8_t)v;
        break;
    }
    case VIGIL_TYPE_FW_CHUNK_ACK:
        if (juint(root, "deviceId", UINT32_MAX, &v) < 0) return "deviceId must be a u32";
        f->u.fw_chunk_ack.device_id = (uint32_t)v;
        if (juint(root, "releaseId", UINT32_MAX, &v) < 0) return "releaseId must be a u32";
        f->u.fw_chunk_ack.release_id = (uint32_t)v;
        if (juint(root, "nextOffset", UINT32_MAX, &v) < 0) return "nextOffset must be a u32";
        f->u.fw_chunk_ack.next_offset = (uint32_t)v;
        if (juint(root, "status", 255, &v) < 0) return "status must be a u8";
        f->u.fw_chunk_ack.status = (uint8_t)v;
        break;
    case VIGIL_TYPE_ERROR: {
        const char *s;
        size_t len;
        if (juint(root, "deviceId", UINT32_MAX, &v) < 0) return "deviceId must be a u32";
        f->u.error.device_id = (uint32_t)v;
        if (juint(root, "code", 255, &v) < 0) return "code must be a u8";
        f->u.error.code = (uint8_t)v;
        s = jstr_field(root, "message", &len);
        if (!s || len > VIGIL_MAX_ERROR_MESSAGE) return "message must be a string of at most 200 UTF-8 bytes";
        memcpy(f->u.error.message, s, len);
        f->u.error.message[len] = '\0';
        f->u.error.message_len = (uint8_t)len;
        break;
    }
    default: return "unknown frame type";
    }
    return NULL;
}

/* ---- commands ------------------------------------------------------------------------- */

static void cmd_decode(char *arg)
{
    static vigil_frame_t f;
    const long n = parse_hex(arg, (uint8_t *)arg);
    vigil_reject_t r;
    if (n < 0) {
        printf("err bad hex\n");
        return;
    }
    r = vigil_decode((const uint8_t *)arg, (size_t)n, &f);
    if (r != VIGIL_OK) {
        printf("err %s\n", vigil_reject_name(r));
        return;
    }
    printf("ok ");
    put_frame_json(&f);
    putchar('\n');
}

static void cmd_encode(const char *arg)
{
    static vigil_frame_t f;
    static uint8_t raw[VIGIL_MAX_FRAME], wire[VIGIL_MAX_WIRE];
    const char *e = frame_from_json(arg, &f);
    size_t n, nw;
    if (e) {
        printf("err %s\n", e);
        return;
    }
    n = vigil_encode(&f, raw, sizeof raw);
    if (n == 0u) {
        printf("err frame cannot be encoded (field out of range)\n");
        return;
    }
    nw = vigil_encode_wire(&f, wire, sizeof wire);
    if (nw == 0u) {
        printf("err wire encoding failed\n");
        return;
    }
    printf("ok ");
    put_hex(raw, n);
    putchar(' ');
    put_hex(wire, nw);
    putchar('\n');
}

/* Runs the receiver over the bytes; prints the events when `print`, returns their count. */
static size_t run_stream(const uint8_t *p, size_t left, int flush, int print)
{
    static vigil_rx_t rx;
    static vigil_frame_t f;
    size_t count = 0;
    vigil_rx_init(&rx);
    while (left > 0u) {
        vigil_rx_event_t ev;
        const size_t k = vigil_rx_push(&rx, p, left, &f, &ev);
        p += k;
        left -= k;
        if (ev == VIGIL_RX_NONE) continue;
        count++;
        if (!print) continue;
        if (ev == VIGIL_RX_FRAME) {
            size_t len;
            const uint8_t *raw = vigil_rx_raw(&rx, &len);
            printf("frame ");
            put_hex(raw, len);
            putchar('\n');
        } else {
            printf("reject %s\n", vigil_reject_name(rx.reason));
        }
    }
    if (flush) {
        const vigil_reject_t r = vigil_rx_flush(&rx);
        if (r != VIGIL_OK) {
            count++;
            if (print) printf("reject %s\n", vigil_reject_name(r));
        }
    }
    return count;
}

static void cmd_stream(char *arg, int flush)
{
    const long n = parse_hex(arg, (uint8_t *)arg);
    if (n < 0) {
        printf("err bad hex\n");
        return;
    }
    /* The receiver is deterministic: count first, so "ok N" can precede the events. */
    printf("ok %lu\n", (unsigned long)run_stream((const uint8_t *)arg, (size_t)n, flush, 0));
    (void)run_stream((const uint8_t *)arg, (size_t)n, flush, 1);
}

static void cmd_sha256(char *arg)
{
    const long n = parse_hex(arg, (uint8_t *)arg);
    vigil_sha256_t s;
    uint8_t d[VIGIL_SHA256_DIGEST];
    long o = 0, step = 1;
    if (n < 0) {
        printf("err bad hex\n");
        return;
    }
    vigil_sha256_init(&s);
    while (o < n) { /* uneven pieces exercise the block buffer */
        const long k = n - o < step ? n - o : step;
        vigil_sha256_update(&s, (const uint8_t *)arg + o, (size_t)k);
        o += k;
        step = step % 97 + 13;
    }
    vigil_sha256_final(&s, d);
    printf("ok ");
    put_hex(d, sizeof d);
    putchar('\n');
}

/* Reads one line of any length (without the newline); NULL at EOF. */
static char *read_line(void)
{
    static char *buf;
    static size_t cap;
    size_t len = 0;
    int c;
    while ((c = getchar()) != EOF && c != '\n') {
        if (len + 2u > cap) {
            char *nb;
            cap = cap ? cap * 2u : 4096u;
            nb = (char *)realloc(buf, cap);
            if (!nb) {
                fprintf(stderr, "vigil_kat: out of memory\n");
                exit(2);
            }
            buf = nb;
        }
        buf[len++] = (char)c;
    }
    if (c == EOF && len == 0u) return NULL;
    if (!buf) {
        buf = (char *)malloc(1);
        if (!buf) exit(2);
        cap = 1;
    }
    if (len > 0u && buf[len - 1u] == '\r') len--;
    buf[len] = '\0';
    return buf;
}

int main(void)
{
    char *line;
    while ((line = read_line()) != NULL) {
        if (strncmp(line, "decode ", 7) == 0) cmd_decode(line + 7);
        else if (strncmp(line, "encode ", 7) == 0) cmd_encode(line + 7);
        else if (strncmp(line, "stream ", 7) == 0) cmd_stream(line + 7, 0);
        else if (strncmp(line, "streamflush ", 12) == 0) cmd_stream(line + 12, 1);
        else if (strncmp(line, "sha256 ", 7) == 0) cmd_sha256(line + 7);
        else if (strcmp(line, "sha256") == 0) cmd_sha256(line + 6);
        else if (strcmp(line, "stream") == 0) cmd_stream(line + 6, 0);
        else if (strcmp(line, "streamflush") == 0) cmd_stream(line + 11, 1);
        else if (line[0] == '\0') continue;
        else printf("err unknown command\n");
        fflush(stdout);
    }
    return 0;
}
