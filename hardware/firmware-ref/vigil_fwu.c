/*
 * Vigil firmware update and bootloader. See vigil_fwu.h and hardware/PROTOCOL.md
 * ("Firmware update", "Firmware image", "Device state machine").
 */
#include "vigil_fwu.h"

#include <string.h>

/* Compile-time checks (C99 has no _Static_assert). */
typedef char vigil_fwu_io_fits_align[(VIGIL_FWU_IO_BYTES % 32u == 0u) ? 1 : -1];
typedef char vigil_fwu_half_record_fits_io[(VIGIL_FWU_RECORD_BYTES / 2u <= VIGIL_FWU_IO_BYTES) ? 1 : -1];
typedef char vigil_fwu_window_ok[(VIGIL_FWU_WINDOW >= 1u && VIGIL_FWU_WINDOW <= VIGIL_FW_MAX_WINDOW) ? 1 : -1];

#define REC_MAGIC 0x54534756u /* bytes "VGST" */
#define REC_CRC_AT (VIGIL_FWU_RECORD_BYTES - 4u)

/* ---- little-endian helpers ------------------------------------------------------------ */

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | ((uint16_t)p[1] << 8)); }
static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
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

static int version_cmp(const vigil_fw_version_t *a, const vigil_fw_version_t *b)
{
    if (a->major != b->major) return a->major < b->major ? -1 : 1;
    if (a->minor != b->minor) return a->minor < b->minor ? -1 : 1;
    if (a->patch != b->patch) return a->patch < b->patch ? -1 : 1;
    return 0;
}

/* ---- image header --------------------------------------------------------------------- */

bool vigil_image_parse(const uint8_t *h, vigil_image_info_t *out)
{
    unsigned i;
    if (rd32(h) != VIGIL_IMAGE_MAGIC || rd16(h + 4) != VIGIL_IMAGE_HEADER_BYTES || rd16(h + 10) != 0u) return false;
    for (i = 20; i < VIGIL_IMAGE_HEADER_BYTES; i++)
        if (h[i] != 0u) return false;
    out->version.major = h[6];
    out->version.minor = h[7];
    out->version.patch = rd16(h + 8);
    out->security_counter = rd32(h + 12);
    out->image_size = rd32(h + 16);
    return out->image_size >= VIGIL_IMAGE_HEADER_BYTES;
}

/* ---- state log ------------------------------------------------------------------------
 * Record layout (96 bytes, little-endian): magic u32 | seq u32 | state u8 | result u8 |
 * reason u8 | swap_op u8 | swap_sector u16 | swap_step u8 | 0 | swap_count u16 | 0 0 |
 * release_id u32 | image_size u32 | next_offset u32 | security_counter u32 | offer_counter u32 |
 * offer major u8 minor u8 patch u16 | sha256[32] | 16 zero bytes | CRC-32 of bytes 0..91.
 * Records are appended to the active STATE sector; the valid record with the highest seq
 * wins. When the sector is full the other one is erased and the record goes there first, so
 * the previous record survives a power cut during the erase. */

static void rec_encode(const vigil_fwu_record_t *r, uint8_t *b)
{
    memset(b, 0, VIGIL_FWU_RECORD_BYTES);
    wr32(b, REC_MAGIC);
    wr32(b + 4, r->seq);
    b[8] = r->state;
    b[9] = r->result;
    b[10] = r->reason;
    b[11] = r->swap_op;
    wr16(b + 12, r->swap_sector);
    b[14] = r->swap_step;
    wr16(b + 16, r->swap_count);
    wr32(b + 20, r->release_id);
    wr32(b + 24, r->image_size);
    wr32(b + 28, r->next_offset);
    wr32(b + 32, r->security_counter);
    wr32(b + 36, r->offer_counter);
    b[40] = r->offer_version.major;
    b[41] = r->offer_version.minor;
    wr16(b + 42, r->offer_version.patch);
    memcpy(b + 44, r->sha256, VIGIL_SHA256_BYTES);
    wr32(b + REC_CRC_AT, vigil_crc32(b, REC_CRC_AT));
}

