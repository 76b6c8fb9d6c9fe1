// Host Arduino core: the subset of the ESP8266 / ESP32 Arduino API the light-controller
// sketch uses, on a Linux host. Pins, Serial and Wi-Fi are driven by the process that
// started the board, over the line protocol in host.h.
#ifndef HOST_ARDUINO_H
#define HOST_ARDUINO_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "Print.h"
#include "Stream.h"

#if !defined(ESP8266) && !defined(ESP32)
#error "the host Arduino core imitates an ESP8266 or an ESP32: define one of them"
#endif

typedef bool boolean;
typedef uint8_t byte;

#define HIGH 0x1
#define LOW 0x0

#if defined(ESP8266)
#define INPUT 0x00
#define INPUT_PULLUP 0x02
#define OUTPUT 0x01
// NodeMCU pin names (variants/nodemcu/pins_arduino.h): board label -> GPIO.
static const uint8_t D0 = 16;
static const uint8_t D1 = 5;
static const uint8_t D2 = 4;
static const uint8_t D3 = 0;
static const uint8_t D4 = 2;
static const uint8_t D5 = 14;
static const uint8_t D6 = 12;
static const uint8_t D7 = 13;
static const uint8_t D8 = 15;
#else
#define INPUT 0x01
#define OUTPUT 0x03
#define PULLUP 0x04
#define INPUT_PULLUP 0x05
#endif

void pinMode(uint8_t pin, uint8_t mode);
void digitalWrite(uint8_t pin, uint8_t val);
int digitalRead(uint8_t pin);

// Milliseconds since the board started (power-on or reset).
unsigned long millis(void);
unsigned long micros(void);
// Waits at least `ms`; meanwhile the board's surroundings (pins, serial input, Wi-Fi)
// are served, as the SDK runs during delay() on the chip.
void delay(unsigned long ms);
void yield(void);

class HardwareSerial : public Stream {
public:
    void begin(unsigned long baud);
    void end();
    int available() override;
    int read() override;
    int peek() override;
    void flush() override;
    size_t write(uint8_t c) override;
    size_t write(const uint8_t *buffer, size_t size) override;
    using Print::write;
    operator bool() const { return true; }
};

extern HardwareSerial Serial;

class EspClass {
public:
    // Ends the program; the board process starts again with RAM lost and EEPROM kept.
    [[noreturn]] void restart();
#if defined(ESP8266)
    uint32_t random();
#endif
};

extern EspClass ESP;

// A broker login built into the firmware: the host build defines the sketch's
// MQTT_USER / MQTT_PASSWORD as these, which return the login the board was started
// with (nullptr: none).
const char *host_mqtt_user();
const char *host_mqtt_password();

#endif
