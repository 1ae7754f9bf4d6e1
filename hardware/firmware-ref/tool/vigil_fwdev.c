/*
 * vigil_fwdev: the C reference's update agent and bootloader (vigil_fwu.c) as a device on a
 * real serial line (a tty or one end of a socat pty pair), for the interop test
 * test/interop/firmware-c-device.test.ts. Host only (POSIX termios); flash is a RAM array.
 *
 *   vigil_fwdev TTY DEVICE_ID_HEX FACTORY_IMAGE [--never-confirm]
 *
 * At start and after every reset it runs the bootloader (vigil_boot), then sends HELLO (with
 * the running image's version) and FW_STATUS. FW_OFFER / FW_CHUNK / FW_ABORT go to
 * vigil_fwu_handle(); REPLY_REBOOT resets it (RAM cleared, flash kept). A trial image
 * confirms itself at once, or with --never-confirm is reset by a 300 ms "watchdog" and
 * reverted. Runs until stdin closes or SIGTERM.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "../vigil_fwu.h"

#define SS 4096u
#define SLOT (64u * SS) /* 256 KiB slots */

static uint8_t mem_p[SLOT], mem_s[SLOT], mem_scratch[SS], mem_state[2u * SS];
static uint8_t *const areas[4] = {mem_p, mem_s, mem_scratch, mem_state};
static const uint32_t area_size[4] = {SLOT, SLOT, SS, 2u * SS};

static int fl_read(void *ctx, uint8_t a, uint32_t off, uint8_t *buf, uint32_t len)
{
    (void)ctx;
    if (a > 3u || off + len > area_size[a]) return -1;
    memcpy(buf, areas[a] + off, len);
    return 0;
}

static int fl_write(void *ctx, uint8_t a, uint32_t off, const uint8_t *buf, uint32_t len)
{
    uint32_t i;
    (void)ctx;
    if (a > 3u || off + len > area_size[a] || off % 8u || len % 8u) return -1;
    for (i = 0; i < len; i++)
        if (areas[a][off + i] != 0xFFu) return -1; /* NOR flash: program erased bytes only */
    memcpy(areas[a] + off, buf, len);
    return 0;
}

static int fl_erase(void *ctx, uint8_t a, uint32_t off, uint32_t len)
{
    (void)ctx;
    if (a > 3u || off + len > area_size[a] || off % SS || len % SS) return -1;
    memset(areas[a] + off, 0xFF, len);
    return 0;
}

static const vigil_flash_t flash = {fl_read, fl_write, fl_erase, NULL, SLOT, SS, 8};
static vigil_fwu_t fwu;
static vigil_rx_t rx;
static vigil_frame_t in, out;
static int tty = -1;
static uint32_t device_id, boot_id;
static int never_confirm;

