/*
 * Host test of the firmware update code and bootloader (vigil_fwu.c) and of SHA-256, on a
 * fake flash that enforces the rules of NOR flash (program erased bytes only, aligned
 * writes, whole-sector erases) and can cut the power at any flash operation: the operation is
 * left half done and control jumps back to the test (longjmp), which "reboots" with fresh
 * RAM. Build and run: make -C hardware/firmware-ref test. Last line: "N passed, 0 failed".
 */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../vigil_fwu.h"

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

/* ---- fake flash ----------------------------------------------------------------------- */

#define SS 1024u          /* sector */
#define NSEC 16u
#define SLOT (NSEC * SS)  /* 16 KiB slots */
#define ALIGN 8u

static uint8_t mem_primary[SLOT], mem_secondary[SLOT], mem_scratch[SS], mem_state[2u * SS];
static uint8_t *const areas[4] = {mem_primary, mem_secondary, mem_scratch, mem_state};
static const uint32_t area_size[4] = {SLOT, SLOT, SS, 2u * SS};

static long ops_left = -1;       /* flash operations until the power cut; -1 = never */
static unsigned long op_count;   /* flash operations (write + erase) so far */
static jmp_buf power_cut;
static int rule_violations;      /* programming a non-erased byte, misaligned access */
static long corrupt_write_at = -1; /* flip a bit in the n-th SECONDARY write (read-back test) */
static long bad_cell = -1;         /* a SECONDARY byte that never reads back what was written */
static long secondary_writes;
static unsigned long state_writes, state_erases; /* wear of the STATE sectors */

static int power_tick(void)
{
    op_count++;
    if (ops_left < 0) return 0;
    return ops_left-- == 0;
}

static int fl_read(void *ctx, uint8_t area, uint32_t off, uint8_t *buf, uint32_t len)
{
    (void)ctx;
    if (area > 3u || off + len > area_size[area]) return -1;
    memcpy(buf, areas[area] + off, len);
    return 0;
}

static int fl_write(void *ctx, uint8_t area, uint32_t off, const uint8_t *buf, uint32_t len)
{
    uint32_t i;
    (void)ctx;
    if (area > 3u || off + len > area_size[area] || off % ALIGN || len % ALIGN) {
        rule_violations++;
        return -1;
    }
    for (i = 0; i < len; i++)
        if (areas[area][off + i] != 0xFFu) {
            rule_violations++;
            return -1;
        }
    if (power_tick()) {
        memcpy(areas[area] + off, buf, len / 2u); /* torn write */
        longjmp(power_cut, 1);
    }
    memcpy(areas[area] + off, buf, len);
    if (area == VIGIL_AREA_STATE) state_writes++;
    if (area == VIGIL_AREA_SECONDARY && secondary_writes++ == corrupt_write_at) areas[area][off] ^= 0x10u;
    if (area == VIGIL_AREA_SECONDARY && bad_cell >= (long)off && bad_cell < (long)(off + len))
        areas[area][bad_cell] ^= 0x10u;
    return 0;
}

static int fl_erase(void *ctx, uint8_t area, uint32_t off, uint32_t len)
{
    (void)ctx;
    if (area > 3u || off + len > area_size[area] || off % SS || len % SS) {
        rule_violations++;
        return -1;
    }
    if (power_tick()) {
        memset(areas[area] + off, 0xFF, len / 3u); /* interrupted erase: the rest keeps old bytes */
        longjmp(power_cut, 1);
    }
    memset(areas[area] + off, 0xFF, len);
    if (area == VIGIL_AREA_STATE) state_erases++;
    return 0;
}

static const vigil_flash_t flash = {fl_read, fl_write, fl_erase, NULL, SLOT, SS, ALIGN};

/* ---- images --------------------------------------------------------------------------- */

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* A firmware image: 32-byte header (PROTOCOL.md, "Firmware image"), then seeded bytes. */
static void make_image(uint8_t *img, uint32_t size, uint8_t major, uint8_t minor, uint16_t patch, uint32_t counter,
                       uint32_t seed)
{
    uint32_t i, x = seed * 2654435761u + 1u;
    memset(img, 0, VIGIL_IMAGE_HEADER_BYTES);
    put32(img, VIGIL_IMAGE_MAGIC);
    img[4] = VIGIL_IMAGE_HEADER_BYTES;
    img[6] = major;
    img[7] = minor;
    img[8] = (uint8_t)patch;
    img[9] = (uint8_t)(patch >> 8);
    put32(img + 12, counter);
    put32(img + 16, size);
    for (i = VIGIL_IMAGE_HEADER_BYTES; i < size; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        img[i] = (uint8_t)x;
    }
}