static bool rec_decode(const uint8_t *b, vigil_fwu_record_t *r)
{
    if (rd32(b) != REC_MAGIC || rd32(b + REC_CRC_AT) != vigil_crc32(b, REC_CRC_AT)) return false;
    if (b[8] > VIGIL_FW_TESTING || b[11] > VIGIL_SWAP_REVERT || b[14] > 2u) return false;
    r->seq = rd32(b + 4);
    r->state = b[8];
    r->result = b[9];
    r->reason = b[10];
    r->swap_op = b[11];
    r->swap_sector = rd16(b + 12);
    r->swap_step = b[14];
    r->swap_count = rd16(b + 16);
    r->release_id = rd32(b + 20);
    r->image_size = rd32(b + 24);
    r->next_offset = rd32(b + 28);
    r->security_counter = rd32(b + 32);
    r->offer_counter = rd32(b + 36);
    r->offer_version.major = b[40];
    r->offer_version.minor = b[41];
    r->offer_version.patch = rd16(b + 42);
    memcpy(r->sha256, b + 44, VIGIL_SHA256_BYTES);
    return true;
}

static bool blank(const uint8_t *b, uint32_t n)
{
    uint32_t i;
    for (i = 0; i < n; i++)
        if (b[i] != 0xFFu) return false;
    return true;
}

/* Reads a 96-byte record slot through the 64-byte buffer plus a small stack part. */
static int read_slot(vigil_fwu_t *u, uint32_t off, uint8_t *b)
{
    const vigil_flash_t *f = u->flash;
    return f->read(f->ctx, VIGIL_AREA_STATE, off, b, VIGIL_FWU_RECORD_BYTES);
}

static int state_load(vigil_fwu_t *u)
{
    const uint32_t per = u->flash->sector_size / VIGIL_FWU_RECORD_BYTES;
    uint8_t b[VIGIL_FWU_RECORD_BYTES];
    vigil_fwu_record_t r;
    bool found = false;
    uint32_t s, i, last_used[2] = {0, 0};
    for (s = 0; s < 2u; s++) {
        for (i = 0; i < per; i++) {
            const uint32_t off = s * u->flash->sector_size + i * VIGIL_FWU_RECORD_BYTES;
            if (read_slot(u, off, b) != 0) return -1;
            if (!blank(b, VIGIL_FWU_RECORD_BYTES)) last_used[s] = i + 1u; /* also torn slots: never reused */
            if (rec_decode(b, &r) && (!found || (int32_t)(r.seq - u->rec.seq) > 0)) {
                u->rec = r;
                u->state_sector = (uint8_t)s;
                found = true;
            }
        }
    }
    if (!found) {
        memset(&u->rec, 0, sizeof u->rec); /* factory state: IDLE, counter 0 */
        u->state_sector = 1;
        u->state_off = u->flash->sector_size; /* "full": the first write erases sector 0 */
        return 0;
    }
    u->state_off = last_used[u->state_sector] * VIGIL_FWU_RECORD_BYTES;
    return 0;
}

/* True when the newest record in flash (the one before state_off) holds exactly the bytes `b`;
 * read in two halves through u->buf, which no caller of persist() holds data in. */
static bool newest_is(vigil_fwu_t *u, const uint8_t *b)
{
    const vigil_flash_t *f = u->flash;
    const uint32_t half = VIGIL_FWU_RECORD_BYTES / 2u;
    uint32_t at, o;
    if (u->state_off < VIGIL_FWU_RECORD_BYTES || u->state_off > f->sector_size) return false;
    at = u->state_sector * f->sector_size + u->state_off - VIGIL_FWU_RECORD_BYTES;
    for (o = 0; o < VIGIL_FWU_RECORD_BYTES; o += half)
        if (f->read(f->ctx, VIGIL_AREA_STATE, at + o, u->buf, half) != 0 || memcmp(u->buf, b + o, half) != 0)
            return false;
    return true;
}

/* Appends u->rec (seq + 1) — only when it differs from the newest record: a gateway that repeats
 * FW_ABORT, an offer with a known outcome or the resume query (PROTOCOL.md, "Device rules") gets
 * its FW_STATUS without a flash write, so it cannot wear the STATE sectors out. */
