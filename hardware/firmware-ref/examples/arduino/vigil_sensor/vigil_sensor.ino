/*
 * Vigil sensor node for Arduino-compatible boards (SAMD21/SAMD51, RP2040, ESP32, STM32; not
 * the 2 KiB AVR boards): a rotating machine's vibration, bearing temperature, motor current
 * and speed, sent to a Vigil gateway over a serial line with the protocol of
 * hardware/PROTOCOL.md, on top of the portable C core (vigil_frame, vigil_txq).
 *
 * - HELLO (profile "rotating-v1", six named channels) after boot and after every reconnect,
 *   with a boot_id kept in EEPROM (PROTOCOL.md: boot_id defines a sequence-number space).
 * - One DATA frame per second: vib_rms, vib_peak, vib_kurt over a 256-sample window of the
 *   accelerometer sampled at 1 kHz, bearing_temp, current and speed.
 * - Every DATA frame stays in a resend ring until the gateway ACKs it; resends back off from
 *   500 ms to 8 s; a BUSY NACK pauses sending for its retry_after_ms; a full ring drops the
 *   oldest frame and reports ERROR code 2.
 * - Timestamps come from the gateway's clock in its ACKs (0 until the first ACK: the gateway
 *   stamps the frame on arrival). NACK ABSURD_TIMESTAMP (the gateway's clock jumped, e.g. NTP
 *   after a boot without RTC) forgets that clock until the next ACK.
 * - NACK UNKNOWN_DEVICE / REVOKED_DEVICE stops the device: it keeps sampling into the ring but
 *   sends no DATA and no ERROR; once a minute it probes (HELLO, then its oldest kept frame), and
 *   the ACK of that frame (the device was registered again) resumes it.
 *
 * Wiring, flashing and RAM: ../README.md. Copy vigil_frame.c/.h and vigil_txq.c/.h from
 * hardware/firmware-ref next to this file (the Arduino IDE compiles the sketch folder), or
 * use the PlatformIO project in ../platformio.ini.
 */
#include <Arduino.h>
#if defined(ARDUINO_ARCH_SAMD)
#include <FlashAsEEPROM.h> /* SAMD21/51 have no EEPROM and their core no EEPROM library: the
                              FlashStorage library emulates one in flash (platformio.ini lib_deps) */
#else
#include <EEPROM.h>
#endif
#include <math.h>
#include <string.h>

#include "vigil_config.h"
#include "vigil_frame.h"
#include "vigil_txq.h"

/* ---- configuration ------------------------------------------------------------------- */
#ifndef VIGIL_DEVICE_ID
#define VIGIL_DEVICE_ID 0x0000002Aul /* admitted by the gateway (ingest.allow, or vigil access sensor register) */
#endif
#define LINK Serial          /* USB CDC; use Serial1 for a USB-UART adapter or an RS-485 transceiver */
#define LINK_BAUD 115200ul
#define PIN_VIB A0           /* ADXL335 X axis: 300 mV/g around Vcc/2 */
#define PIN_TEMP A1          /* TMP36: 10 mV/degC, 500 mV at 0 degC */
#define PIN_CURRENT A2       /* ACS712-05B: 185 mV/A around Vcc/2 (through a divider on 3.3 V boards) */
#define PIN_SPEED 2          /* hall sensor, one pulse per revolution, open collector */
#define ADC_VREF 3.3f
#define ADC_BITS 10          /* analogRead() resolution, set in setup() (ESP32 defaults to 12) */
#define ADC_MAX 1023.0f      /* (1 << ADC_BITS) - 1 */
#define SAMPLE_US 1000ul     /* vibration sampling: 1 kHz */
#define WINDOW 256u          /* samples per vibration window */
#define REPORT_MS 1000ul     /* one DATA frame per second */
#define EEPROM_BOOT_ID_ADDR 0
#define HELLO_REPEAT_MS 5000ul /* HELLO again until the boot's first ACK (PROTOCOL.md, a lost HELLO) */
#define PROBE_MS 60000ul       /* stopped (unknown / revoked): one probe a minute (PROTOCOL.md, NACK reason 2) */