static void sha(const uint8_t *b, uint32_t n, uint8_t *out)
{
    vigil_sha256_t s;
    vigil_sha256_init(&s);
    vigil_sha256_update(&s, b, n);
    vigil_sha256_final(&s, out);
}

static uint8_t factory[SLOT], img_new[SLOT], img_newer[SLOT];
#define FACTORY_SIZE 9000u /* v1.0.0, counter 1 */
#define NEW_SIZE 12345u    /* v1.1.0, counter 2 */

/* A factory-fresh device: v1.0.0 in PRIMARY, everything else erased. */
static void factory_reset(void)
{
    memset(mem_primary, 0xFF, sizeof mem_primary);
    memset(mem_secondary, 0xFF, sizeof mem_secondary);
    memset(mem_scratch, 0xFF, sizeof mem_scratch);
    memset(mem_state, 0xFF, sizeof mem_state);
    memcpy(mem_primary, factory, FACTORY_SIZE);
    ops_left = -1;
    corrupt_write_at = -1;
    bad_cell = -1;
    secondary_writes = 0;
}

static vigil_fw_offer_t offer_for(const uint8_t *img, uint32_t size, uint32_t release)
{
    vigil_fw_offer_t o;
    vigil_image_info_t info;
    memset(&o, 0, sizeof o);
    if (!vigil_image_parse(img, &info)) abort();
    o.device_id = 42;
    o.release_id = release;
    o.version = info.version;
    o.security_counter = info.security_counter;
    o.image_size = size;
    sha(img, size, o.sha256);
    return o;
}

static vigil_fwu_t u;
static vigil_frame_t in, reply;

/* "Power on": fresh RAM, open, run the bootloader. */
static vigil_boot_t power_on(void)
{
    memset(&u, 0xA5, sizeof u);
    CHECK(vigil_fwu_open(&u, &flash, 42) == 0);
    return vigil_boot(&u);
}

static vigil_fwu_action_t send_offer(const vigil_fw_offer_t *o)
{
    in.type = VIGIL_TYPE_FW_OFFER;
    in.u.fw_offer = *o;
    return vigil_fwu_handle(&u, &in, &reply);
}

static vigil_fwu_action_t send_chunk(uint32_t release, const uint8_t *img, uint32_t off, uint32_t len)
{
    in.type = VIGIL_TYPE_FW_CHUNK;
    in.u.fw_chunk.device_id = 42;
    in.u.fw_chunk.release_id = release;
    in.u.fw_chunk.offset = off;
    in.u.fw_chunk.data_len = (uint8_t)len;
    memcpy(in.u.fw_chunk.data, img + off, len);
    return vigil_fwu_handle(&u, &in, &reply);
}

/*
 * The gateway's side of a transfer, stop-and-wait: offer, then chunks from wherever the device
 * says, until it answers with an FW_STATUS. Returns the last action (REPLY_REBOOT on success).
 */
static vigil_fwu_action_t transfer(const uint8_t *img, const vigil_fw_offer_t *o)
{
    vigil_fwu_action_t a = send_offer(o);
    uint32_t off;
    unsigned guard = 0;
    if (a != VIGIL_FWU_REPLY || reply.type != VIGIL_TYPE_FW_STATUS || reply.u.fw_status.state != VIGIL_FW_RECEIVING)
        return a;
    off = reply.u.fw_status.next_offset;
    for (;;) {
        const uint32_t len = o->image_size - off < VIGIL_FW_MAX_CHUNK ? o->image_size - off : VIGIL_FW_MAX_CHUNK;
        a = send_chunk(o->release_id, img, off, len);
        if (reply.type == VIGIL_TYPE_FW_STATUS || ++guard > 10000u) return a;
        off = reply.u.fw_chunk_ack.next_offset;
    }
}

static bool primary_holds(const uint8_t *img, uint32_t size) { return memcmp(mem_primary, img, size) == 0; }

/* ---- tests ---------------------------------------------------------------------------- */

