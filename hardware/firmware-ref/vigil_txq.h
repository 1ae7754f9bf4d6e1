/*
 * Vigil device-side resend ring (hardware/PROTOCOL.md, "Serial framing"): keeps up to
 * VIGIL_TXQ_SLOTS unacknowledged DATA frames, resends the oldest after 500 ms without an
 * ACK with exponential backoff to 8 s, pauses for retry_after_ms on a BUSY NACK, drops the
 * oldest when full (report ERROR code 2).
 * No malloc; all state lives in one vigil_txq_t. Times are uint32_t milliseconds from any
 * monotonic clock (wrap-safe).
 */
#ifndef VIGIL_TXQ_H
#define VIGIL_TXQ_H

#include "vigil_frame.h"

/* Build options (VIGIL_TXQ_SLOTS, VIGIL_TXQ_MAX_CHANNELS, …) may come from the compiler's -D flags
 * or from a "vigil_config.h" on the include path (the Arduino IDE has no per-sketch flags; every
 * file that includes this header must see the same values). */
#if defined(__has_include)
#if __has_include("vigil_config.h")
#include "vigil_config.h"
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

#ifndef VIGIL_TXQ_SLOTS
#define VIGIL_TXQ_SLOTS 32u /* at most 32: slot occupancy is a uint32_t bitmask */
#endif
#ifndef VIGIL_TXQ_MAX_CHANNELS
/* Lower this to your channel count to save RAM: each slot stores the encoded frame. */
#define VIGIL_TXQ_MAX_CHANNELS VIGIL_MAX_CHANNELS
#endif
#define VIGIL_TXQ_SLOT_BYTES VIGIL_DATA_FRAME_BYTES(VIGIL_TXQ_MAX_CHANNELS)
#ifndef VIGIL_TXQ_RTO_MIN_MS
#define VIGIL_TXQ_RTO_MIN_MS 500u
#endif
#ifndef VIGIL_TXQ_RTO_MAX_MS
#define VIGIL_TXQ_RTO_MAX_MS 8000u
#endif
/* PROTOCOL.md, NACK reason 4 (revision 1.3): the SCHEMA_MISMATCH_MAX-th SCHEMA_MISMATCH NACK of a
 * frame drops it (a HELLO cannot fix it). Fixed by the protocol, not a build option. */
#define VIGIL_TXQ_SCHEMA_MISMATCH_MAX 3u

typedef struct {
    uint32_t seq;
    uint8_t len;  /* encoded (not COBS) frame length */
    bool sent;    /* false: never sent, or must be resent at once (after SCHEMA_MISMATCH) */
    uint8_t schema_mismatches; /* SCHEMA_MISMATCH NACKs of this frame (0 when pushed) */
    uint8_t bytes[VIGIL_TXQ_SLOT_BYTES];
} vigil_txq_slot_t;

typedef struct {
    vigil_txq_slot_t slots[VIGIL_TXQ_SLOTS];
    uint8_t order[VIGIL_TXQ_SLOTS]; /* slot indices, oldest first */
    uint8_t count;
    uint32_t used;         /* bitmask of occupied slots */
    uint32_t rto_ms;       /* current retransmission timeout */
    uint32_t timer_ms;     /* when the timeout started */
    bool timer_running;
    bool stopped;          /* UNKNOWN_DEVICE / REVOKED_DEVICE: no sending until resumed */
    bool holding;          /* BUSY: nothing is sent before hold_until_ms */
    uint32_t hold_until_ms;
    uint32_t overflows;    /* frames dropped because the ring was full */
} vigil_txq_t;

typedef enum {
    VIGIL_TXQ_OK = 0,
    VIGIL_TXQ_DROPPED_OLDEST, /* ring was full: oldest frame lost; send ERROR code 2 */
    VIGIL_TXQ_INVALID         /* frame cannot be encoded or does not fit a slot */
} vigil_txq_push_t;

