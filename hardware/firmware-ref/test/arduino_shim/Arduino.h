/*
 * Host stand-in for the few Arduino core functions the example sketch uses, so the sketch is
 * compiled and run against the real C core by `make test` (test/test_sketch.cpp drives it).
 * Time, analog inputs, the serial link and interrupts are plain variables the test sets.
 */
#ifndef VIGIL_ARDUINO_SHIM_H
#define VIGIL_ARDUINO_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define HIGH 1
#define LOW 0
#define INPUT 0
#define OUTPUT 1
#define INPUT_PULLUP 2
#define FALLING 2
#define RISING 3
#define LED_BUILTIN 13
#define A0 14
#define A1 15
#define A2 16

namespace shim {
extern uint32_t now_us;                 /* the fake clock */
extern int (*analog)(int pin);          /* analogRead() source */
extern void (*isr[4])(void);            /* attached interrupts, by pin */
extern int led;
}

inline uint32_t micros(void) { return shim::now_us; }
inline uint32_t millis(void) { return shim::now_us / 1000u; }
inline int analogRead(int pin) { return shim::analog ? shim::analog(pin) : 0; }
inline void pinMode(int, int) {}
inline void digitalWrite(int pin, int v)
{
    if (pin == LED_BUILTIN) shim::led = v;
}
inline int digitalPinToInterrupt(int pin) { return pin; }
inline void attachInterrupt(int irq, void (*fn)(void), int) { shim::isr[irq & 3] = fn; }
inline void noInterrupts(void) {}
inline void interrupts(void) {}

/* The serial link: bytes written go to `tx`, bytes the test queues in `rx` are read. */
class HardwareSerial {
  public:
    uint8_t tx[1 << 20];
    size_t tx_len = 0;
    uint8_t rxbuf[4096];
    size_t rx_head = 0, rx_tail = 0;
    bool open = true;
    void begin(unsigned long) {}
    size_t write(uint8_t b)
    {
        if (tx_len < sizeof tx) tx[tx_len++] = b;
        return 1;
    }
    size_t write(const uint8_t *p, size_t n)
    {
        for (size_t i = 0; i < n; i++) write(p[i]);
        return n;
    }
    int available(void) { return (int)(rx_tail - rx_head); }
    int read(void) { return rx_head < rx_tail ? rxbuf[rx_head++] : -1; }
    explicit operator bool() const { return open; }
    void inject(const uint8_t *p, size_t n)
    {
        if (rx_head == rx_tail) rx_head = rx_tail = 0;
        memcpy(rxbuf + rx_tail, p, n);
        rx_tail += n;
    }
};
extern HardwareSerial Serial;

#endif
