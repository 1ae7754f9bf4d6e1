/*
 * Vigil firmware update for MCUs (hardware/PROTOCOL.md, "Firmware update", protocol v1.1):
 * the device half of the transfer and a bootloader in the spirit of MCUboot's swap-using-
 * scratch with test (trial) boots.
 *
 * - Receives an offered image into the SECONDARY slot chunk by chunk, hashing it with a
 *   streaming SHA-256 as it arrives; resumable by offset after a disconnect (RAM) or a power
 *   cut (a persisted, sector-aligned offset).
 * - Verifies the whole image against the offered SHA-256 and its header against the offer,
 *   refuses images whose security counter is below the device's (rollback protection) or
 *   whose version is not above the running one.
 * - vigil_boot() (the bootloader, run at every reset) swaps SECONDARY and PRIMARY sector by
 *   sector through one SCRATCH sector, persisting every step, so a power cut at any point is
 *   recovered on the next boot. The new image then runs as a trial: it must call
 *   vigil_fwu_confirm() or the next reset swaps the old image back. An install interrupted by
 *   a power cut is rolled back (the old image runs, the result is REVERTED / INTERRUPTED).
 * - State lives in an append-only log of 96-byte CRC-protected records in two STATE sectors
 *   (ping-pong), so a torn write or an interrupted erase never loses the last good record.
 *
 * No malloc, no stdio; all RAM is the caller's vigil_fwu_t (see README for its size). Flash
 * access goes through vigil_flash_t, which the firmware implements for its part (and the host
 * test fakes, with power cuts at every flash operation).
 */
#ifndef VIGIL_FWU_H
#define VIGIL_FWU_H

#include "vigil_frame.h"
#include "vigil_sha256.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Flash areas. PRIMARY and SECONDARY are `slot_size` bytes, SCRATCH one sector, STATE two. */
typedef enum { VIGIL_AREA_PRIMARY = 0, VIGIL_AREA_SECONDARY = 1, VIGIL_AREA_SCRATCH = 2, VIGIL_AREA_STATE = 3 } vigil_area_t;

/**
 * The flash the update code runs on. Every function returns 0 on success and non-zero on a
 * failure. `write` programs erased bytes only (offset and length multiples of write_align);
 * `erase` takes whole sectors and leaves them 0xFF. Offsets are relative to the area.
 */
typedef struct {
    int (*read)(void *ctx, uint8_t area, uint32_t off, uint8_t *buf, uint32_t len);
    int (*write)(void *ctx, uint8_t area, uint32_t off, const uint8_t *buf, uint32_t len);
    int (*erase)(void *ctx, uint8_t area, uint32_t off, uint32_t len);
    void *ctx;
    uint32_t slot_size;   /* multiple of sector_size */
    uint32_t sector_size; /* erase unit of every area; multiple of 64 and at least 2 records (192 B) */
    uint32_t write_align; /* program unit: 1, 2, 4, 8, 16 or 32 bytes */
} vigil_flash_t;

/* ---- image format (PROTOCOL.md, "Firmware image") ------------------------------------- */
#define VIGIL_IMAGE_MAGIC 0x57464756u /* bytes "VGFW" */
#define VIGIL_IMAGE_HEADER_BYTES 32u

typedef struct {
    vigil_fw_version_t version;
    uint32_t security_counter;
    uint32_t image_size; /* header + body */
} vigil_image_info_t;

/** Parses a 32-byte image header; false when the magic, header size or reserved bytes are wrong. */
bool vigil_image_parse(const uint8_t *hdr, vigil_image_info_t *out);

/* ---- persistent state ----------------------------------------------------------------- */
#define VIGIL_FWU_RECORD_BYTES 96u
#define VIGIL_FWU_IO_BYTES 64u /* copy/hash buffer; divides sector_size, multiple of write_align */
#ifndef VIGIL_FWU_WINDOW
#define VIGIL_FWU_WINDOW 4u /* chunks in flight announced in FW_STATUS; size the UART RX buffer for it */
#endif
#ifndef VIGIL_FWU_MAX_WRITE_FAILURES
#define VIGIL_FWU_MAX_WRITE_FAILURES 3u /* read-back failures before FLASH_ERROR (reset only past the failed chunk) */
#endif

typedef enum { VIGIL_SWAP_NONE = 0, VIGIL_SWAP_INSTALL = 1, VIGIL_SWAP_REVERT = 2 } vigil_swap_op_t;