/** What the device should do after a NACK. */
typedef enum {
    VIGIL_TXQ_NACK_UNKNOWN_SEQ = 0, /* not (or no longer) in the ring: ignore */
    VIGIL_TXQ_NACK_DROPPED,         /* NON_FINITE, ABSURD_TIMESTAMP (forget a clock taken from ACKs
                                       until the next ACK), SEQ_OUT_OF_RANGE, unknown reasons, the
                                       VIGIL_TXQ_SCHEMA_MISMATCH_MAX-th SCHEMA_MISMATCH of a frame */
    VIGIL_TXQ_NACK_RETRY_LATER,     /* STORE_UNAVAILABLE, RATE_LIMITED: kept, backoff doubled */
    VIGIL_TXQ_NACK_SEND_HELLO,      /* SCHEMA_MISMATCH (1st, 2nd of the frame): kept; send HELLO,
                                       then poll resends it */
    VIGIL_TXQ_NACK_STOP,            /* UNKNOWN_DEVICE, REVOKED_DEVICE: kept, queue stopped (probe
                                       with vigil_txq_oldest(), PROTOCOL.md "A stopped device") */
    VIGIL_TXQ_NACK_BUSY             /* BUSY: kept; the queue sends nothing for retry_after_ms */
} vigil_txq_nack_t;

void vigil_txq_init(vigil_txq_t *q);

/** Encodes `d` into the ring (marked unsent; vigil_txq_poll() returns it). */
vigil_txq_push_t vigil_txq_push(vigil_txq_t *q, const vigil_data_t *d);

/** Applies ACK first_seq .. first_seq+count-1 (mod 2^32). Returns frames removed. */
unsigned vigil_txq_ack(vigil_txq_t *q, uint32_t first_seq, uint16_t count, uint32_t now_ms);

/**
 * Applies a decoded NACK (PROTOCOL.md, NACK table). BUSY holds the whole queue (new frames and
 * resends) until now_ms + retry_after_ms, even when `seq` is no longer in the ring; the NACKed
 * frame goes out first when the hold ends. The retryable reasons are exactly the gateway's
 * RETRYABLE_NACKS (SCHEMA_MISMATCH, STORE_UNAVAILABLE, RATE_LIMITED, BUSY); SCHEMA_MISMATCH at
 * most VIGIL_TXQ_SCHEMA_MISMATCH_MAX times per frame: that NACK drops it (VIGIL_TXQ_NACK_DROPPED).
 */
vigil_txq_nack_t vigil_txq_nack(vigil_txq_t *q, const vigil_nack_t *nack, uint32_t now_ms);

/** True while a BUSY hold is in force at now_ms. */
bool vigil_txq_holding(const vigil_txq_t *q, uint32_t now_ms);

/**
 * Returns the next frame to transmit now, or NULL (always NULL while stopped or during a BUSY
 * hold): first every unsent frame (oldest first),
 * then the oldest frame when the retransmission timeout expired (the timeout then doubles,
 * up to VIGIL_TXQ_RTO_MAX_MS). The pointer is valid until the next call that modifies q.
 * COBS-encode it (vigil_cobs_encode) before writing it to the UART.
 */
const uint8_t *vigil_txq_poll(vigil_txq_t *q, uint32_t now_ms, size_t *len);

/** Clears the stopped state (e.g. after the device was re-registered). */
void vigil_txq_resume(vigil_txq_t *q);

/** Frames waiting for an ACK. */
static inline unsigned vigil_txq_count(const vigil_txq_t *q) { return q->count; }

/**
 * The oldest kept frame (encoded bytes, len, seq), or NULL when the ring is empty; unlike
 * vigil_txq_poll() also while stopped: a stopped device probes with it (PROTOCOL.md, NACK
 * reasons 2 and 3: HELLO, then this frame; its ACK means the device was registered again).
 */
static inline const vigil_txq_slot_t *vigil_txq_oldest(const vigil_txq_t *q)
{
    return q->count > 0u ? &q->slots[q->order[0]] : NULL;
}

#ifdef __cplusplus
}
#endif

#endif /* VIGIL_TXQ_H */