/* ---- state (all static: no malloc) ---------------------------------------------------- */
static vigil_txq_t txq;            /* resend ring, 16 slots */
static vigil_rx_t rx;              /* receiver for ACK/NACK from the gateway */
static vigil_frame_t frame;        /* decoded input / HELLO or ERROR being built (shared: copy what
                                      you need from a decoded frame before building one) */
static uint8_t wire[VIGIL_MAX_WIRE];
static uint32_t boot_id;
static uint32_t seq;
static bool link_up;
static bool boot_acked;            /* an ACK arrived in this boot: the gateway has our HELLO */
static uint32_t last_hello_ms;

static volatile uint32_t speed_pulses;
static float win_sum, win_sum2, win_sum3, win_sum4, win_peak;
static uint16_t win_n;
static float vib_rms, vib_peak, vib_kurt;
static float temp_sum, current_sum;
static uint16_t slow_n;
static uint32_t last_sample_us, last_report_ms, last_micros;
static uint64_t uptime_us;         /* micros() extended past its 71-minute wrap */
static uint64_t clock_offset_us;   /* gateway time - uptime, from the last ACK */
static bool clock_known;
static uint32_t sent_frames, dropped_frames;
static uint32_t last_probe_ms;     /* stopped: when the last probe went out (or the stop began) */
static bool probe_sent;            /* a probe is out; its frame's ACK resumes the device */
static uint32_t probe_seq;
static bool drops_unreported;      /* the ring overflowed while stopped: ERROR code 2 after resuming */

static void on_speed_pulse(void) { speed_pulses++; }

/* ---- output --------------------------------------------------------------------------- */

static void send_raw(const uint8_t *raw, size_t len)
{
    const size_t n = vigil_cobs_encode(raw, len, wire, sizeof wire);
    if (n > 0u) LINK.write(wire, n);
}

static void send_frame(const vigil_frame_t *f)
{
    const size_t n = vigil_encode_wire(f, wire, sizeof wire);
    if (n > 0u) LINK.write(wire, n);
}

static void send_hello(void)
{
    static const char *const names[6] = {"vib_rms", "vib_peak", "vib_kurt", "bearing_temp", "current", "speed"};
    static const uint8_t units[6] = {1 /* g */, 1 /* g */, 0, 2 /* degC */, 3 /* A */, 4 /* rpm */};
    uint8_t i;
    memset(&frame, 0, sizeof frame);
    frame.type = VIGIL_TYPE_HELLO;
    frame.u.hello.device_id = VIGIL_DEVICE_ID;
    frame.u.hello.boot_id = boot_id;
    frame.u.hello.fw_major = 1;
    frame.u.hello.fw_minor = 0;
    frame.u.hello.fw_patch = 0;
    strcpy(frame.u.hello.profile, "rotating-v1");
    frame.u.hello.channel_count = 6;
    for (i = 0; i < 6u; i++) {
        strcpy(frame.u.hello.channels[i].name, names[i]);
        frame.u.hello.channels[i].unit = units[i];
    }
    LINK.write((uint8_t)0); /* flush whatever partial frame the gateway holds */
    send_frame(&frame);
    last_hello_ms = millis();
}

/* ERROR with a UTF-8 message, cut to the protocol's 200 bytes at a character boundary (a cut
 * sequence would make the encoder refuse the frame: PROTOCOL.md, ERROR). */
static void send_error(uint8_t code, const char *msg)
{
    size_t n = strlen(msg);
    if (n > VIGIL_MAX_ERROR_MESSAGE) {
        n = VIGIL_MAX_ERROR_MESSAGE;
        while (n > 0u && ((uint8_t)msg[n] & 0xC0u) == 0x80u) n--; /* msg[n] continues a character */
    }
    memset(&frame, 0, sizeof frame);
    frame.type = VIGIL_TYPE_ERROR;
    frame.u.error.device_id = VIGIL_DEVICE_ID;
    frame.u.error.code = code;
    frame.u.error.message_len = (uint8_t)n;
    memcpy(frame.u.error.message, msg, n);
    send_frame(&frame);
}

