// Pins, time, the serial console and the ESP object.
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <deque>
#include <string>

#include "Arduino.h"
#include "esp_random.h"
#include "host.h"

namespace {

const uint8_t PIN_COUNT = 64;

struct Pin {
    uint8_t mode = INPUT;
    int written = -1;  // the output latch; -1 before the first write
    int driven = -1;   // what the outside drives the pin to; -1 when nothing does
};

Pin pins[PIN_COUNT];

const char *mode_name(uint8_t mode) {
    switch (mode) {
    case OUTPUT:
        return "OUTPUT";
    case INPUT_PULLUP:
        return "INPUT_PULLUP";
    default:
        return "INPUT";
    }
}

unsigned long long monotonic_us() {
    timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<unsigned long long>(now.tv_sec) * 1000000ull +
           static_cast<unsigned long long>(now.tv_nsec) / 1000ull;
}

// The board starts when the process does.
const unsigned long long started_us = monotonic_us();

// Serial: bytes typed on the console wait here until the sketch reads them; what the
// sketch prints is collected into lines for the parent.
std::deque<uint8_t> serial_in;
std::string serial_out;

}  // namespace

void pinMode(uint8_t pin, uint8_t mode) {
    if (pin >= PIN_COUNT) {
        return;
    }
    pins[pin].mode = mode;
    host_emit("mode %u %s", pin, mode_name(mode));
}

void digitalWrite(uint8_t pin, uint8_t val) {
    if (pin >= PIN_COUNT) {
        return;
    }
    int level = val ? HIGH : LOW;
    bool changed = pins[pin].written != level;
    pins[pin].written = level;
    if (changed && pins[pin].mode == OUTPUT) {
        host_note_activity();
        host_report("pin %u %d", pin, level);
    }
}

int digitalRead(uint8_t pin) {
    if (pin >= PIN_COUNT) {
        return LOW;
    }
    const Pin &p = pins[pin];
    if (p.mode == OUTPUT) {
        return p.written == HIGH ? HIGH : LOW;
    }
    if (p.driven >= 0) {
        return p.driven;
    }
    return p.mode == INPUT_PULLUP ? HIGH : LOW;
}

void host_pin_driven(uint8_t pin, int level) {
    if (pin < PIN_COUNT) {
        pins[pin].driven = level ? HIGH : LOW;
    }
}

unsigned long micros(void) {
    return static_cast<unsigned long>(monotonic_us() - started_us);
}

unsigned long millis(void) {
    return static_cast<unsigned long>((monotonic_us() - started_us) / 1000ull);
}

void delay(unsigned long ms) {
    host_delay(ms);
}

void yield(void) {
    host_serve_until(millis(), -1);
}

HardwareSerial Serial;

void HardwareSerial::begin(unsigned long) {}

void HardwareSerial::end() {}

int HardwareSerial::available() {
    return static_cast<int>(serial_in.size());
}

int HardwareSerial::read() {
    if (serial_in.empty()) {
        return -1;
    }
    uint8_t c = serial_in.front();
    serial_in.pop_front();
    return c;
}

int HardwareSerial::peek() {
    return serial_in.empty() ? -1 : serial_in.front();
}

// Every complete line has already gone to the parent.
void HardwareSerial::flush() {}

size_t HardwareSerial::write(uint8_t c) {
    if (c == '\n') {
        if (!serial_out.empty() && serial_out.back() == '\r') {
            serial_out.pop_back();
        }
        std::string hex(serial_out.size() * 2 + 1, '\0');
        host_hex(reinterpret_cast<const uint8_t *>(serial_out.data()), serial_out.size(),
                 &hex[0]);
        host_report("serial %s", hex.c_str());
        serial_out.clear();
    } else {
        serial_out.push_back(static_cast<char>(c));
    }
    return 1;
}

size_t HardwareSerial::write(const uint8_t *buffer, size_t size) {
    for (size_t i = 0; i < size; i++) {
        write(buffer[i]);
    }
    return size;
}

void host_serial_received(const uint8_t *data, size_t len) {
    host_note_activity();
    serial_in.insert(serial_in.end(), data, data + len);
}

EspClass ESP;

void EspClass::restart() {
    host_sync();
    host_emit("restart");
    _exit(0);
}

#if defined(ESP8266)
uint32_t EspClass::random() {
    return host_random();
}
#endif

uint32_t esp_random(void) {
    return host_random();
}