static void test_sha256(void)
{
    /* FIPS 180-4 examples (NIST CSRC "Example Algorithms", SHA256.pdf) */
    static const struct { const char *msg; const char *hex; } kat[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    uint8_t d[32];
    char hex[65];
    unsigned i, k;
    for (i = 0; i < 3u; i++) {
        sha((const uint8_t *)kat[i].msg, (uint32_t)strlen(kat[i].msg), d);
        for (k = 0; k < 32u; k++) sprintf(hex + 2u * k, "%02x", d[k]);
        CHECK(strcmp(hex, kat[i].hex) == 0);
    }
    /* one million 'a' fed in uneven pieces */
    {
        static uint8_t a[1001];
        vigil_sha256_t s;
        memset(a, 'a', sizeof a);
        vigil_sha256_init(&s);
        for (i = 0; i < 1000u; i++) vigil_sha256_update(&s, a, i % 2u ? 999u : 1001u);
        vigil_sha256_final(&s, d);
        for (k = 0; k < 32u; k++) sprintf(hex + 2u * k, "%02x", d[k]);
        CHECK(strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0") == 0);
    }
}

static void test_image_header(void)
{
    vigil_image_info_t info;
    uint8_t h[32];
    make_image(h, 32, 2, 5, 300, 77, 0);
    put32(h + 16, 5000);
    CHECK(vigil_image_parse(h, &info) && info.version.major == 2 && info.version.minor == 5);
    CHECK(info.version.patch == 300u && info.security_counter == 77u && info.image_size == 5000u);
    h[0] ^= 1u;
    CHECK(!vigil_image_parse(h, &info));
    h[0] ^= 1u;
    h[25] = 1; /* reserved */
    CHECK(!vigil_image_parse(h, &info));
    h[25] = 0;
    put32(h + 16, 31); /* smaller than its header */
    CHECK(!vigil_image_parse(h, &info));
}

static void test_clean_update(void)
{
    vigil_fw_offer_t o = offer_for(img_new, NEW_SIZE, 7);
    factory_reset();
    CHECK(power_on() == VIGIL_BOOT_OK);
    vigil_fwu_status(&u, &reply);
    CHECK(reply.u.fw_status.state == VIGIL_FW_IDLE && reply.u.fw_status.version.minor == 0u);
    CHECK(reply.u.fw_status.max_chunk == 224u && reply.u.fw_status.window == VIGIL_FWU_WINDOW);
    CHECK(reply.u.fw_status.slot_size == SLOT && reply.u.fw_status.security_counter == 1u); /* factory image's */
    CHECK(transfer(img_new, &o) == VIGIL_FWU_REPLY_REBOOT);
    CHECK(reply.u.fw_status.state == VIGIL_FW_READY && reply.u.fw_status.next_offset == NEW_SIZE);
    CHECK(memcmp(mem_secondary, img_new, NEW_SIZE) == 0);
    /* reset: the bootloader swaps, the new image runs as a trial */
    CHECK(power_on() == VIGIL_BOOT_TRIAL);
    CHECK(primary_holds(img_new, NEW_SIZE) && memcmp(mem_secondary, factory, FACTORY_SIZE) == 0);
    CHECK(vigil_fwu_trial(&u) && u.running.version.minor == 1u);
    vigil_fwu_status(&u, &reply);
    CHECK(reply.u.fw_status.state == VIGIL_FW_TESTING && reply.u.fw_status.release_id == 7u);
    /* the image confirms itself: INSTALLED, counter raised */
    CHECK(vigil_fwu_confirm(&u) == 0 && !vigil_fwu_trial(&u));
    vigil_fwu_status(&u, &reply);
    CHECK(reply.u.fw_status.result == VIGIL_FW_RESULT_INSTALLED && reply.u.fw_status.security_counter == 2u);
    CHECK(power_on() == VIGIL_BOOT_OK && primary_holds(img_new, NEW_SIZE));
    /* the offer is idempotent once the outcome is known */
    CHECK(send_offer(&o) == VIGIL_FWU_REPLY && reply.u.fw_status.result == VIGIL_FW_RESULT_INSTALLED);
    /* rollback protection: the factory image (counter 1, v1.0.0) is refused */
    {
        vigil_fw_offer_t old = offer_for(factory, FACTORY_SIZE, 8);
        CHECK(send_offer(&old) == VIGIL_FWU_REPLY && reply.u.fw_status.result == VIGIL_FW_RESULT_REFUSED);
        CHECK(reply.u.fw_status.reason == VIGIL_FW_REASON_OLDER_VERSION && reply.u.fw_status.release_id == 8u);
    }
    CHECK(rule_violations == 0);
}

static void test_not_confirmed_reverts(void)
{
    vigil_fw_offer_t o = offer_for(img_new, NEW_SIZE, 7);
    factory_reset();
    power_on();
    CHECK(transfer(img_new, &o) == VIGIL_FWU_REPLY_REBOOT);
    CHECK(power_on() == VIGIL_BOOT_TRIAL);
    /* the bad image never confirms; the watchdog resets the MCU */
    CHECK(power_on() == VIGIL_BOOT_REVERTED);
    CHECK(primary_holds(factory, FACTORY_SIZE) && u.running.version.minor == 0u);
    vigil_fwu_status(&u, &reply);
    CHECK(reply.u.fw_status.state == VIGIL_FW_IDLE && reply.u.fw_status.result == VIGIL_FW_RESULT_REVERTED);
    CHECK(reply.u.fw_status.reason == VIGIL_FW_REASON_NOT_CONFIRMED && reply.u.fw_status.release_id == 7u);
    CHECK(reply.u.fw_status.security_counter == 1u); /* the factory image's, never the unconfirmed one's */
    CHECK(power_on() == VIGIL_BOOT_OK && primary_holds(factory, FACTORY_SIZE));
    /* re-offering the same release reports the outcome; after an abort it starts afresh */
    CHECK(send_offer(&o) == VIGIL_FWU_REPLY && reply.u.fw_status.result == VIGIL_FW_RESULT_REVERTED);
    in.type = VIGIL_TYPE_FW_ABORT;
    in.u.fw_abort.device_id = 42;
    in.u.fw_abort.release_id = 7;
    in.u.fw_abort.reason = VIGIL_FW_ABORT_OPERATOR;
    CHECK(vigil_fwu_handle(&u, &in, &reply) == VIGIL_FWU_REPLY && reply.u.fw_status.result == VIGIL_FW_RESULT_ABORTED);
    CHECK(send_offer(&o) == VIGIL_FWU_REPLY && reply.u.fw_status.state == VIGIL_FW_RECEIVING);
    CHECK(reply.u.fw_status.next_offset == 0u);
    CHECK(rule_violations == 0);
}

static void test_refusals(void)
{
    vigil_fw_offer_t o;
    factory_reset();
    power_on();
    /* hash mismatch: detected when the last chunk arrives */
    o = offer_for(img_new, NEW_SIZE, 9);
    o.sha256[5] ^= 1u;
    CHECK(transfer(img_new, &o) == VIGIL_FWU_REPLY);
    CHECK(reply.u.fw_status.result == VIGIL_FW_RESULT_REFUSED && reply.u.fw_status.reason == VIGIL_FW_REASON_HASH_MISMATCH);
    CHECK(power_on() == VIGIL_BOOT_OK && primary_holds(factory, FACTORY_SIZE));
    /* older / same version than running: refused at the offer */
    o = offer_for(factory, FACTORY_SIZE, 10);
    CHECK(send_offer(&o) == VIGIL_FWU_REPLY && reply.u.fw_status.reason == VIGIL_FW_REASON_OLDER_VERSION);
    /* a newer version with a security counter below the device's (the factory image's, 1) */
    {
        static uint8_t low[SLOT];
        make_image(low, NEW_SIZE, 1, 5, 0, 0, 5);
        o = offer_for(low, NEW_SIZE, 15);
        CHECK(send_offer(&o) == VIGIL_FWU_REPLY && reply.u.fw_status.reason == VIGIL_FW_REASON_OLDER_VERSION);
    }
    /* too large */
    o = offer_for(img_new, NEW_SIZE, 11);
    o.image_size = SLOT + 1u;
    CHECK(send_offer(&o) == VIGIL_FWU_REPLY && reply.u.fw_status.reason == VIGIL_FW_REASON_TOO_LARGE);
    /* smaller than a header */
    o.image_size = 16;
    CHECK(send_offer(&o) == VIGIL_FWU_REPLY && reply.u.fw_status.reason == VIGIL_FW_REASON_BAD_IMAGE);
    /* header inconsistent with the offer (hash matches the bytes, the version does not) */
    o = offer_for(img_new, NEW_SIZE, 12);
    o.version.patch = 9;
    CHECK(transfer(img_new, &o) == VIGIL_FWU_REPLY && reply.u.fw_status.reason == VIGIL_FW_REASON_BAD_IMAGE);
    /* a bad magic with a matching hash */
    {
        static uint8_t bad[SLOT];
        memcpy(bad, img_new, NEW_SIZE);
        bad[0] = 'X';
        o = offer_for(img_new, NEW_SIZE, 13);
        sha(bad, NEW_SIZE, o.sha256);
        CHECK(transfer(bad, &o) == VIGIL_FWU_REPLY && reply.u.fw_status.reason == VIGIL_FW_REASON_BAD_IMAGE);
    }
    CHECK(u.rec.state == VIGIL_FW_IDLE && power_on() == VIGIL_BOOT_OK && primary_holds(factory, FACTORY_SIZE));
    /* frames for another device are not ours */
    o = offer_for(img_new, NEW_SIZE, 14);
    o.device_id = 43;
    CHECK(send_offer(&o) == VIGIL_FWU_NONE);
    in.type = VIGIL_TYPE_DATA;
    CHECK(vigil_fwu_handle(&u, &in, &reply) == VIGIL_FWU_NONE);
    CHECK(rule_violations == 0);
}

/* A device with only its bootloader (PRIMARY blank) whose first image fails its boot-time re-check:
 * NO_IMAGE (stay in the bootloader), never REFUSED, which tells the caller to jump to PRIMARY. */
static void test_refused_on_blank_primary(void)
{
    vigil_fw_offer_t o = offer_for(img_new, NEW_SIZE, 12);
    factory_reset();
    memset(mem_primary, 0xFF, sizeof mem_primary);
    CHECK(power_on() == VIGIL_BOOT_NO_IMAGE && !u.running_valid);
    CHECK(transfer(img_new, &o) == VIGIL_FWU_REPLY_REBOOT);
    mem_secondary[500] ^= 0x01u; /* the image rots in flash across the reset */
    CHECK(power_on() == VIGIL_BOOT_NO_IMAGE);
    CHECK(u.rec.state == VIGIL_FW_IDLE && u.rec.result == VIGIL_FW_RESULT_REFUSED);
    CHECK(mem_primary[0] == 0xFFu); /* nothing was installed */
    /* the refused release stays refused; another release of a good copy installs */
    CHECK(transfer(img_new, &o) == VIGIL_FWU_REPLY && reply.u.fw_status.result == VIGIL_FW_RESULT_REFUSED);
    o = offer_for(img_new, NEW_SIZE, 13);
    CHECK(transfer(img_new, &o) == VIGIL_FWU_REPLY_REBOOT);
    CHECK(power_on() == VIGIL_BOOT_TRIAL && primary_holds(img_new, NEW_SIZE));
}

static void test_chunk_rules_and_resume(void)
{
    vigil_fw_offer_t o = offer_for(img_new, NEW_SIZE, 7);
    uint32_t off = 0;
    unsigned i;
    factory_reset();
    power_on();
    CHECK(send_offer(&o) == VIGIL_FWU_REPLY && reply.u.fw_status.state == VIGIL_FW_RECEIVING);
    for (i = 0; i < 10u; i++, off += 224u) {
        CHECK(send_chunk(7, img_new, off, 224) == VIGIL_FWU_REPLY);
        CHECK(reply.type == VIGIL_TYPE_FW_CHUNK_ACK && reply.u.fw_chunk_ack.status == VIGIL_FW_ACK_OK);
        CHECK(reply.u.fw_chunk_ack.next_offset == off + 224u);
    }
    /* a gap (a lost chunk): OUT_OF_ORDER names the offset the device wants */
    send_chunk(7, img_new, off + 224u, 224);
    CHECK(reply.u.fw_chunk_ack.status == VIGIL_FW_ACK_OUT_OF_ORDER && reply.u.fw_chunk_ack.next_offset == off);
    /* a duplicate of an earlier chunk */
    send_chunk(7, img_new, off - 224u, 224);
    CHECK(reply.u.fw_chunk_ack.status == VIGIL_FW_ACK_OUT_OF_ORDER && reply.u.fw_chunk_ack.next_offset == off);
    /* a short chunk that does not end the image */
    send_chunk(7, img_new, off, 100);
    CHECK(reply.u.fw_chunk_ack.status == VIGIL_FW_ACK_BAD_LENGTH);
    /* a chunk of another release: the device answers with its status */
    send_chunk(99, img_new, off, 224);
    CHECK(reply.type == VIGIL_TYPE_FW_STATUS && reply.u.fw_status.release_id == 7u);
    /* disconnect: the gateway offers again and resumes where the device is (RAM offset) */
    CHECK(send_offer(&o) == VIGIL_FWU_REPLY && reply.u.fw_status.state == VIGIL_FW_RECEIVING);
    CHECK(reply.u.fw_status.next_offset == off);
    /* power cut (RAM lost): resumes at the last completed sector */
    CHECK(power_on() == VIGIL_BOOT_OK);
    CHECK(send_offer(&o) == VIGIL_FWU_REPLY && reply.u.fw_status.next_offset == off - off % SS);
    CHECK(transfer(img_new, &o) == VIGIL_FWU_REPLY_REBOOT);
    CHECK(power_on() == VIGIL_BOOT_TRIAL && primary_holds(img_new, NEW_SIZE));
    /* while a trial runs, another release is refused BUSY without touching the trial */
    {
        vigil_fw_offer_t o2 = offer_for(img_newer, NEW_SIZE, 8);
        CHECK(send_offer(&o2) == VIGIL_FWU_REPLY && reply.u.fw_status.result == VIGIL_FW_RESULT_REFUSED);
        CHECK(reply.u.fw_status.reason == VIGIL_FW_REASON_BUSY && reply.u.fw_status.state == VIGIL_FW_TESTING);
        CHECK(vigil_fwu_trial(&u));
    }
    CHECK(vigil_fwu_confirm(&u) == 0);
    /* a newer release then installs over it (counter 3) */
    {
        vigil_fw_offer_t o3 = offer_for(img_newer, NEW_SIZE - 1000u, 8);
        CHECK(transfer(img_newer, &o3) == VIGIL_FWU_REPLY_REBOOT);
        CHECK(power_on() == VIGIL_BOOT_TRIAL && vigil_fwu_confirm(&u) == 0);
        CHECK(u.rec.security_counter == 3u && primary_holds(img_newer, NEW_SIZE - 1000u));
    }
    CHECK(rule_violations == 0);
}

/* Sends img_new (release 7, offered) chunk by chunk from where the device says, until its
 * FW_STATUS or 1000 chunks; returns the WRITE_FAILED answers (each a rewind to a sector start at
 * or below the chunk) and sets *looped when the 1000 chunks ran out. */
static unsigned send_image(int *looped)
{
    uint32_t off = 0;
    unsigned failures = 0, sent = 0;
    for (;;) {
        const uint32_t len = NEW_SIZE - off < 224u ? NEW_SIZE - off : 224u;
        send_chunk(7, img_new, off, len);
        if (reply.type == VIGIL_TYPE_FW_STATUS || ++sent > 1000u) break;
        if (reply.u.fw_chunk_ack.status == VIGIL_FW_ACK_WRITE_FAILED) {
            failures++;
            CHECK(reply.u.fw_chunk_ack.next_offset % SS == 0u && reply.u.fw_chunk_ack.next_offset <= off);
        }
        off = reply.u.fw_chunk_ack.next_offset;
    }
    *looped = sent > 1000u;
    return failures;
}

static void test_write_failures(void)
{
    int looped;
    vigil_fw_offer_t o = offer_for(img_new, NEW_SIZE, 7);
    factory_reset();
    power_on();
    /* one bad read-back: the device restarts at the chunk's sector and the transfer completes */
    corrupt_write_at = 12;
    CHECK(send_offer(&o) == VIGIL_FWU_REPLY);
    CHECK(send_image(&looped) == 1u && !looped && reply.u.fw_status.state == VIGIL_FW_READY);
    /* a flash that keeps failing: FLASH_ERROR after VIGIL_FWU_MAX_WRITE_FAILURES */
    factory_reset();
    power_on();
    {
        unsigned k;
        CHECK(send_offer(&o) == VIGIL_FWU_REPLY);
        for (k = 0; k < VIGIL_FWU_MAX_WRITE_FAILURES; k++) {
            corrupt_write_at = secondary_writes;
            send_chunk(7, img_new, 0, 224);
        }
        CHECK(reply.type == VIGIL_TYPE_FW_STATUS && reply.u.fw_status.reason == VIGIL_FW_REASON_FLASH_ERROR);
    }
    corrupt_write_at = -1;
    /* A cell that never reads back in the middle of a sector (revision 1.4): the chunks before
     * it read back again after each rewind to the sector start, yet the 3rd failure of its
     * chunk ends the transfer (FLASH_ERROR) instead of a loop. */
    factory_reset();
    power_on();
    /* byte 2151: in the chunk at 2016; its rewind goes to 1024, so the four chunks from 1024
     * read back again before it fails again */
    bad_cell = (long)SS + 5u * 224u + 7u;
    CHECK(send_offer(&o) == VIGIL_FWU_REPLY);
    CHECK(send_image(&looped) == VIGIL_FWU_MAX_WRITE_FAILURES - 1u && !looped);
    CHECK(reply.type == VIGIL_TYPE_FW_STATUS && reply.u.fw_status.reason == VIGIL_FW_REASON_FLASH_ERROR);
    bad_cell = -1;
    CHECK(rule_violations == 0);
}

static vigil_fwu_action_t send_abort(uint32_t release)
{
    in.type = VIGIL_TYPE_FW_ABORT;
    in.u.fw_abort.device_id = 42;
    in.u.fw_abort.release_id = release;
    in.u.fw_abort.reason = VIGIL_FW_ABORT_TIMEOUT;
    return vigil_fwu_handle(&u, &in, &reply);
}

/*
 * Flash wear: the state record is written only when it changes. A gateway that repeats
 * FW_ABORT, an offer whose outcome is known or the resume query gets its FW_STATUS (PROTOCOL.md,
 * "Device rules": always answered) without a STATE write. Before, every FW_ABORT of an already
 * aborted release appended a record: 1,000 of them made 1,001 writes and 100 sector erases here.
 */
static void test_no_wear_on_repeats(void)
{
    vigil_fw_offer_t o = offer_for(img_new, NEW_SIZE, 7), old = offer_for(factory, FACTORY_SIZE, 8);
    unsigned i, ok;
    factory_reset();
    power_on();
    CHECK(send_offer(&o) == VIGIL_FWU_REPLY && reply.u.fw_status.state == VIGIL_FW_RECEIVING);
    state_writes = state_erases = 0;
    /* the first FW_ABORT changes the state: one record */
    CHECK(send_abort(7) == VIGIL_FWU_REPLY && reply.u.fw_status.result == VIGIL_FW_RESULT_ABORTED);
    CHECK(state_writes == 1u);
    /* 1,000 more: each answered, none written */
    for (i = 0, ok = 0; i < 1000u; i++)
        ok += send_abort(7) == VIGIL_FWU_REPLY && reply.type == VIGIL_TYPE_FW_STATUS &&
              reply.u.fw_status.state == VIGIL_FW_IDLE && reply.u.fw_status.result == VIGIL_FW_RESULT_ABORTED &&
              reply.u.fw_status.release_id == 7u;
    CHECK(ok == 1000u);
    CHECK(state_writes == 1u && state_erases == 0u);
    /* the state in flash is the aborted one */
    CHECK(power_on() == VIGIL_BOOT_OK);
    vigil_fwu_status(&u, &reply);
    CHECK(reply.u.fw_status.result == VIGIL_FW_RESULT_ABORTED && reply.u.fw_status.release_id == 7u);
    /* 1,000 identical offers refused OLDER_VERSION: one record (the first refusal) */
    state_writes = state_erases = 0;
    for (i = 0, ok = 0; i < 1000u; i++)
        ok += send_offer(&old) == VIGIL_FWU_REPLY && reply.u.fw_status.result == VIGIL_FW_RESULT_REFUSED &&
              reply.u.fw_status.reason == VIGIL_FW_REASON_OLDER_VERSION && reply.u.fw_status.release_id == 8u;
    CHECK(ok == 1000u);
    CHECK(state_writes == 1u && state_erases == 0u);
    /* FW_ABORT of a release that is not the current one: answered, nothing written */
    for (i = 0; i < 1000u; i++) send_abort(7);
    CHECK(reply.u.fw_status.release_id == 8u && state_writes == 1u);
    /* a new transfer, then 1,000 resume queries (the same offer while RECEIVING): one record */
    state_writes = 0;
    for (i = 0, ok = 0; i < 1000u; i++)
        ok += send_offer(&o) == VIGIL_FWU_REPLY && reply.u.fw_status.state == VIGIL_FW_RECEIVING &&
              reply.u.fw_status.next_offset == 0u;
    CHECK(ok == 1000u && state_writes == 1u && state_erases == 0u);
    /* a change is still written, and survives a reset */
    CHECK(send_abort(7) == VIGIL_FWU_REPLY && state_writes == 2u);
    CHECK(power_on() == VIGIL_BOOT_OK && u.rec.state == VIGIL_FW_IDLE && u.rec.result == VIGIL_FW_RESULT_ABORTED);
    CHECK(rule_violations == 0);
}

/*
 * Power cut at every flash operation of a whole update (transfer, install swap, trial,
 * confirm): after each cut the device powers on again and the gateway offers again. In every
 * run the device must end up either on the new image (INSTALLED) or, when the cut hit the
 * install swap, on the old image (REVERTED / INTERRUPTED) — never anything else — and the
 * slot contents must be exact.
 */
static void test_power_cuts_everywhere(void)
{
    vigil_fw_offer_t o = offer_for(img_new, NEW_SIZE, 7);
    unsigned long total;
    long k;
    unsigned installed = 0, interrupted = 0, runs = 0;
    /* count the operations of an uninterrupted update */
    factory_reset();
    power_on();
    op_count = 0;
    transfer(img_new, &o);
    power_on();
    vigil_fwu_confirm(&u);
    total = op_count;
    CHECK(total > 100u);
    for (k = 0; k < (long)total; k++) {
        volatile int phase = 0; /* 0 transfer, 1 boot, 2 confirm, 3 done */
        volatile int cuts = 0;
        factory_reset();
        power_on();
        ops_left = k;
        if (setjmp(power_cut) != 0) cuts++;
        /* after a cut: power on (bootloader), then continue where the gateway would */
        if (cuts > 0) {
            ops_left = -1;
            (void)power_on();
            if (u.rec.state == VIGIL_FW_TESTING) phase = 2;
            else if (u.rec.state == VIGIL_FW_READY) phase = 1;
            else if (u.rec.state == VIGIL_FW_IDLE && u.rec.result == VIGIL_FW_RESULT_REVERTED) phase = 3;
            else if (u.rec.state == VIGIL_FW_IDLE && u.rec.result == VIGIL_FW_RESULT_INSTALLED) phase = 3;
            else phase = 0;
        }
        if (phase == 0) {
            if (transfer(img_new, &o) != VIGIL_FWU_REPLY_REBOOT) {
                CHECK(0);
                continue;
            }
            phase = 1;
        }
        if (phase == 1) {
            (void)power_on();
            phase = 2;
        }
        if (phase == 2) {
            if (vigil_fwu_trial(&u)) (void)vigil_fwu_confirm(&u);
            phase = 3;
        }
        ops_left = -1;
        runs++;
        (void)power_on();
        vigil_fwu_status(&u, &reply);
        if (reply.u.fw_status.result == VIGIL_FW_RESULT_INSTALLED) {
            installed++;
            CHECK(primary_holds(img_new, NEW_SIZE) && u.rec.security_counter == 2u);
        } else {
            interrupted++;
            CHECK(reply.u.fw_status.result == VIGIL_FW_RESULT_REVERTED);
            CHECK(reply.u.fw_status.reason == VIGIL_FW_REASON_INTERRUPTED ||
                  reply.u.fw_status.reason == VIGIL_FW_REASON_NOT_CONFIRMED);
            CHECK(primary_holds(factory, FACTORY_SIZE) && u.rec.security_counter == 1u);
        }
    }
    CHECK(runs == total && installed > 0u && interrupted > 0u);
    printf("power cuts: %lu flash operations per update, %u runs ended INSTALLED, %u REVERTED\n", total, installed,
           interrupted);
    CHECK(rule_violations == 0);
}

/* Power cut at every flash operation of a revert (trial not confirmed), and twice in a row. */
static void test_power_cuts_during_revert(void)
{
    vigil_fw_offer_t o = offer_for(img_new, NEW_SIZE, 7);
    unsigned long total;
    long k;
    factory_reset();
    power_on();
    transfer(img_new, &o);
    CHECK(power_on() == VIGIL_BOOT_TRIAL);
    {
        static uint8_t snap_p[SLOT], snap_s[SLOT], snap_st[2u * SS];
        memcpy(snap_p, mem_primary, SLOT);
        memcpy(snap_s, mem_secondary, SLOT);
        memcpy(snap_st, mem_state, sizeof mem_state);
        op_count = 0;
        CHECK(power_on() == VIGIL_BOOT_REVERTED);
        total = op_count;
        for (k = 0; k < (long)total; k++) {
            volatile int cuts = 0;
            memcpy(mem_primary, snap_p, SLOT);
            memcpy(mem_secondary, snap_s, SLOT);
            memcpy(mem_state, snap_st, sizeof mem_state);
            ops_left = k;
            if (setjmp(power_cut) != 0) {
                cuts++;
                ops_left = cuts == 1 ? k / 2 : -1; /* a second cut while recovering from the first */
            }
            (void)power_on();
            ops_left = -1;
            if (cuts < 2) (void)power_on();
            CHECK(primary_holds(factory, FACTORY_SIZE));
            CHECK(u.rec.state == VIGIL_FW_IDLE && u.rec.result == VIGIL_FW_RESULT_REVERTED);
        }
    }
    CHECK(rule_violations == 0);
}

int main(void)
{
    make_image(factory, FACTORY_SIZE, 1, 0, 0, 1, 1);
    make_image(img_new, NEW_SIZE, 1, 1, 0, 2, 2);
    make_image(img_newer, NEW_SIZE - 1000u, 1, 2, 0, 3, 3);
    test_sha256();
    test_image_header();
    test_clean_update();
    test_not_confirmed_reverts();
    test_refusals();
    test_refused_on_blank_primary();
    test_chunk_rules_and_resume();
    test_write_failures();
    test_no_wear_on_repeats();
    test_power_cuts_everywhere();
    test_power_cuts_during_revert();
    printf("sizeof(vigil_fwu_t)=%u\n", (unsigned)sizeof(vigil_fwu_t));
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