/* Stopped by UNKNOWN_DEVICE / REVOKED_DEVICE: the probe (PROTOCOL.md, NACK reasons 2 and 3). The
 * gateway answers a HELLO from an admitted device with nothing, so the HELLO alone cannot tell
 * whether the device was registered again; the oldest kept frame after it is ACKed if it was and
 * NACKed UNKNOWN_DEVICE / REVOKED_DEVICE if not. Not during a BUSY hold (no DATA then). */
static void probe(uint32_t now_ms)
{
    const vigil_txq_slot_t *oldest = vigil_txq_oldest(&txq);
    if (oldest == NULL || vigil_txq_holding(&txq, now_ms)) return; /* nothing to probe with yet */
    send_hello();
    send_raw(oldest->bytes, oldest->len);
    sent_frames++;
    probe_seq = oldest->seq;
    probe_sent = true;
    last_probe_ms = now_ms;
}

/* ---- input: ACK / NACK ---------------------------------------------------------------- */

static void handle_frame(const vigil_frame_t *in, uint32_t now_ms)
{
    if (in->type == VIGIL_TYPE_ACK && in->u.ack.device_id == VIGIL_DEVICE_ID) {
        const vigil_ack_t ack = in->u.ack; /* `in` is the shared frame: send_error() reuses it */
        vigil_txq_ack(&txq, ack.first_seq, ack.count, now_ms);
        boot_acked = true;
        /* The gateway's clock, for timestamps (PROTOCOL.md, ACK gateway_time_us). */
        clock_offset_us = ack.gateway_time_us - uptime_us;
        clock_known = true;
        /* Stopped, and the probe's frame is stored: the device was registered again (PROTOCOL.md,
         * NACK reason 2). Resume; the ring sends the kept frames. */
        if (txq.stopped && probe_sent && (uint32_t)(probe_seq - ack.first_seq) < (uint32_t)ack.count) {
            vigil_txq_resume(&txq);
            probe_sent = false;
            if (drops_unreported) send_error(2, "resend ring full while stopped: oldest frames dropped");
            drops_unreported = false;
        }
    } else if (in->type == VIGIL_TYPE_NACK && in->u.nack.device_id == VIGIL_DEVICE_ID) {
        /* A copy: send_hello() below rebuilds the shared `frame` that `in` points to. */
        const vigil_nack_t nack = in->u.nack;
        const bool was_stopped = txq.stopped;
        if (nack.reason == VIGIL_NACK_ABSURD_TIMESTAMP) {
            /* Our clock (from an earlier ACK) is too far from the gateway's: the gateway's clock
             * jumped. Send timestamp 0 (unknown: the gateway stamps the frame) until the next ACK
             * brings gateway_time_us (PROTOCOL.md, NACK reason 5). */
            clock_known = false;
        }
        if (nack.reason == VIGIL_NACK_SEQ_OUT_OF_RANGE && !was_stopped) {
            /* This counter only ever steps by 1, so the gateway filed the frame under another boot:
             * it missed our HELLO. HELLO again (at most once a second) and keep repeating it until
             * an ACK; the refused frame itself is dropped by the ring (PROTOCOL.md, NACK reason 9). */
            boot_acked = false;
            if ((uint32_t)(now_ms - last_hello_ms) >= 1000ul) send_hello();
        }
        switch (vigil_txq_nack(&txq, &nack, now_ms)) {
        case VIGIL_TXQ_NACK_SEND_HELLO:                                 /* SCHEMA_MISMATCH */
            if (!was_stopped) send_hello();                             /* stopped: the next probe has one */
            break;
        case VIGIL_TXQ_NACK_STOP:                                       /* not registered / revoked: LED on */
            if (!was_stopped) last_probe_ms = now_ms;                   /* first probe a minute from now */
            probe_sent = false;
            break;
        case VIGIL_TXQ_NACK_DROPPED: dropped_frames++; break;           /* NON_FINITE, ABSURD_TIMESTAMP, … */
        default: break;                                                 /* BUSY / RETRY_LATER: the ring waits */
        }
    }
}