static int persist(vigil_fwu_t *u)
{
    const vigil_flash_t *f = u->flash;
    uint8_t b[VIGIL_FWU_RECORD_BYTES];
    rec_encode(&u->rec, b); /* under the newest record's seq: equal bytes = nothing changed */
    if (newest_is(u, b)) return 0;
    if (u->state_off + VIGIL_FWU_RECORD_BYTES > f->sector_size) {
        const uint8_t other = (uint8_t)(u->state_sector ^ 1u);
        if (f->erase(f->ctx, VIGIL_AREA_STATE, other * f->sector_size, f->sector_size) != 0) return -1;
        u->state_sector = other;
        u->state_off = 0;
    }
    u->rec.seq++;
    wr32(b + 4, u->rec.seq);
    wr32(b + REC_CRC_AT, vigil_crc32(b, REC_CRC_AT));
    if (f->write(f->ctx, VIGIL_AREA_STATE, u->state_sector * f->sector_size + u->state_off, b,
                 VIGIL_FWU_RECORD_BYTES) != 0)
        return -1;
    u->state_off += VIGIL_FWU_RECORD_BYTES;
    return 0;
}

/* ---- helpers over the slots ----------------------------------------------------------- */

static void read_running(vigil_fwu_t *u)
{
    const vigil_flash_t *f = u->flash;
    u->running_valid = f->read(f->ctx, VIGIL_AREA_PRIMARY, 0, u->buf, VIGIL_IMAGE_HEADER_BYTES) == 0 &&
                       vigil_image_parse(u->buf, &u->running) && u->running.image_size <= f->slot_size;
    if (!u->running_valid) memset(&u->running, 0, sizeof u->running);
}

/* SHA-256 of the first `len` bytes of SECONDARY into u->sha (not finalised). */
static int hash_secondary(vigil_fwu_t *u, uint32_t len)
{
    const vigil_flash_t *f = u->flash;
    uint32_t o;
    vigil_sha256_init(&u->sha);
    for (o = 0; o < len; o += VIGIL_FWU_IO_BYTES) {
        const uint32_t n = len - o < VIGIL_FWU_IO_BYTES ? len - o : VIGIL_FWU_IO_BYTES;
        if (f->read(f->ctx, VIGIL_AREA_SECONDARY, o, u->buf, n) != 0) return -1;
        vigil_sha256_update(&u->sha, u->buf, n);
    }
    return 0;
}

/* Checks the image in SECONDARY against the record (hash already in u->sha when `hashed`). */
static uint8_t check_secondary(vigil_fwu_t *u, bool hashed)
{
    const vigil_flash_t *f = u->flash;
    uint8_t digest[VIGIL_SHA256_BYTES];
    vigil_image_info_t img;
    if (!hashed && hash_secondary(u, u->rec.image_size) != 0) return VIGIL_FW_REASON_FLASH_ERROR;
    vigil_sha256_final(&u->sha, digest);
    if (memcmp(digest, u->rec.sha256, VIGIL_SHA256_BYTES) != 0) return VIGIL_FW_REASON_HASH_MISMATCH;
    if (f->read(f->ctx, VIGIL_AREA_SECONDARY, 0, u->buf, VIGIL_IMAGE_HEADER_BYTES) != 0)
        return VIGIL_FW_REASON_FLASH_ERROR;
    if (!vigil_image_parse(u->buf, &img) || img.image_size != u->rec.image_size ||
        img.security_counter != u->rec.offer_counter || version_cmp(&img.version, &u->rec.offer_version) != 0)
        return VIGIL_FW_REASON_BAD_IMAGE;
    /* Rollback protection, checked again here: the counter only ever grows. */
    if (img.security_counter < u->rec.security_counter) return VIGIL_FW_REASON_OLDER_VERSION;
    return VIGIL_FW_REASON_NONE;
}