/** One state record (serialised little-endian with a CRC-32; see vigil_fwu.c). */
typedef struct {
    uint32_t seq;
    uint8_t state;  /* vigil_fw_state_t */
    uint8_t result; /* vigil_fw_result_t of release_id (state IDLE) */
    uint8_t reason; /* vigil_fw_reason_t */
    uint8_t swap_op;
    uint16_t swap_sector; /* next sector to swap */
    uint8_t swap_step;    /* 0: copy P->scratch, 1: copy S->P, 2: copy scratch->S */
    uint16_t swap_count;  /* sectors the swap covers */
    uint32_t release_id;
    uint32_t image_size;
    uint32_t next_offset;      /* persisted receive progress (sector-aligned) */
    uint32_t security_counter; /* monotonic: never decreases */
    uint32_t offer_counter;
    vigil_fw_version_t offer_version;
    uint8_t sha256[VIGIL_SHA256_BYTES];
} vigil_fwu_record_t;

/** All state of the update code (RAM). One instance; the caller owns it. */
typedef struct {
    const vigil_flash_t *flash;
    vigil_fwu_record_t rec;  /* last persisted record */
    uint32_t state_off;      /* next free record slot in the active STATE sector */
    uint8_t state_sector;    /* active STATE sector (0 or 1) */
    uint8_t write_failures;  /* read-back failures since a chunk at or past failed_at read back */
    uint8_t window;
    uint8_t max_chunk;
    uint32_t device_id;
    uint32_t next_offset;    /* receive progress in RAM (>= rec.next_offset) */
    uint32_t erased_end;     /* SECONDARY is erased below this offset (for this transfer) */
    uint32_t failed_at;      /* offset of the chunk that failed to read back last */
    vigil_image_info_t running;
    bool running_valid;      /* PRIMARY holds a parseable header */
    vigil_sha256_t sha;
    uint8_t buf[VIGIL_FWU_IO_BYTES];
} vigil_fwu_t;

/** What to do after vigil_fwu_handle(). */
typedef enum {
    VIGIL_FWU_NONE = 0,        /* not an update frame for this device: nothing to send */
    VIGIL_FWU_REPLY = 1,       /* send *reply (FW_STATUS or FW_CHUNK_ACK) */
    VIGIL_FWU_REPLY_REBOOT = 2 /* send *reply, then reset soon: the verified image is installed at boot */
} vigil_fwu_action_t;

/** What vigil_boot() did. In every case except NO_IMAGE / FLASH_ERROR, jump to PRIMARY. */
typedef enum {
    VIGIL_BOOT_OK = 0,          /* nothing to do */
    VIGIL_BOOT_TRIAL = 1,       /* a new image was swapped in; it runs until it confirms or resets */
    VIGIL_BOOT_REVERTED = 2,    /* the old image was swapped back (not confirmed, or interrupted) */
    VIGIL_BOOT_REFUSED = 3,     /* a pending image failed its check in the slot: not installed (PRIMARY
                                   still holds the running image; a blank PRIMARY gives NO_IMAGE) */
    VIGIL_BOOT_NO_IMAGE = 4,    /* PRIMARY has no valid image header */
    VIGIL_BOOT_FLASH_ERROR = 5  /* a flash operation failed; state is unchanged where it failed */
} vigil_boot_t;

/**
 * Loads the state log and the running image's header; when a transfer is in progress,
 * re-hashes what the slot holds (RAM was lost) so it resumes at the persisted offset.
 * Returns 0, or -1 for an unusable flash geometry or a flash read error.
 */
int vigil_fwu_open(vigil_fwu_t *u, const vigil_flash_t *flash, uint32_t device_id);

/** The bootloader: finishes or rolls back swaps, installs a READY image, reverts an unconfirmed trial. */
vigil_boot_t vigil_boot(vigil_fwu_t *u);

/**
 * Consumes a decoded gateway frame (FW_OFFER, FW_CHUNK, FW_ABORT addressed to this device) and
 * fills *reply. Any other frame returns VIGIL_FWU_NONE. `in` and `reply` must not alias.
 */
vigil_fwu_action_t vigil_fwu_handle(vigil_fwu_t *u, const vigil_frame_t *in, vigil_frame_t *reply);

/** FW_STATUS of the current state (send it after every HELLO). */
void vigil_fwu_status(const vigil_fwu_t *u, vigil_frame_t *out);

/**
 * The running trial image confirms itself (after its self-test): the install becomes
 * permanent, the security counter rises to the image's. Returns 0 (also when there is no
 * trial) or -1 on a flash error.
 */
int vigil_fwu_confirm(vigil_fwu_t *u);

/** True while the running image is an unconfirmed trial. */
static inline bool vigil_fwu_trial(const vigil_fwu_t *u) { return u->rec.state == VIGIL_FW_TESTING; }

#ifdef __cplusplus
}
#endif

#endif /* VIGIL_FWU_H */