static void read_link(uint32_t now_ms)
{
    while (LINK.available() > 0) {
        const int c = LINK.read();
        if (c < 0) break;
        if (vigil_rx_push_byte(&rx, (uint8_t)c, &frame) == VIGIL_RX_FRAME) handle_frame(&frame, now_ms);
    }
}

/* ---- sampling ------------------------------------------------------------------------- */

static float volts(int pin) { return (float)analogRead(pin) * (ADC_VREF / ADC_MAX); }

static void sample_vibration(void)
{
    const float g = (volts(PIN_VIB) - ADC_VREF / 2.0f) / 0.300f;
    const float g2 = g * g;
    win_sum += g;
    win_sum2 += g2;
    win_sum3 += g2 * g;
    win_sum4 += g2 * g2;
    if (fabsf(g) > win_peak) win_peak = fabsf(g);
    if (++win_n < WINDOW) return;
    {
        /* RMS, peak and kurtosis (4th standardised moment) of the window. */
        const float n = (float)WINDOW, mean = win_sum / n;
        const float var = win_sum2 / n - mean * mean;
        const float m4 = win_sum4 / n - 4.0f * mean * win_sum3 / n + 6.0f * mean * mean * win_sum2 / n -
                         3.0f * mean * mean * mean * mean;
        vib_rms = sqrtf(win_sum2 / n);
        vib_peak = win_peak;
        vib_kurt = var > 1e-9f ? m4 / (var * var) : 0.0f;
    }
    win_sum = win_sum2 = win_sum3 = win_sum4 = win_peak = 0.0f;
    win_n = 0;
    temp_sum += (volts(PIN_TEMP) - 0.5f) * 100.0f;
    current_sum += (volts(PIN_CURRENT) - ADC_VREF / 2.0f) / 0.185f;
    slow_n++;
}

static void report(uint32_t now_ms)
{
    vigil_data_t d;
    uint32_t pulses;
    const float seconds = (float)(now_ms - last_report_ms) / 1000.0f;
    noInterrupts();
    pulses = speed_pulses;
    speed_pulses = 0;
    interrupts();
    memset(&d, 0, sizeof d);
    d.device_id = VIGIL_DEVICE_ID;
    d.seq = seq++;
    d.timestamp_us = clock_known ? clock_offset_us + uptime_us : 0u;
    d.channel_count = 6;
    d.values[0] = vib_rms;
    d.values[1] = vib_peak;
    d.values[2] = vib_kurt;
    d.values[3] = slow_n ? temp_sum / (float)slow_n : 0.0f;
    d.values[4] = slow_n ? current_sum / (float)slow_n : 0.0f;
    d.values[5] = seconds > 0.0f ? (float)pulses * 60.0f / seconds : 0.0f;
    temp_sum = current_sum = 0.0f;
    slow_n = 0;
    if (vigil_txq_push(&txq, &d) == VIGIL_TXQ_DROPPED_OLDEST) {
        /* Stopped: no ERROR either (PROTOCOL.md, NACK reason 2); reported once it resumes. */
        if (txq.stopped) drops_unreported = true;
        else send_error(2, "resend ring full: oldest frame dropped");
    }
}

/* ---- boot_id in (emulated) EEPROM ----------------------------------------------------- */

/* Byte by byte, little-endian: read() and write() are the one EEPROM API every core listed in
 * ../README.md has (FlashAsEEPROM on SAMD has no get()/put()). Never written: 0xFFFFFFFF, so the
 * first boot_id is 0. */
static uint32_t load_boot_id(void)
{
#if defined(ARDUINO_ARCH_SAMD)
    /* Nothing committed since the sketch was uploaded: an upload erases FlashStorage's area, so a
     * reflashed device would start at boot_id 0 again, a sequence space the gateway has already
     * filled (its frames would be refused as SEQ_REUSED). Start from the build's time instead
     * (FNV-1a of __DATE__ __TIME__: another build, another start) mixed with the time since reset. */
    if (!EEPROM.isValid()) {
        uint32_t h = 2166136261ul;
        for (const char *c = __DATE__ " " __TIME__; *c; c++) h = (h ^ (uint8_t)*c) * 16777619ul;
        return h ^ micros();
    }
#endif
    uint32_t v = 0;
    for (uint8_t i = 0; i < 4u; i++) v |= (uint32_t)EEPROM.read(EEPROM_BOOT_ID_ADDR + i) << (8u * i);
    return v;
}