/* Erases the sector at `off` of `dst` and copies it from `src` (same offset, or 0 for scratch). */
static int copy_sector(vigil_fwu_t *u, uint8_t src, uint32_t src_off, uint8_t dst, uint32_t dst_off)
{
    const vigil_flash_t *f = u->flash;
    uint32_t o;
    if (f->erase(f->ctx, dst, dst_off, f->sector_size) != 0) return -1;
    for (o = 0; o < f->sector_size; o += VIGIL_FWU_IO_BYTES) {
        if (f->read(f->ctx, src, src_off + o, u->buf, VIGIL_FWU_IO_BYTES) != 0) return -1;
        /* A fully erased piece needs no programming (and some flash forbids programming 0xFF twice). */
        if (!blank(u->buf, VIGIL_FWU_IO_BYTES) &&
            f->write(f->ctx, dst, dst_off + o, u->buf, VIGIL_FWU_IO_BYTES) != 0)
            return -1;
    }
    return 0;
}

/*
 * Swap-using-scratch (MCUboot's swap_scratch, simplified to one scratch sector): for every
 * sector i < swap_count: 0) P[i] -> scratch, 1) S[i] -> P[i], 2) scratch -> S[i]; the step
 * is persisted after each copy. Every step only reads sources that no earlier step of the
 * same sector changed, so re-running an interrupted step is always correct.
 */
static int swap_run(vigil_fwu_t *u)
{
    const uint32_t ss = u->flash->sector_size;
    while (u->rec.swap_sector < u->rec.swap_count) {
        const uint32_t off = (uint32_t)u->rec.swap_sector * ss;
        int rc;
        switch (u->rec.swap_step) {
        case 0: rc = copy_sector(u, VIGIL_AREA_PRIMARY, off, VIGIL_AREA_SCRATCH, 0); break;
        case 1: rc = copy_sector(u, VIGIL_AREA_SECONDARY, off, VIGIL_AREA_PRIMARY, off); break;
        default: rc = copy_sector(u, VIGIL_AREA_SCRATCH, 0, VIGIL_AREA_SECONDARY, off); break;
        }
        if (rc != 0) return -1;
        if (u->rec.swap_step == 2u) {
            u->rec.swap_step = 0;
            u->rec.swap_sector++;
        } else {
            u->rec.swap_step++;
        }
        if (persist(u) != 0) return -1;
    }
    return 0;
}

static uint16_t sectors_for(const vigil_fwu_t *u, uint32_t bytes)
{
    const uint32_t ss = u->flash->sector_size;
    return (uint16_t)((bytes + ss - 1u) / ss);
}

/* Swaps back the sectors named by the record and reports REVERTED with rec.reason. */
static vigil_boot_t revert(vigil_fwu_t *u)
{
    if (swap_run(u) != 0) return VIGIL_BOOT_FLASH_ERROR;
    u->rec.swap_op = VIGIL_SWAP_NONE;
    u->rec.state = VIGIL_FW_IDLE;
    u->rec.result = VIGIL_FW_RESULT_REVERTED;
    if (persist(u) != 0) return VIGIL_BOOT_FLASH_ERROR;
    read_running(u);
    return VIGIL_BOOT_REVERTED;
}

static void start_swap(vigil_fwu_t *u, uint8_t op, uint16_t count)
{
    u->rec.swap_op = op;
    u->rec.swap_sector = 0;
    u->rec.swap_step = 0;
    u->rec.swap_count = count;
}

/* ---- public: open / boot -------------------------------------------------------------- */

int vigil_fwu_open(vigil_fwu_t *u, const vigil_flash_t *f, uint32_t device_id)
{
    const uint32_t a = f->write_align;
    if (a == 0u || a > 32u || (a & (a - 1u)) != 0u) return -1;
    if (f->sector_size < 2u * VIGIL_FWU_RECORD_BYTES || f->sector_size % VIGIL_FWU_IO_BYTES != 0u) return -1;
    if (f->slot_size == 0u || f->slot_size % f->sector_size != 0u || f->slot_size / f->sector_size > 0xFFFFu)
        return -1;
    memset(u, 0, sizeof *u);
    u->flash = f;
    u->device_id = device_id;
    u->window = (uint8_t)VIGIL_FWU_WINDOW;
    u->max_chunk = (uint8_t)VIGIL_FW_MAX_CHUNK; /* 224 = 7 x 32: a multiple of every write_align */
    if (state_load(u) != 0) return -1;
    read_running(u);
    if (u->rec.state == VIGIL_FW_RECEIVING) {
        /* RAM was lost: resume at the persisted (sector-aligned) offset; that sector is erased again. */
        u->next_offset = u->rec.next_offset;
        u->erased_end = u->rec.next_offset;
        if (hash_secondary(u, u->next_offset) != 0) return -1;
    }
    return 0;
}

