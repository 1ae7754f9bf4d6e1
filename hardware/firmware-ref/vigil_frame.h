/*
 * Vigil frame protocol v1 (document revision 1.4; revisions 1.3 and 1.4 changed no byte) — portable C99 reference codec
 * (hardware/PROTOCOL.md).
 *
 * - No malloc, no stdio; only <stdint.h>, <stddef.h>, <string.h>, <stdbool.h>.
 * - Byte order is handled with shifts, so the code is correct on big-endian and
 *   alignment-strict cores; floats go through memcpy to/from uint32_t.
 * - Decoding and reject reasons mirror the TypeScript codec
 *   (gateway/src/protocol/frame.ts, stream-decoder.ts) check for check, so both sides count
 *   the same reason for the same bytes.
 */
#ifndef VIGIL_FRAME_H
#define VIGIL_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VIGIL_PROTOCOL_VERSION 1u
#define VIGIL_HEADER_BYTES 4u
#define VIGIL_CRC_BYTES 4u
/** Largest payload a frame may carry. */
#define VIGIL_MAX_PAYLOAD 240u
/** Largest unencoded frame: header + payload + CRC. */
#define VIGIL_MAX_FRAME 248u
/** Largest COBS-encoded frame without its 0x00 delimiter. */
#define VIGIL_MAX_ENCODED 249u
/** Largest COBS-encoded frame including the 0x00 delimiter (size of a TX wire buffer). */
#define VIGIL_MAX_WIRE (VIGIL_MAX_ENCODED + 1u)

#define VIGIL_MAX_CHANNELS 32u
#define VIGIL_DATA_FIXED_BYTES 18u
#define VIGIL_MAX_PROFILE_LEN 31u
#define VIGIL_MAX_CHANNEL_NAME 15u
#define VIGIL_MAX_ERROR_MESSAGE 200u
/* Time fields (µs since the Unix epoch) must be below 2^53 so they are exact IEEE doubles
 * on the gateway; larger values are BAD_PAYLOAD (PROTOCOL.md, Conventions). */
#define VIGIL_MAX_TIME_US (1ull << 53)
#define VIGIL_MAX_UNIT 12u
/** Size of an unencoded DATA frame with n channels. */
#define VIGIL_DATA_FRAME_BYTES(n) (VIGIL_HEADER_BYTES + VIGIL_DATA_FIXED_BYTES + 4u * (n) + VIGIL_CRC_BYTES)

typedef enum {
    VIGIL_TYPE_HELLO = 1,
    VIGIL_TYPE_DATA = 2,
    VIGIL_TYPE_ACK = 3,
    VIGIL_TYPE_NACK = 4,
    VIGIL_TYPE_ERROR = 5,
    /* v1.1 firmware update (PROTOCOL.md, "Firmware update") */
    VIGIL_TYPE_FW_OFFER = 0x10,    /* gateway -> device */
    VIGIL_TYPE_FW_CHUNK = 0x11,    /* gateway -> device */
    VIGIL_TYPE_FW_ABORT = 0x12,    /* gateway -> device */
    VIGIL_TYPE_FW_STATUS = 0x13,   /* device -> gateway */
    VIGIL_TYPE_FW_CHUNK_ACK = 0x14 /* device -> gateway */
} vigil_type_t;

/** NACK reason codes (PROTOCOL.md). */
typedef enum {
    VIGIL_NACK_NON_FINITE = 1,      /* sent by gateways before revision 1.2 only */
    VIGIL_NACK_UNKNOWN_DEVICE = 2,
    VIGIL_NACK_REVOKED_DEVICE = 3,
    VIGIL_NACK_SCHEMA_MISMATCH = 4,
    VIGIL_NACK_ABSURD_TIMESTAMP = 5,
    VIGIL_NACK_STORE_UNAVAILABLE = 6,
    VIGIL_NACK_RATE_LIMITED = 7,
    VIGIL_NACK_BUSY = 8,            /* v1.1: payload 11 bytes, carries retry_after_ms */
    VIGIL_NACK_SEQ_OUT_OF_RANGE = 9 /* v1.1: seq further than VIGIL_SEQ_MAX_JUMP from the boot's highest */
} vigil_nack_reason_t;

/** Largest serial-arithmetic distance of a DATA seq from the highest one of its boot (2^24). */
#define VIGIL_SEQ_MAX_JUMP 16777216ul

/* ---- firmware update (v1.1) ----------------------------------------------------------- */
/** Largest chunk: 240-byte payload minus the 16-byte chunk header. */
#define VIGIL_FW_MAX_CHUNK 224u
#define VIGIL_FW_MIN_CHUNK 16u
#define VIGIL_FW_MAX_WINDOW 16u
#define VIGIL_SHA256_BYTES 32u