static void store_boot_id(uint32_t v)
{
#if defined(ARDUINO_ARCH_ESP32) || defined(ARDUINO_ARCH_RP2040)
    EEPROM.begin(16); /* these cores emulate EEPROM in flash, in a RAM copy of this size */
#endif
    for (uint8_t i = 0; i < 4u; i++) EEPROM.write(EEPROM_BOOT_ID_ADDR + i, (uint8_t)(v >> (8u * i)));
#if defined(ARDUINO_ARCH_ESP32) || defined(ARDUINO_ARCH_RP2040) || defined(ARDUINO_ARCH_SAMD)
    EEPROM.commit(); /* flash emulation: written only now */
#endif
}

/* ---- Arduino entry points ------------------------------------------------------------- */

void setup(void)
{
    pinMode(LED_BUILTIN, OUTPUT);
    pinMode(PIN_SPEED, INPUT_PULLUP);
    attachInterrupt(digitalPinToInterrupt(PIN_SPEED), on_speed_pulse, FALLING);
#if defined(ARDUINO_ARCH_ESP32) || defined(ARDUINO_ARCH_RP2040) || defined(ARDUINO_ARCH_STM32)
    analogReadResolution(ADC_BITS); /* ESP32's default is 12 bits: every reading would be 4x off */
#endif
    boot_id = load_boot_id() + 1u; /* a new boot, a new sequence space; seq restarts at 0 */
    store_boot_id(boot_id);
    LINK.begin(LINK_BAUD);
    vigil_rx_init(&rx);
    vigil_txq_init(&txq);
    last_micros = micros();
    last_sample_us = last_micros;
    last_report_ms = millis();
}

void loop(void)
{
    const uint32_t m = micros(), now_ms = millis();
    const uint8_t *p;
    size_t len;
    uptime_us += (uint32_t)(m - last_micros);
    last_micros = m;
    /* HELLO whenever the host opens the port (USB CDC: DTR) — after boot and every reconnect
     * (while stopped, only the probe sends HELLO). */
    if ((bool)LINK != link_up) {
        link_up = (bool)LINK;
        if (link_up && !txq.stopped) send_hello();
    }
    if (txq.stopped) {
        /* Unknown or revoked: nothing but a probe a minute (PROTOCOL.md, NACK reasons 2 and 3). */
        if (link_up && (uint32_t)(now_ms - last_probe_ms) >= PROBE_MS) probe(now_ms);
    } else if (link_up && !boot_acked && (uint32_t)(now_ms - last_hello_ms) >= HELLO_REPEAT_MS) {
        /* A lost HELLO after a reboot can cost the boot's first frames (PROTOCOL.md): repeat it
         * until the boot's first ACK. On a line that never "reconnects" (Serial1, RS-485) this is
         * the only way the gateway learns the boot. */
        send_hello();
    }
    read_link(now_ms);
    if ((uint32_t)(m - last_sample_us) >= SAMPLE_US) {
        last_sample_us += SAMPLE_US;
        sample_vibration();
    }
    if ((uint32_t)(now_ms - last_report_ms) >= REPORT_MS) {
        report(now_ms);
        last_report_ms += REPORT_MS;
    }
    /* New frames first, then resends when their timeout expired (nothing during a BUSY hold). */
    while (link_up && (p = vigil_txq_poll(&txq, now_ms, &len)) != NULL) {
        send_raw(p, len);
        sent_frames++;
    }
    /* LED: stopped by the gateway (unknown or revoked device), or a backlog of unacknowledged frames. */
    digitalWrite(LED_BUILTIN, (txq.stopped || vigil_txq_count(&txq) > 4u) ? HIGH : LOW);
}
