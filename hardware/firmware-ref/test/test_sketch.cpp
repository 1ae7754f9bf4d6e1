/*
 * Runs the Arduino example (examples/arduino/vigil_sensor) on the host against the real C core,
 * through test/arduino_shim: fake time, a 50 Hz 1 g vibration, 40 degC, 2 A, 1500 rpm, and a
 * scripted gateway on the serial link. Checks what a gateway would see: HELLO with the six
 * channels, one DATA frame per second with the right values, resends, ACK handling with the
 * gateway clock, BUSY holds, HELLO after SCHEMA_MISMATCH and after a reconnect, ring overflow,
 * HELLO repeated until the boot's first ACK and after SEQ_OUT_OF_RANGE (which drops exactly the
 * NACKed frame), the clock forgotten after ABSURD_TIMESTAMP, the stop after UNKNOWN_DEVICE with
 * its once-a-minute probe and the resume, and ERROR messages bounded to 200 bytes.
 * Build and run: make -C hardware/firmware-ref test (last line "N passed, 0 failed").
 */
#include <math.h>
#include <stdio.h>

#include "../examples/arduino/vigil_sensor/vigil_sensor.ino"

namespace shim {
uint32_t now_us = 1000;
int (*analog)(int pin);
void (*isr[4])(void);
int led;
}
HardwareSerial Serial;
EEPROMClass EEPROM;

static int passed, failed;
#define CHECK(cond)                                                                                    \
    do {                                                                                               \
        if (cond) {                                                                                    \
            passed++;                                                                                  \
        } else {                                                                                       \
            failed++;                                                                                  \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                  \
        }                                                                                              \
    } while (0)

static int fake_analog(int pin)
{
    const double t = shim::now_us / 1e6, pi = 3.14159265358979;
    double v = 0;
    if (pin == A0) v = 1.65 + 0.300 * sin(2 * pi * 50 * t); /* 1 g peak at 50 Hz */
    if (pin == A1) v = 0.5 + 0.010 * 40;                     /* 40 degC */
    if (pin == A2) v = 1.65 + 0.185 * 2;                     /* 2 A */
    return (int)lround(v / 3.3 * 1023);
}

/* Every frame the sketch sent since `from` (byte offset in the TX log), decoded. */
struct Seen {
    vigil_frame_t f[256];
    uint32_t at_ms[256];
    int n;
};
static size_t tx_read;
static uint32_t tx_time_ms[1 << 20];
static size_t tx_time_len;

static void decode_new(Seen &s)
{
    static vigil_rx_t r;
    static bool init;
    static vigil_frame_t f;
    if (!init) {
        vigil_rx_init(&r);
        init = true;
    }
    for (; tx_read < Serial.tx_len; tx_read++) {
        if (vigil_rx_push_byte(&r, Serial.tx[tx_read], &f) == VIGIL_RX_FRAME && s.n < 256) {
            s.f[s.n] = f;
            s.at_ms[s.n] = tx_read < tx_time_len ? tx_time_ms[tx_read] : 0;
            s.n++;
        }
    }
}

/* Runs loop() for `ms` of fake time (100 us steps), 25 speed pulses per second. */
static void run(uint32_t ms, Seen &s)
{
    for (uint32_t i = 0; i < ms * 10u; i++) {
        shim::now_us += 100;
        if (shim::now_us % 40000u == 0u && shim::isr[2]) shim::isr[2]();
        loop();
        while (tx_time_len < Serial.tx_len) tx_time_ms[tx_time_len++] = millis();
    }
    decode_new(s);
}

static void gateway_sends(const vigil_frame_t &f)
{
    uint8_t w[VIGIL_MAX_WIRE];
    const size_t n = vigil_encode_wire(&f, w, sizeof w);
    Serial.inject(w, n);
}

static void ack(uint32_t first, uint16_t count, uint64_t gw_time)
{
    vigil_frame_t f;
    memset(&f, 0, sizeof f);
    f.type = VIGIL_TYPE_ACK;
    f.u.ack.device_id = VIGIL_DEVICE_ID;
    f.u.ack.first_seq = first;
    f.u.ack.count = count;
    f.u.ack.gateway_time_us = gw_time;
    gateway_sends(f);
}

static void nack(uint32_t seq, uint8_t reason, uint16_t retry_after)
{
    vigil_frame_t f;
    memset(&f, 0, sizeof f);
    f.type = VIGIL_TYPE_NACK;
    f.u.nack.device_id = VIGIL_DEVICE_ID;
    f.u.nack.seq = seq;
    f.u.nack.reason = reason;
    f.u.nack.retry_after_ms = retry_after;
    gateway_sends(f);
}