/** FW_STATUS state. */
typedef enum { VIGIL_FW_IDLE = 0, VIGIL_FW_RECEIVING = 1, VIGIL_FW_READY = 2, VIGIL_FW_TESTING = 3 } vigil_fw_state_t;
/** FW_STATUS result. */
typedef enum {
    VIGIL_FW_RESULT_NONE = 0,
    VIGIL_FW_RESULT_INSTALLED = 1,
    VIGIL_FW_RESULT_REVERTED = 2,
    VIGIL_FW_RESULT_REFUSED = 3,
    VIGIL_FW_RESULT_ABORTED = 4
} vigil_fw_result_t;
/** FW_STATUS reason (why REFUSED / REVERTED). */
typedef enum {
    VIGIL_FW_REASON_NONE = 0,
    VIGIL_FW_REASON_HASH_MISMATCH = 1,
    VIGIL_FW_REASON_OLDER_VERSION = 2,
    VIGIL_FW_REASON_TOO_LARGE = 3,
    VIGIL_FW_REASON_BAD_IMAGE = 4,
    VIGIL_FW_REASON_FLASH_ERROR = 5,
    VIGIL_FW_REASON_BUSY = 6,
    VIGIL_FW_REASON_NOT_CONFIRMED = 7,
    VIGIL_FW_REASON_INTERRUPTED = 8
} vigil_fw_reason_t;
/** FW_CHUNK_ACK status. */
typedef enum {
    VIGIL_FW_ACK_OK = 0,
    VIGIL_FW_ACK_OUT_OF_ORDER = 1,
    VIGIL_FW_ACK_WRITE_FAILED = 2,
    VIGIL_FW_ACK_BAD_LENGTH = 3
} vigil_fw_ack_status_t;
/** FW_ABORT reason. */
typedef enum { VIGIL_FW_ABORT_OPERATOR = 1, VIGIL_FW_ABORT_TIMEOUT = 2, VIGIL_FW_ABORT_SUPERSEDED = 3 } vigil_fw_abort_reason_t;

/**
 * Why a frame was refused; names match the TypeScript FrameRejectReason
 * (vigil_reject_name() returns exactly those strings). VIGIL_OK means accepted.
 */
typedef enum {
    VIGIL_OK = 0,
    VIGIL_BAD_COBS,
    VIGIL_OVERSIZED,
    VIGIL_TRUNCATED,
    VIGIL_LENGTH_MISMATCH,
    VIGIL_BAD_CRC,
    VIGIL_BAD_VERSION,
    VIGIL_BAD_TYPE,
    VIGIL_BAD_PAYLOAD,
    VIGIL_NON_FINITE /* not returned since revision 1.2 (NaN/Inf values are well-formed); kept for ABI */
} vigil_reject_t;

typedef struct {
    uint32_t device_id;
    uint32_t seq;
    uint64_t timestamp_us;
    uint8_t flags;
    uint8_t channel_count; /* 1..32 */
    float values[VIGIL_MAX_CHANNELS];
} vigil_data_t;

typedef struct {
    uint8_t unit;                              /* 0..12 */
    char name[VIGIL_MAX_CHANNEL_NAME + 1];     /* NUL-terminated, [a-z0-9_]{1,15} */
} vigil_channel_t;

typedef struct {
    uint32_t device_id;
    uint32_t boot_id;
    uint8_t fw_major;
    uint8_t fw_minor;
    uint16_t fw_patch;
    char profile[VIGIL_MAX_PROFILE_LEN + 1];   /* NUL-terminated, printable ASCII 0x21..0x7e */
    uint8_t channel_count;                     /* 1..32 */
    vigil_channel_t channels[VIGIL_MAX_CHANNELS];
} vigil_hello_t;

typedef struct {
    uint32_t device_id;
    uint32_t first_seq;
    uint16_t count; /* >= 1 */
    uint64_t gateway_time_us;
} vigil_ack_t;

typedef struct {
    uint32_t device_id;
    uint32_t seq;
    uint8_t reason;
    uint16_t retry_after_ms; /* BUSY only (1..65535); must be 0 for every other reason */
} vigil_nack_t;

typedef struct {
    uint32_t device_id;
    uint8_t code;
    uint8_t message_len;                       /* bytes, <= 200 */
    char message[VIGIL_MAX_ERROR_MESSAGE + 1]; /* well-formed UTF-8, NUL-terminated */
} vigil_error_t;

typedef struct {
    uint8_t major;
    uint8_t minor;
    uint16_t patch;
} vigil_fw_version_t;