static void send_frame(const vigil_frame_t *f)
{
    uint8_t wire[VIGIL_MAX_WIRE];
    size_t n = vigil_encode_wire(f, wire, sizeof wire), off = 0;
    while (off < n) {
        const ssize_t k = write(tty, wire + off, n - off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return;
        off += (size_t)k;
    }
}

static void hello_and_status(void)
{
    memset(&out, 0, sizeof out);
    out.type = VIGIL_TYPE_HELLO;
    out.u.hello.device_id = device_id;
    out.u.hello.boot_id = boot_id;
    out.u.hello.fw_major = fwu.running.version.major;
    out.u.hello.fw_minor = fwu.running.version.minor;
    out.u.hello.fw_patch = fwu.running.version.patch;
    strcpy(out.u.hello.profile, "rotating-v1");
    out.u.hello.channel_count = 1;
    strcpy(out.u.hello.channels[0].name, "vib_rms");
    out.u.hello.channels[0].unit = 1;
    send_frame(&out);
    vigil_fwu_status(&fwu, &out);
    send_frame(&out);
}

/* A reset: RAM is lost, the bootloader runs, the image says HELLO. Returns the boot result. */
static vigil_boot_t reset(void)
{
    vigil_boot_t r;
    memset(&fwu, 0, sizeof fwu);
    if (vigil_fwu_open(&fwu, &flash, device_id) != 0) {
        fprintf(stderr, "vigil_fwdev: vigil_fwu_open failed\n");
        exit(2);
    }
    r = vigil_boot(&fwu);
    boot_id++;
    vigil_rx_init(&rx);
    fprintf(stderr, "vigil_fwdev: boot %u -> %d, running %u.%u.%u\n", (unsigned)boot_id, (int)r,
            fwu.running.version.major, fwu.running.version.minor, fwu.running.version.patch);
    hello_and_status();
    return r;
}

int main(int argc, char **argv)
{
    struct termios t;
    FILE *f;
    size_t n;
    int watchdog_ms = -1;
    if (argc < 4) {
        fprintf(stderr, "usage: vigil_fwdev TTY DEVICE_ID_HEX FACTORY_IMAGE [--never-confirm]\n");
        return 2;
    }
    device_id = (uint32_t)strtoul(argv[2], NULL, 16);
    never_confirm = argc > 4 && strcmp(argv[4], "--never-confirm") == 0;
    memset(mem_p, 0xFF, sizeof mem_p);
    memset(mem_s, 0xFF, sizeof mem_s);
    memset(mem_scratch, 0xFF, sizeof mem_scratch);
    memset(mem_state, 0xFF, sizeof mem_state);
    f = fopen(argv[3], "rb");
    if (!f) {
        fprintf(stderr, "vigil_fwdev: cannot open factory image %s\n", argv[3]);
        return 2;
    }
    n = fread(mem_p, 1, SLOT, f);
    fclose(f);
    if (n < VIGIL_IMAGE_HEADER_BYTES) {
        fprintf(stderr, "vigil_fwdev: factory image too short\n");
        return 2;
    }
    tty = open(argv[1], O_RDWR | O_NOCTTY);
    if (tty < 0) {
        fprintf(stderr, "vigil_fwdev: cannot open %s: %s\n", argv[1], strerror(errno));
        return 2;
    }
    if (tcgetattr(tty, &t) == 0) {
        t.c_iflag = 0;
        t.c_oflag = 0;
        t.c_lflag = 0;
        t.c_cflag |= CREAD | CLOCAL;
        t.c_cc[VMIN] = 0;
        t.c_cc[VTIME] = 0;
        (void)tcsetattr(tty, TCSANOW, &t);
    }
    (void)reset();
    for (;;) {
        struct pollfd p[2];
        uint8_t buf[512];
        ssize_t k, i;
        int rc;
        if (vigil_fwu_trial(&fwu) && !never_confirm) {
            (void)vigil_fwu_confirm(&fwu); /* the trial image passed its self-test */
            vigil_fwu_status(&fwu, &out);
            send_frame(&out);
        }
        if (vigil_fwu_trial(&fwu) && never_confirm && watchdog_ms < 0) watchdog_ms = 300;
        p[0].fd = tty;
        p[0].events = POLLIN;
        p[1].fd = 0;
        p[1].events = POLLIN;
        rc = poll(p, 2, watchdog_ms);
        if (rc < 0 && errno == EINTR) continue;
        if (rc == 0 && watchdog_ms >= 0) { /* the watchdog fires: the unconfirmed trial resets */
            watchdog_ms = -1;
            (void)reset();
            continue;
        }
        if (p[1].revents & (POLLIN | POLLHUP)) {
            char c;
            if (read(0, &c, 1) <= 0) return 0; /* stdin closed: the test is done */
        }
        if (!(p[0].revents & POLLIN)) continue;
        k = read(tty, buf, sizeof buf);
        if (k <= 0) continue;
        for (i = 0; i < k; i++) {
            if (vigil_rx_push_byte(&rx, buf[i], &in) != VIGIL_RX_FRAME) continue;
            switch (vigil_fwu_handle(&fwu, &in, &out)) {
            case VIGIL_FWU_REPLY: send_frame(&out); break;
            case VIGIL_FWU_REPLY_REBOOT:
                send_frame(&out);
                watchdog_ms = -1;
                (void)reset();
                i = k; /* bytes after the reset belong to a device that was not listening */
                break;
            case VIGIL_FWU_NONE: break;
            }
        }
    }
}