vigil_boot_t vigil_boot(vigil_fwu_t *u)
{
    vigil_boot_t r = VIGIL_BOOT_OK;
    if (u->rec.swap_op == VIGIL_SWAP_INSTALL) {
        /* Power was lost during an install: finish the sector in progress, then swap back the
         * sectors already exchanged. The old image runs again; the result says why. */
        if (u->rec.swap_step != 0u) {
            const uint16_t done = (uint16_t)(u->rec.swap_sector + 1u);
            const uint16_t count = u->rec.swap_count;
            u->rec.swap_count = done; /* run just this sector to its end */
            if (swap_run(u) != 0) return VIGIL_BOOT_FLASH_ERROR;
            u->rec.swap_count = count;
        }
        start_swap(u, VIGIL_SWAP_REVERT, u->rec.swap_sector);
        u->rec.reason = VIGIL_FW_REASON_INTERRUPTED;
        if (persist(u) != 0) return VIGIL_BOOT_FLASH_ERROR;
        r = revert(u);
    } else if (u->rec.swap_op == VIGIL_SWAP_REVERT) {
        r = revert(u); /* an interrupted revert always runs to its end */
    } else if (u->rec.state == VIGIL_FW_TESTING) {
        /* The trial image reset without confirming itself: swap the old one back. */
        start_swap(u, VIGIL_SWAP_REVERT, u->rec.swap_count);
        u->rec.reason = VIGIL_FW_REASON_NOT_CONFIRMED;
        if (persist(u) != 0) return VIGIL_BOOT_FLASH_ERROR;
        r = revert(u);
    } else if (u->rec.state == VIGIL_FW_READY) {
        /* Check the image in the slot again (it sat in flash across a reset), then install it. */
        const uint8_t why = check_secondary(u, false);
        if (why != VIGIL_FW_REASON_NONE) {
            u->rec.state = VIGIL_FW_IDLE;
            u->rec.result = VIGIL_FW_RESULT_REFUSED;
            u->rec.reason = why;
            if (persist(u) != 0) return VIGIL_BOOT_FLASH_ERROR;
            /* Nothing to jump to on a device that had only its bootloader (PRIMARY blank). */
            return u->running_valid ? VIGIL_BOOT_REFUSED : VIGIL_BOOT_NO_IMAGE;
        }
        {
            const uint32_t old = u->running_valid ? u->running.image_size : u->flash->slot_size;
            start_swap(u, VIGIL_SWAP_INSTALL, sectors_for(u, old > u->rec.image_size ? old : u->rec.image_size));
        }
        if (persist(u) != 0 || swap_run(u) != 0) return VIGIL_BOOT_FLASH_ERROR;
        u->rec.swap_op = VIGIL_SWAP_NONE;
        u->rec.state = VIGIL_FW_TESTING;
        if (persist(u) != 0) return VIGIL_BOOT_FLASH_ERROR;
        read_running(u);
        r = VIGIL_BOOT_TRIAL;
    }
    if (r == VIGIL_BOOT_FLASH_ERROR) return r;
    if (!u->running_valid) return VIGIL_BOOT_NO_IMAGE;
    /* Like MCUboot, the stored security counter follows the running image once it is confirmed
     * (the factory image too), so an image older than it can never be installed again. */
    if (u->rec.state != VIGIL_FW_TESTING && u->running.security_counter > u->rec.security_counter) {
        u->rec.security_counter = u->running.security_counter;
        if (persist(u) != 0) return VIGIL_BOOT_FLASH_ERROR;
    }
    return r;
}

