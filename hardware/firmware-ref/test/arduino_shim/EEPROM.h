/* Host stand-in for the Arduino EEPROM library (get/put/begin/commit over a byte array). */
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
    template <typename T> T &get(int addr, T &v)
    {
        memcpy(&v, mem + addr, sizeof v);
        return v;
    }
    template <typename T> const T &put(int addr, const T &v)
    {
        memcpy(mem + addr, &v, sizeof v);
        return v;
    }
};
extern EEPROMClass EEPROM;

#endif