typedef struct {
    uint32_t device_id;
    uint32_t release_id; /* >= 1 */
    vigil_fw_version_t version;
    uint32_t security_counter;
    uint32_t image_size; /* >= 1, header included */
    uint8_t sha256[VIGIL_SHA256_BYTES];
} vigil_fw_offer_t;

typedef struct {
    uint32_t device_id;
    uint32_t release_id; /* >= 1 */
    uint32_t offset;
    uint8_t data_len;    /* 1..224; the chunk CRC is CRC-32 of data, computed by the encoder */
    uint8_t data[VIGIL_FW_MAX_CHUNK];
} vigil_fw_chunk_t;

typedef struct {
    uint32_t device_id;
    uint32_t release_id; /* >= 1 */
    uint8_t reason;      /* vigil_fw_abort_reason_t */
} vigil_fw_abort_t;

typedef struct {
    uint32_t device_id;
    uint8_t state;  /* vigil_fw_state_t */
    uint8_t result; /* vigil_fw_result_t */
    uint8_t reason; /* vigil_fw_reason_t */
    uint8_t window; /* 1..16 */
    uint32_t release_id;
    uint32_t next_offset;
    uint32_t slot_size;
    uint32_t security_counter;
    vigil_fw_version_t version; /* running firmware */
    uint8_t max_chunk;          /* 16..224 */
} vigil_fw_status_t;

typedef struct {
    uint32_t device_id;
    uint32_t release_id; /* >= 1 */
    uint32_t next_offset;
    uint8_t status; /* vigil_fw_ack_status_t */
} vigil_fw_chunk_ack_t;

typedef struct {
    uint8_t type; /* vigil_type_t */
    union {
        vigil_hello_t hello;
        vigil_data_t data;
        vigil_ack_t ack;
        vigil_nack_t nack;
        vigil_error_t error;
        vigil_fw_offer_t fw_offer;
        vigil_fw_chunk_t fw_chunk;
        vigil_fw_abort_t fw_abort;
        vigil_fw_status_t fw_status;
        vigil_fw_chunk_ack_t fw_chunk_ack;
    } u;
} vigil_frame_t;

/* ---- CRC-32/ISO-HDLC ------------------------------------------------------------------ */

/** CRC-32/ISO-HDLC of `len` bytes (check value: "123456789" -> 0xCBF43926). */
uint32_t vigil_crc32(const uint8_t *data, size_t len);
/** Incremental form: start with crc = 0, feed chunks, the result is the CRC so far. */
uint32_t vigil_crc32_update(uint32_t crc, const uint8_t *data, size_t len);

/* ---- COBS ----------------------------------------------------------------------------- */

/** Worst-case COBS output for n input bytes, including the 0x00 delimiter. */
#define VIGIL_COBS_MAX_WIRE(n) ((n) + (n) / 254u + 2u)

/**
 * COBS-encodes `n` bytes and appends the 0x00 delimiter. Returns the number of bytes
 * written (including the delimiter), or 0 when `cap` is too small.
 * `dst` and `src` must not overlap, except dst == src - 1 with n <= 253 (in-place encoding,
 * used by vigil_encode_wire()).
 */
size_t vigil_cobs_encode(const uint8_t *src, size_t n, uint8_t *dst, size_t cap);

/**
 * Decodes one COBS block (without delimiter). Returns the decoded length, or -1 when the
 * block is invalid (a zero byte inside, a code byte pointing past the end) or does not fit
 * in `cap` bytes. In-place decoding (dst == src) is allowed. Same rules as cobsDecodeInto().
 */
int vigil_cobs_decode(const uint8_t *src, size_t n, uint8_t *dst, size_t cap);

/* ---- Frames --------------------------------------------------------------------------- */

/**
 * Encodes a frame (header, payload, CRC; not COBS) into `out`. Returns its length, or 0
 * when a field cannot be represented (same rules as the TypeScript encodeFrame: channel
 * count 1..32, profile <= 31 printable ASCII, names [a-z0-9_]{1,15}, unit <= 12, HELLO
 * payload <= 240, ACK count >= 1, message <= 200 bytes of well-formed UTF-8 (the decoder's
 * rule: PROTOCOL.md, ERROR), timestamps < 2^53, BUSY NACK with
 * retry_after_ms 1..65535 and every other NACK with 0, release_id >= 1, image_size >= 1,
 * chunk data 1..224 bytes not running past 2^32, FW_STATUS state/result/window/max_chunk in
 * range, chunk ack status <= 3) or `cap` is too small.
 * Like the TypeScript encoder, DATA values are written as given (NaN included).
 */