int vigil_fwu_confirm(vigil_fwu_t *u)
{
    if (u->rec.state != VIGIL_FW_TESTING) return 0;
    u->rec.state = VIGIL_FW_IDLE;
    u->rec.result = VIGIL_FW_RESULT_INSTALLED;
    u->rec.reason = VIGIL_FW_REASON_NONE;
    if (u->running_valid && u->running.security_counter > u->rec.security_counter)
        u->rec.security_counter = u->running.security_counter;
    return persist(u);
}

/* ---- public: the transfer ------------------------------------------------------------- */

void vigil_fwu_status(const vigil_fwu_t *u, vigil_frame_t *out)
{
    vigil_fw_status_t *s = &out->u.fw_status;
    const bool idle = u->rec.state == VIGIL_FW_IDLE;
    memset(out, 0, sizeof *out);
    out->type = VIGIL_TYPE_FW_STATUS;
    s->device_id = u->device_id;
    s->state = u->rec.state;
    s->result = idle ? u->rec.result : (uint8_t)VIGIL_FW_RESULT_NONE;
    s->reason = idle ? u->rec.reason : (uint8_t)VIGIL_FW_REASON_NONE;
    s->window = u->window;
    s->release_id = u->rec.release_id;
    s->next_offset = u->rec.state == VIGIL_FW_RECEIVING ? u->next_offset : idle ? 0u : u->rec.image_size;
    s->slot_size = u->flash->slot_size;
    s->security_counter = u->rec.security_counter;
    s->version = u->running.version;
    s->max_chunk = u->max_chunk;
}

static vigil_fwu_action_t finish(vigil_fwu_t *u, uint8_t state, uint8_t result, uint8_t reason, vigil_frame_t *reply)
{
    u->rec.state = state;
    u->rec.result = result;
    u->rec.reason = reason;
    if (persist(u) != 0) {
        /* The flash refused the state write: report it without pretending it is stored. */
        u->rec.state = VIGIL_FW_IDLE;
        u->rec.result = VIGIL_FW_RESULT_REFUSED;
        u->rec.reason = VIGIL_FW_REASON_FLASH_ERROR;
    }
    vigil_fwu_status(u, reply);
    return VIGIL_FWU_REPLY;
}

static vigil_fwu_action_t on_offer(vigil_fwu_t *u, const vigil_fw_offer_t *o, vigil_frame_t *reply)
{
    vigil_fwu_record_t *r = &u->rec;
    const bool same = o->release_id == r->release_id && o->image_size == r->image_size &&
                      memcmp(o->sha256, r->sha256, VIGIL_SHA256_BYTES) == 0;
    if (r->state == VIGIL_FW_READY || r->state == VIGIL_FW_TESTING) {
        vigil_fwu_status(u, reply);
        if (!same) { /* another install is pending: refuse without touching it */
            reply->u.fw_status.release_id = o->release_id;
            reply->u.fw_status.result = VIGIL_FW_RESULT_REFUSED;
            reply->u.fw_status.reason = VIGIL_FW_REASON_BUSY;
        }
        return VIGIL_FWU_REPLY;
    }
    if (same && r->state == VIGIL_FW_RECEIVING) { /* resume (after a disconnect or a gateway restart) */
        vigil_fwu_status(u, reply);
        return VIGIL_FWU_REPLY;
    }
    if (same && r->state == VIGIL_FW_IDLE &&
        (r->result == VIGIL_FW_RESULT_INSTALLED || r->result == VIGIL_FW_RESULT_REVERTED ||
         r->result == VIGIL_FW_RESULT_REFUSED)) {
        vigil_fwu_status(u, reply); /* the outcome is known: say it again, do not restart */
        return VIGIL_FWU_REPLY;
    }
    /* A new transfer (replacing any partial one). */
    r->release_id = o->release_id;
    r->image_size = o->image_size;
    r->offer_counter = o->security_counter;
    r->offer_version = o->version;
    memcpy(r->sha256, o->sha256, VIGIL_SHA256_BYTES);
    r->next_offset = 0;
    if (o->image_size > u->flash->slot_size)
        return finish(u, VIGIL_FW_IDLE, VIGIL_FW_RESULT_REFUSED, VIGIL_FW_REASON_TOO_LARGE, reply);
    if (o->image_size < VIGIL_IMAGE_HEADER_BYTES)
        return finish(u, VIGIL_FW_IDLE, VIGIL_FW_RESULT_REFUSED, VIGIL_FW_REASON_BAD_IMAGE, reply);
    if (o->security_counter < r->security_counter ||
        (u->running_valid && version_cmp(&o->version, &u->running.version) <= 0))
        return finish(u, VIGIL_FW_IDLE, VIGIL_FW_RESULT_REFUSED, VIGIL_FW_REASON_OLDER_VERSION, reply);
    u->next_offset = 0;
    u->erased_end = 0;
    u->write_failures = 0;
    u->failed_at = 0;
    vigil_sha256_init(&u->sha);
    return finish(u, VIGIL_FW_RECEIVING, VIGIL_FW_RESULT_NONE, VIGIL_FW_REASON_NONE, reply);
}

