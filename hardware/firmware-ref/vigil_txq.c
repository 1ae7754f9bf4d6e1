/*
 * Vigil device-side resend ring. See vigil_txq.h.
 */
#include "vigil_txq.h"

#include <string.h>

/* Compile-time checks (C99 has no _Static_assert). */
typedef char vigil_txq_slots_fit_mask[(VIGIL_TXQ_SLOTS >= 1u && VIGIL_TXQ_SLOTS <= 32u) ? 1 : -1];
typedef char vigil_txq_slot_fits_u8[(VIGIL_TXQ_SLOT_BYTES <= 255u) ? 1 : -1];

void vigil_txq_init(vigil_txq_t *q)
{
    q->count = 0;
    q->used = 0;
    q->rto_ms = VIGIL_TXQ_RTO_MIN_MS;
    q->timer_ms = 0;
    q->timer_running = false;
    q->stopped = false;
    q->holding = false;
    q->hold_until_ms = 0;
    q->overflows = 0;
}

bool vigil_txq_holding(const vigil_txq_t *q, uint32_t now_ms)
{
    /* Wrap-safe: the hold is in force while hold_until_ms is ahead of now_ms (by < 2^31 ms). */
    return q->holding && (int32_t)(q->hold_until_ms - now_ms) > 0;
}

/* Removes the entry at position i of `order`, keeping age order. */
static void remove_at(vigil_txq_t *q, unsigned i)
{
    q->used &= ~((uint32_t)1u << q->order[i]);
    memmove(&q->order[i], &q->order[i + 1u], (size_t)(q->count - 1u - i));
    q->count--;
    if (q->count == 0u) q->timer_running = false;
}

static int find_seq(const vigil_txq_t *q, uint32_t seq)
{
    unsigned i;
    for (i = 0; i < q->count; i++)
        if (q->slots[q->order[i]].seq == seq) return (int)i;
    return -1;
}

vigil_txq_push_t vigil_txq_push(vigil_txq_t *q, const vigil_data_t *d)
{
    vigil_txq_push_t result = VIGIL_TXQ_OK;
    unsigned s;
    /* The only ways vigil_encode_data() can fail here; checked before anything is evicted (an
       empty slot would be resent as nothing and never acknowledged, blocking the ring). */
    if (d->channel_count < 1u || d->channel_count > VIGIL_TXQ_MAX_CHANNELS) return VIGIL_TXQ_INVALID;
    if (d->timestamp_us >= VIGIL_MAX_TIME_US) return VIGIL_TXQ_INVALID;
    if (q->count == VIGIL_TXQ_SLOTS) {
        remove_at(q, 0u); /* full: the oldest is lost */
        q->overflows++;
        result = VIGIL_TXQ_DROPPED_OLDEST;
    }
    for (s = 0; q->used & ((uint32_t)1u << s); s++) {
    }
    q->slots[s].len = (uint8_t)vigil_encode_data(d, q->slots[s].bytes, VIGIL_TXQ_SLOT_BYTES);
    q->slots[s].seq = d->seq;
    q->slots[s].sent = false;
    q->slots[s].schema_mismatches = 0u;
    q->used |= (uint32_t)1u << s;
    q->order[q->count++] = (uint8_t)s;
    return result;
}

unsigned vigil_txq_ack(vigil_txq_t *q, uint32_t first_seq, uint16_t count, uint32_t now_ms)
{
    unsigned i = 0, removed = 0;
    while (i < q->count) {
        /* seq in first_seq .. first_seq+count-1 (mod 2^32) */
        if ((uint32_t)(q->slots[q->order[i]].seq - first_seq) < (uint32_t)count) {
            remove_at(q, i);
            removed++;
        } else {
            i++;
        }
    }
    if (removed > 0u) { /* progress: reset the backoff, restart the timer for what is left */
        q->rto_ms = VIGIL_TXQ_RTO_MIN_MS;
        q->timer_ms = now_ms;
        q->timer_running = q->count > 0u;
    }
    return removed;
}

