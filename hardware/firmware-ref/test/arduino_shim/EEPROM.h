/* Host stand-in for the Arduino EEPROM library (read/write/begin/commit over a byte array; 0xFF
 * when never written, as erased flash and a new AVR EEPROM read). */
#ifndef VIGIL_EEPROM_SHIM_H
#define VIGIL_EEPROM_SHIM_H

#include <stdint.h>
#include <string.h>

class EEPROMClass {
  public:
    uint8_t mem[64];
    EEPROMClass() { memset(mem, 0xFF, sizeof mem); }
    void begin(int) {}
    bool commit(void) { return true; }
    uint8_t read(int addr) { return mem[addr]; }
    void write(int addr, uint8_t v) { mem[addr] = v; }
};
extern EEPROMClass EEPROM;

#endif