static vigil_fwu_action_t ack(const vigil_fwu_t *u, uint8_t status, vigil_frame_t *reply)
{
    memset(reply, 0, sizeof *reply);
    reply->type = VIGIL_TYPE_FW_CHUNK_ACK;
    reply->u.fw_chunk_ack.device_id = u->device_id;
    reply->u.fw_chunk_ack.release_id = u->rec.release_id;
    reply->u.fw_chunk_ack.next_offset = u->next_offset;
    reply->u.fw_chunk_ack.status = status;
    return VIGIL_FWU_REPLY;
}

/* Writes and reads back one chunk; 0 ok, 1 read-back mismatch, -1 flash error. */
static int write_chunk(vigil_fwu_t *u, const vigil_fw_chunk_t *c)
{
    const vigil_flash_t *f = u->flash;
    const uint32_t n = c->data_len, a = f->write_align;
    const uint32_t body = n - n % a, end = c->offset + n;
    const uint32_t padded = (end + a - 1u) / a * a;
    uint32_t crc = 0, o;
    while (u->erased_end < padded) { /* erase lazily, one sector ahead of the data */
        if (f->erase(f->ctx, VIGIL_AREA_SECONDARY, u->erased_end, f->sector_size) != 0) return -1;
        u->erased_end += f->sector_size;
    }
    if (body > 0u && f->write(f->ctx, VIGIL_AREA_SECONDARY, c->offset, c->data, body) != 0) return -1;
    if (n > body) { /* the image's last bytes: pad to the program unit with erased bytes */
        memset(u->buf, 0xFF, a);
        memcpy(u->buf, c->data + body, n - body);
        if (f->write(f->ctx, VIGIL_AREA_SECONDARY, c->offset + body, u->buf, a) != 0) return -1;
    }
    /* Read back: the chunk CRC travels with the data to the flash (PROTOCOL.md, FW_CHUNK). */
    for (o = 0; o < n; o += VIGIL_FWU_IO_BYTES) {
        const uint32_t k = n - o < VIGIL_FWU_IO_BYTES ? n - o : VIGIL_FWU_IO_BYTES;
        if (f->read(f->ctx, VIGIL_AREA_SECONDARY, c->offset + o, u->buf, k) != 0) return -1;
        crc = vigil_crc32_update(crc, u->buf, k);
    }
    return crc == vigil_crc32(c->data, n) ? 0 : 1;
}

