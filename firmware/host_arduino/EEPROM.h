// EEPROM emulation as the ESP8266 and ESP32 cores do it: begin(size) copies the stored
// sector into RAM, read/write work on that copy, commit() writes it back. The sector is a
// file here (its path given when the board starts), so it outlives resets and power loss.
#ifndef HOST_EEPROM_H
#define HOST_EEPROM_H

#include <stddef.h>
#include <stdint.h>

class EEPROMClass {
public:
#if defined(ESP8266)
    void begin(size_t size);
#else
    bool begin(size_t size);
#endif
    uint8_t read(int address);
    void write(int address, uint8_t value);
    bool commit();
    bool end();
    size_t length() const { return size_; }

private:
    bool load(size_t size);
    uint8_t *data_ = nullptr;
    size_t size_ = 0;
    bool dirty_ = false;
};

extern EEPROMClass EEPROM;

#endif