size_t vigil_encode(const vigil_frame_t *frame, uint8_t *out, size_t cap);
size_t vigil_encode_data(const vigil_data_t *d, uint8_t *out, size_t cap);
size_t vigil_encode_hello(const vigil_hello_t *h, uint8_t *out, size_t cap);
size_t vigil_encode_ack(const vigil_ack_t *a, uint8_t *out, size_t cap);
size_t vigil_encode_nack(const vigil_nack_t *n, uint8_t *out, size_t cap);
size_t vigil_encode_error(const vigil_error_t *e, uint8_t *out, size_t cap);
size_t vigil_encode_fw_offer(const vigil_fw_offer_t *o, uint8_t *out, size_t cap);
size_t vigil_encode_fw_chunk(const vigil_fw_chunk_t *c, uint8_t *out, size_t cap);
size_t vigil_encode_fw_abort(const vigil_fw_abort_t *a, uint8_t *out, size_t cap);
size_t vigil_encode_fw_status(const vigil_fw_status_t *s, uint8_t *out, size_t cap);
size_t vigil_encode_fw_chunk_ack(const vigil_fw_chunk_ack_t *a, uint8_t *out, size_t cap);

/**
 * Encodes a frame and COBS-encodes it in place, delimiter included: ready for the UART.
 * One buffer of VIGIL_MAX_WIRE (250) bytes is enough. Returns the wire length or 0.
 */
size_t vigil_encode_wire(const vigil_frame_t *frame, uint8_t *wire, size_t cap);

/**
 * Decodes one unencoded frame. Returns VIGIL_OK and fills `out`, or the reject reason, with
 * the same checks in the same order as the TypeScript decodeFrame(): size (OVERSIZED /
 * TRUNCATED), length field > 240 (OVERSIZED), length mismatch (TRUNCATED / LENGTH_MISMATCH),
 * BAD_CRC, BAD_VERSION, BAD_TYPE, then payload checks (BAD_PAYLOAD).
 * `out` may be partially written on failure.
 */
vigil_reject_t vigil_decode(const uint8_t *buf, size_t n, vigil_frame_t *out);

/** "OK", "BAD_COBS", "OVERSIZED", ... (the TypeScript names). */
const char *vigil_reject_name(vigil_reject_t r);

/* ---- Incremental receiver ------------------------------------------------------------- */

typedef enum {
    VIGIL_RX_NONE = 0,  /* byte consumed, nothing complete yet */
    VIGIL_RX_FRAME,     /* a frame was decoded into *out; raw bytes via vigil_rx_raw() */
    VIGIL_RX_REJECT     /* a segment was refused; reason in rx->reason */
} vigil_rx_event_t;

/**
 * Receiver state: 260 bytes of RAM on 32-bit targets (264 on x86-64). COBS decoding happens in place in `buf`, so no second
 * buffer is needed. Mirrors StreamDecoder: empty segments are ignored; a run of more than
 * VIGIL_MAX_ENCODED bytes without 0x00 reports OVERSIZED once and is discarded until the
 * next 0x00; any error resynchronises on the next 0x00.
 */
typedef struct {
    uint8_t buf[VIGIL_MAX_ENCODED];
    uint16_t len;             /* encoded bytes pending */
    uint16_t raw_len;         /* decoded length of the last FRAME event */
    bool discarding;          /* skipping an oversized run until 0x00 */
    vigil_reject_t reason;    /* reason of the last REJECT event */
    uint32_t bytes_discarded; /* bytes dropped in oversized runs (saturating) */
} vigil_rx_t;

void vigil_rx_init(vigil_rx_t *rx);

/** Feeds one byte. On VIGIL_RX_FRAME `*out` holds the frame (valid until the next call). */
vigil_rx_event_t vigil_rx_push_byte(vigil_rx_t *rx, uint8_t byte, vigil_frame_t *out);

/**
 * Feeds a chunk, stopping right after the first event. Returns the number of bytes consumed
 * (call again with the rest) and stores the event in *event.
 * Typical loop:  while (len) { k = vigil_rx_push(rx, p, len, &f, &ev); p += k; len -= k; ... }
 */
size_t vigil_rx_push(vigil_rx_t *rx, const uint8_t *data, size_t len, vigil_frame_t *out,
                     vigil_rx_event_t *event);

/** The unencoded bytes of the last VIGIL_RX_FRAME (valid until the next push). */
const uint8_t *vigil_rx_raw(const vigil_rx_t *rx, size_t *len);

/**
 * End of stream: returns VIGIL_TRUNCATED if a partial frame was pending (like
 * StreamDecoder.flush()), else VIGIL_OK; resets the state either way.
 */
vigil_reject_t vigil_rx_flush(vigil_rx_t *rx);

#ifdef __cplusplus
}
#endif

#endif /* VIGIL_FRAME_H */