static vigil_fwu_action_t on_chunk(vigil_fwu_t *u, const vigil_fw_chunk_t *c, vigil_frame_t *reply)
{
    const uint32_t ss = u->flash->sector_size;
    uint32_t end;
    int rc;
    if (u->rec.state != VIGIL_FW_RECEIVING || c->release_id != u->rec.release_id) {
        vigil_fwu_status(u, reply); /* not receiving this release: tell the gateway where we are */
        return VIGIL_FWU_REPLY;
    }
    if (c->offset != u->next_offset) return ack(u, VIGIL_FW_ACK_OUT_OF_ORDER, reply);
    end = c->offset + c->data_len; /* no overflow: the decoder bounds offset + len by 2^32 */
    if (end > u->rec.image_size || (c->data_len != u->max_chunk && end != u->rec.image_size))
        return ack(u, VIGIL_FW_ACK_BAD_LENGTH, reply);
    rc = write_chunk(u, c);
    if (rc < 0) return finish(u, VIGIL_FW_IDLE, VIGIL_FW_RESULT_REFUSED, VIGIL_FW_REASON_FLASH_ERROR, reply);
    if (rc > 0) {
        /* Programmed bytes cannot be rewritten: restart at this sector, which is erased again. */
        const uint32_t s0 = c->offset - c->offset % ss;
        u->failed_at = c->offset;
        if (++u->write_failures >= VIGIL_FWU_MAX_WRITE_FAILURES)
            return finish(u, VIGIL_FW_IDLE, VIGIL_FW_RESULT_REFUSED, VIGIL_FW_REASON_FLASH_ERROR, reply);
        u->next_offset = s0;
        u->erased_end = s0;
        if (hash_secondary(u, s0) != 0)
            return finish(u, VIGIL_FW_IDLE, VIGIL_FW_RESULT_REFUSED, VIGIL_FW_REASON_FLASH_ERROR, reply);
        return ack(u, VIGIL_FW_ACK_WRITE_FAILED, reply);
    }
    /* Chunks below the failed one, written again after the rewind, prove nothing about its cell
     * (PROTOCOL.md FW_CHUNK, revision 1.4): only one at or past it resets the count. */
    if (c->offset >= u->failed_at) u->write_failures = 0;
    vigil_sha256_update(&u->sha, c->data, c->data_len);
    u->next_offset = end;
    if (end == u->rec.image_size) {
        const uint8_t why = check_secondary(u, true);
        if (why != VIGIL_FW_REASON_NONE) return finish(u, VIGIL_FW_IDLE, VIGIL_FW_RESULT_REFUSED, why, reply);
        u->rec.next_offset = end;
        (void)finish(u, VIGIL_FW_READY, VIGIL_FW_RESULT_NONE, VIGIL_FW_REASON_NONE, reply);
        return u->rec.state == VIGIL_FW_READY ? VIGIL_FWU_REPLY_REBOOT : VIGIL_FWU_REPLY;
    }
    if (end / ss > c->offset / ss) { /* a sector is complete: persist the resume point */
        u->rec.next_offset = end - end % ss;
        if (persist(u) != 0)
            return finish(u, VIGIL_FW_IDLE, VIGIL_FW_RESULT_REFUSED, VIGIL_FW_REASON_FLASH_ERROR, reply);
    }
    return ack(u, VIGIL_FW_ACK_OK, reply);
}

static vigil_fwu_action_t on_abort(vigil_fwu_t *u, const vigil_fw_abort_t *a, vigil_frame_t *reply)
{
    const uint8_t st = u->rec.state;
    if (a->release_id == u->rec.release_id &&
        (st == VIGIL_FW_RECEIVING || st == VIGIL_FW_READY || (st == VIGIL_FW_IDLE && u->rec.result != VIGIL_FW_RESULT_NONE)))
        return finish(u, VIGIL_FW_IDLE, VIGIL_FW_RESULT_ABORTED, VIGIL_FW_REASON_NONE, reply);
    vigil_fwu_status(u, reply); /* nothing to abort (or a trial, which only the image can end) */
    return VIGIL_FWU_REPLY;
}

vigil_fwu_action_t vigil_fwu_handle(vigil_fwu_t *u, const vigil_frame_t *in, vigil_frame_t *reply)
{
    switch (in->type) {
    case VIGIL_TYPE_FW_OFFER:
        if (in->u.fw_offer.device_id != u->device_id) return VIGIL_FWU_NONE;
        return on_offer(u, &in->u.fw_offer, reply);
    case VIGIL_TYPE_FW_CHUNK:
        if (in->u.fw_chunk.device_id != u->device_id) return VIGIL_FWU_NONE;
        return on_chunk(u, &in->u.fw_chunk, reply);
    case VIGIL_TYPE_FW_ABORT:
        if (in->u.fw_abort.device_id != u->device_id) return VIGIL_FWU_NONE;
        return on_abort(u, &in->u.fw_abort, reply);
    default: return VIGIL_FWU_NONE;
    }
}