vigil_txq_nack_t vigil_txq_nack(vigil_txq_t *q, const vigil_nack_t *nack, uint32_t now_ms)
{
    const int i = find_seq(q, nack->seq);
    if (nack->reason == VIGIL_NACK_BUSY) {
        /* The gateway is overloaded: pause everything for retry_after_ms (the longest hold wins). */
        const uint32_t until = now_ms + nack->retry_after_ms;
        if (!vigil_txq_holding(q, now_ms) || (int32_t)(until - q->hold_until_ms) > 0) q->hold_until_ms = until;
        q->holding = true;
        if (i >= 0) q->slots[q->order[i]].sent = false; /* first out when the hold ends */
        return i >= 0 ? VIGIL_TXQ_NACK_BUSY : VIGIL_TXQ_NACK_UNKNOWN_SEQ;
    }
    if (nack->reason == VIGIL_NACK_UNKNOWN_DEVICE || nack->reason == VIGIL_NACK_REVOKED_DEVICE) {
        /* The device is refused, whatever the seq: the answer to a HELLO carries seq 0, which is
         * not in the queue (PROTOCOL.md, "Replies and silence"). Stop before looking it up. */
        q->stopped = true;
        return VIGIL_TXQ_NACK_STOP;
    }
    if (i < 0) return VIGIL_TXQ_NACK_UNKNOWN_SEQ;
    switch (nack->reason) {
    case VIGIL_NACK_STORE_UNAVAILABLE:
    case VIGIL_NACK_RATE_LIMITED:
        q->rto_ms = (q->rto_ms >= VIGIL_TXQ_RTO_MAX_MS / 2u) ? VIGIL_TXQ_RTO_MAX_MS : q->rto_ms * 2u;
        q->timer_ms = now_ms;
        q->timer_running = true;
        return VIGIL_TXQ_NACK_RETRY_LATER;
    case VIGIL_NACK_SCHEMA_MISMATCH:
        /* PROTOCOL.md, NACK reason 4: a lost HELLO is fixed by the first resend; the
           VIGIL_TXQ_SCHEMA_MISMATCH_MAX-th refusal means a HELLO cannot fix it (a seq reused with
           other bytes in this boot, a wrong channel count): drop it, never stored, to end the loop. */
        if (++q->slots[q->order[i]].schema_mismatches >= VIGIL_TXQ_SCHEMA_MISMATCH_MAX) {
            remove_at(q, (unsigned)i);
            return VIGIL_TXQ_NACK_DROPPED;
        }
        q->slots[q->order[i]].sent = false; /* resent by the next poll, after the HELLO */
        return VIGIL_TXQ_NACK_SEND_HELLO;
    default: /* NON_FINITE, ABSURD_TIMESTAMP, SEQ_OUT_OF_RANGE and reasons this firmware does not know */
        remove_at(q, (unsigned)i);
        return VIGIL_TXQ_NACK_DROPPED;
    }
}

const uint8_t *vigil_txq_poll(vigil_txq_t *q, uint32_t now_ms, size_t *len)
{
    unsigned i;
    vigil_txq_slot_t *s;
    *len = 0;
    if (q->stopped || q->count == 0u) return NULL;
    if (q->holding) {
        if (vigil_txq_holding(q, now_ms)) return NULL;
        /* Hold over: restart the retransmission clock so the unsent frames go first. */
        q->holding = false;
        q->timer_ms = now_ms;
    }
    for (i = 0; i < q->count; i++) {
        s = &q->slots[q->order[i]];
        if (!s->sent) {
            s->sent = true;
            if (!q->timer_running) {
                q->timer_ms = now_ms;
                q->timer_running = true;
            }
            *len = s->len;
            return s->bytes;
        }
    }
    if (q->timer_running && (uint32_t)(now_ms - q->timer_ms) >= q->rto_ms) {
        s = &q->slots[q->order[0]];
        q->rto_ms = (q->rto_ms >= VIGIL_TXQ_RTO_MAX_MS / 2u) ? VIGIL_TXQ_RTO_MAX_MS : q->rto_ms * 2u;
        q->timer_ms = now_ms;
        *len = s->len;
        return s->bytes;
    }
    return NULL;
}

void vigil_txq_resume(vigil_txq_t *q) { q->stopped = false; }
