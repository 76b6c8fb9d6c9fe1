// EEPROM emulation over a file that stands for the flash sector the cores reserve.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <string>

#include "EEPROM.h"
#include "host.h"

namespace {

// One flash sector, the largest EEPROM the ESP8266 core emulates.
const size_t SECTOR_SIZE = 4096;

}  // namespace

EEPROMClass EEPROM;

bool EEPROMClass::load(size_t size) {
    if (size == 0 || size > SECTOR_SIZE) {
        return false;
    }
    size = (size + 3) & ~static_cast<size_t>(3);  // whole words, as the ESP8266 core does
    uint8_t *data = static_cast<uint8_t *>(realloc(data_, size));
    if (data == nullptr) {
        return false;
    }
    data_ = data;
    size_ = size;
    dirty_ = false;
    memset(data_, 0xFF, size_);  // erased flash
    FILE *file = fopen(host_eeprom_path(), "rb");
    if (file != nullptr) {
        size_t got = fread(data_, 1, size_, file);
        (void)got;  // a shorter file reads as erased beyond its end
        fclose(file);
    }
    return true;
}

#if defined(ESP8266)
void EEPROMClass::begin(size_t size) {
    load(size);
}
#else
bool EEPROMClass::begin(size_t size) {
    return load(size);
}
#endif

uint8_t EEPROMClass::read(int address) {
    if (address < 0 || static_cast<size_t>(address) >= size_) {
        return 0;
    }
    return data_[address];
}

void EEPROMClass::write(int address, uint8_t value) {
    if (address < 0 || static_cast<size_t>(address) >= size_) {
        return;
    }
    if (data_[address] != value) {
        data_[address] = value;
        dirty_ = true;
    }
}

// The sector is rewritten whole through a new file and a rename, so power lost in the
// middle leaves the old contents (the chip's flash would be left half erased).
bool EEPROMClass::commit() {
    if (size_ == 0) {
        return false;
    }
    if (!dirty_) {
        return true;
    }
    uint8_t sector[SECTOR_SIZE];
    memset(sector, 0xFF, sizeof sector);
    FILE *old = fopen(host_eeprom_path(), "rb");
    if (old != nullptr) {
        size_t got = fread(sector, 1, sizeof sector, old);
        (void)got;
        fclose(old);
    }
    memcpy(sector, data_, size_);
    std::string temporary = std::string(host_eeprom_path()) + ".new";
    FILE *file = fopen(temporary.c_str(), "wb");
    if (file == nullptr) {
        fprintf(stderr, "EEPROM commit: %s: %s\n", temporary.c_str(), strerror(errno));
        return false;
    }
    bool written = fwrite(sector, 1, sizeof sector, file) == sizeof sector;
    written = fclose(file) == 0 && written;
    if (!written || rename(temporary.c_str(), host_eeprom_path()) != 0) {
        fprintf(stderr, "EEPROM commit: %s: %s\n", host_eeprom_path(), strerror(errno));
        return false;
    }
    dirty_ = false;
    return true;
}

bool EEPROMClass::end() {
    bool committed = commit();
    free(data_);
    data_ = nullptr;
    size_ = 0;
    return committed;
}