static int count_type(const Seen &s, int from, uint8_t type)
{
    int c = 0;
    for (int i = from; i < s.n; i++) c += s.f[i].type == type;
    return c;
}

static bool in_ring(uint32_t seq)
{
    for (unsigned i = 0; i < txq.count; i++)
        if (txq.slots[txq.order[i]].seq == seq) return true;
    return false;
}

/* The newest DATA frame sent since `from`, or NULL. */
static const vigil_data_t *last_data(const Seen &s, int from)
{
    for (int i = s.n - 1; i >= from; i--)
        if (s.f[i].type == VIGIL_TYPE_DATA) return &s.f[i].u.data;
    return NULL;
}

int main(void)
{
    static Seen s;
    shim::analog = fake_analog;
    setup();
    run(5500, s);

    /* HELLO first, with the profile and the six named channels */
    CHECK(s.n > 0 && s.f[0].type == VIGIL_TYPE_HELLO);
    CHECK(strcmp(s.f[0].u.hello.profile, "rotating-v1") == 0 && s.f[0].u.hello.channel_count == 6u);
    CHECK(strcmp(s.f[0].u.hello.channels[3].name, "bearing_temp") == 0 && s.f[0].u.hello.channels[5].unit == 4u);
    CHECK(s.f[0].u.hello.boot_id == 0u); /* fresh EEPROM (0xFF..) + 1 */
    /* stored little-endian byte by byte at address 0: the next boot reads it back and adds one */
    CHECK(EEPROM.mem[0] == 0u && EEPROM.mem[1] == 0u && EEPROM.mem[2] == 0u && EEPROM.mem[3] == 0u);
    CHECK(load_boot_id() == 0u);
    EEPROM.mem[0] = 0x41u;
    EEPROM.mem[3] = 0x01u;
    CHECK(load_boot_id() == 0x01000041ul);
    store_boot_id(0u);
    /* no ACK yet: the HELLO is repeated every 5 s (it may have been lost) */
    CHECK(count_type(s, 0, VIGIL_TYPE_HELLO) == 2);
    /* one DATA frame per second, seq 0..4, then resends of the oldest (no ACK yet) */
    {
        int data = 0;
        uint32_t max_seq = 0;
        for (int i = 0; i < s.n; i++)
            if (s.f[i].type == VIGIL_TYPE_DATA) {
                data++;
                if (s.f[i].u.data.seq > max_seq) max_seq = s.f[i].u.data.seq;
            }
        CHECK(max_seq == 4u);
        CHECK(data > 5); /* resends */
    }
    {
        const vigil_data_t *d = NULL;
        for (int i = 0; i < s.n && !d; i++)
            if (s.f[i].type == VIGIL_TYPE_DATA && s.f[i].u.data.seq == 2u) d = &s.f[i].u.data;
        CHECK(d != NULL);
        if (d) {
            CHECK(d->channel_count == 6u && d->timestamp_us == 0u); /* no gateway clock yet */
            CHECK(fabsf(d->values[0] - 0.7071f) < 0.03f);            /* RMS of a 1 g sine */
            CHECK(fabsf(d->values[1] - 1.0f) < 0.03f);               /* peak */
            CHECK(fabsf(d->values[2] - 1.5f) < 0.1f);                /* kurtosis of a sine */
            CHECK(fabsf(d->values[3] - 40.0f) < 0.5f);
            CHECK(fabsf(d->values[4] - 2.0f) < 0.05f);
            CHECK(fabsf(d->values[5] - 1500.0f) < 1.0f);
        }
    }
    /* ACK 0..4 with the gateway clock: the ring empties, later frames carry timestamps */
    ack(0, 5, 1764000000000000ull);
    run(1200, s);
    CHECK(vigil_txq_count(&txq) == 1u); /* seq 5, sent, not yet acknowledged */
    {
        int i = s.n - 1;
        while (i >= 0 && s.f[i].type != VIGIL_TYPE_DATA) i--;
        CHECK(i >= 0 && s.f[i].u.data.seq == 5u);
        CHECK(i >= 0 && s.f[i].u.data.timestamp_us > 1764000000000000ull &&
              s.f[i].u.data.timestamp_us < 1764000000000000ull + 2000000ull);
    }
    /* BUSY for seq 5, 2000 ms: nothing is sent during the hold, then seq 5 goes first */
    {
        const int from = s.n;
        nack(5, VIGIL_NACK_BUSY, 2000);
        run(1990, s);
        CHECK(count_type(s, from, VIGIL_TYPE_DATA) == 0);
        run(20, s);
        CHECK(count_type(s, from, VIGIL_TYPE_DATA) >= 1 && s.f[from].type == VIGIL_TYPE_DATA &&
              s.f[from].u.data.seq == 5u);
    }
    /* SCHEMA_MISMATCH: HELLO, then the frame again */
    {
        const int from = s.n;
        nack(5, VIGIL_NACK_SCHEMA_MISMATCH, 0);
        run(10, s);
        CHECK(count_type(s, from, VIGIL_TYPE_HELLO) == 1 && count_type(s, from, VIGIL_TYPE_DATA) >= 1);
    }
    /* reconnect (USB host closes and reopens the port): HELLO again, same boot */
    {
        int from;
        Serial.open = false;
        run(10, s);
        from = s.n;
        Serial.open = true;
        run(10, s);
        CHECK(count_type(s, from, VIGIL_TYPE_HELLO) == 1 && s.f[from].u.hello.boot_id == 0u);
    }
    /* no ACKs for 20 s: 16 slots fill, the oldest is dropped and reported with ERROR code 2 */
    {
        const int from = s.n;
        run(20000, s);
        CHECK(vigil_txq_count(&txq) == VIGIL_TXQ_SLOTS && txq.overflows > 0u);
        CHECK(count_type(s, from, VIGIL_TYPE_ERROR) > 0);
        CHECK(shim::led == HIGH); /* backlog */
    }
    /* SEQ_OUT_OF_RANGE: the gateway filed a frame under another boot (it missed a HELLO): HELLO
     * at once, same boot, then every 5 s until an ACK; nothing more after it. The ring drops
     * exactly the NACKed frame: the HELLO is built in the frame the NACK was decoded into, so a
     * NACK read after it would be the HELLO's bytes (seq = boot_id, reason = fw_major) */
    {
        int from = s.n;
        uint32_t kept[VIGIL_TXQ_SLOTS];
        const unsigned n_kept = txq.count;
        const uint32_t refused = txq.slots[txq.order[0]].seq, dropped_before = dropped_frames;
        for (unsigned i = 0; i < n_kept; i++) kept[i] = txq.slots[txq.order[i]].seq;
        CHECK(n_kept == VIGIL_TXQ_SLOTS && refused != 0u); /* seq 0 (= boot_id) is long gone */
        nack(refused, VIGIL_NACK_SEQ_OUT_OF_RANGE, 0);
        run(10, s);
        CHECK(count_type(s, from, VIGIL_TYPE_HELLO) == 1 && s.f[from].u.hello.boot_id == 0u);
        CHECK(!in_ring(refused) && dropped_frames == dropped_before + 1u && !txq.stopped);
        {
            bool others_kept = true;
            for (unsigned i = 1; i < n_kept; i++) others_kept = others_kept && in_ring(kept[i]);
            CHECK(others_kept);
        }
        from = s.n;
        run(5000, s);
        CHECK(count_type(s, from, VIGIL_TYPE_HELLO) == 1);
        ack(0, 1000, 1764000100000000ull);
        from = s.n;
        run(11000, s);
        CHECK(count_type(s, from, VIGIL_TYPE_HELLO) == 0);
    }
    /* The gateway's clock jumps 3 days (NTP corrects a Pi that booted with a stale clock): the
     * device's timestamps, from older ACKs, get NACK ABSURD_TIMESTAMP. It forgets its clock and
     * sends timestamp 0 (the gateway stamps the frame) until the next ACK brings the new time;
     * before, it kept the old clock and every frame was NACKed and dropped, with no ACK ever */
    {
        const uint64_t t_new = 1764000100000000ull + 3ull * 86400000000ull;
        const vigil_data_t *d = last_data(s, 0);
        int from;
        CHECK(d != NULL && d->timestamp_us > 1764000100000000ull && d->timestamp_us < 1764000100000000ull + 20000000ull);
        nack(d ? d->seq : 0u, VIGIL_NACK_ABSURD_TIMESTAMP, 0);
        from = s.n;
        run(1100, s);
        d = last_data(s, from);
        CHECK(d != NULL && d->timestamp_us == 0u);
        ack(0, 1000, t_new);
        from = s.n;
        run(1100, s);
        d = last_data(s, from);
        CHECK(d != NULL && d->timestamp_us >= t_new && d->timestamp_us < t_new + 2000000ull);
        CHECK(vigil_txq_count(&txq) == 1u);
    }
    /* UNKNOWN_DEVICE (plugged in before it was registered: the gateway NACKs its HELLO with seq 0):
     * the device stops. It keeps sampling into the ring but sends no DATA, no ERROR (the ring
     * overflows) and no HELLO, except one probe a minute: HELLO, then its oldest kept frame. A
     * NACK UNKNOWN_DEVICE for it keeps the device stopped; the probe's ACK (registered since)
     * resumes it: ERROR code 2 for the frames lost meanwhile, then the kept frames */
    {
        const uint32_t overflows_before = txq.overflows;
        uint32_t probe1, probe2;
        int from;
        ack(0, 1000, 1764300100000000ull);
        run(10, s);
        CHECK(vigil_txq_count(&txq) == 0u);
        nack(0, VIGIL_NACK_UNKNOWN_DEVICE, 0);
        from = s.n;
        run(59000, s);
        CHECK(txq.stopped && shim::led == HIGH);
        CHECK(s.n == from); /* nothing at all for a minute */
        CHECK(vigil_txq_count(&txq) == VIGIL_TXQ_SLOTS && txq.overflows > overflows_before);
        run(1500, s);
        CHECK(s.n == from + 2 && s.f[from].type == VIGIL_TYPE_HELLO && s.f[from + 1].type == VIGIL_TYPE_DATA);
        probe1 = s.f[from + 1].u.data.seq;
        CHECK(probe1 <= vigil_txq_oldest(&txq)->seq && vigil_txq_oldest(&txq)->seq - probe1 <= 2u); /* the oldest then */
        /* still not registered */
        nack(probe1, VIGIL_NACK_UNKNOWN_DEVICE, 0);
        /* an ACK that does not name the probe's frame does not resume it */
        ack(123456u, 1, 1764300200000000ull);
        from = s.n;
        run(58000, s);
        CHECK(txq.stopped && s.n == from);
        run(3000, s); /* the second probe, a minute after the first */
        CHECK(s.n == from + 2 && s.f[from].type == VIGIL_TYPE_HELLO && s.f[from + 1].type == VIGIL_TYPE_DATA);
        CHECK(s.n == from + 2 && s.at_ms[from] - s.at_ms[from - 2] == 60000u); /* HELLO to HELLO */
        probe2 = s.f[from + 1].u.data.seq;
        CHECK(probe2 > probe1 && probe2 <= vigil_txq_oldest(&txq)->seq && vigil_txq_oldest(&txq)->seq - probe2 <= 4u);
        /* registered meanwhile: the probe's frame is ACKed */
        ack(probe2, 1, 1764300300000000ull);
        from = s.n;
        run(1000, s);
        CHECK(!txq.stopped);
        CHECK(s.n > from && s.f[from].type == VIGIL_TYPE_ERROR && s.f[from].u.error.code == 2u &&
              strstr(s.f[from].u.error.message, "while stopped") != NULL);
        {
            int data = 0; /* then the kept frames, at once (those sampled while stopped were never sent) */
            for (int i = from + 1; i < s.n && s.f[i].type == VIGIL_TYPE_DATA; i++) data++;
            CHECK(data >= (int)VIGIL_TXQ_SLOTS - 1);
        }
        ack(0, 1000, 1764300301000000ull);
        run(1100, s);
        CHECK(vigil_txq_count(&txq) <= 1u && shim::led == LOW);
    }
    /* ERROR messages are cut to the protocol's 200 bytes, at a character boundary */
    {
        static char msg[302];
        int from = s.n;
        memset(msg, 'x', 300);
        msg[300] = '\0';
        send_error(4, msg);
        decode_new(s);
        CHECK(s.n == from + 1 && s.f[from].type == VIGIL_TYPE_ERROR && s.f[from].u.error.message_len == 200u);
        memset(msg, 'x', 199);
        msg[199] = '\xC2'; /* U+00B0 across the limit: dropped whole */
        msg[200] = '\xB0';
        msg[201] = '\0';
        from = s.n;
        send_error(4, msg);
        decode_new(s);
        CHECK(s.n == from + 1 && s.f[from].type == VIGIL_TYPE_ERROR && s.f[from].u.error.message_len == 199u);
    }
    printf("sketch RAM (host): txq %u, rx %u, frame %u, wire %u bytes\n", (unsigned)sizeof txq, (unsigned)sizeof rx,
           (unsigned)sizeof frame, (unsigned)sizeof wire);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
