// What the parts of the host core share: the board's link to the process that started
// it. One line per message, both ways:
//   parent -> board   pin GPIO 0|1      drive an input pin (a switch to GND drives 0)
//                     wifi up|down      the access point comes into or goes out of range
//                     rx HEX            bytes arriving on the serial console
//   board -> parent   hello family=F relay_active_low=0|1
//                     mode GPIO MODE    pinMode (OUTPUT, INPUT, INPUT_PULLUP)
//                     pin GPIO 0|1      an output pin's level changed (first write too)
//                     serial HEX        one line printed on the console, without newline
//                     ready             setup() has returned
//                     restart           ESP.restart(): the process ends, to be started again
// End of input means the parent is gone: the board stops.
#ifndef HOST_H
#define HOST_H

#include <stddef.h>
#include <stdint.h>

// Serves the parent's messages until `deadline_ms` (millis()), or until `wake_fd` (if not
// negative) has bytes to read.
void host_serve_until(unsigned long deadline_ms, int wake_fd);
// One line to the parent.
void host_emit(const char *format, ...) __attribute__((format(printf, 1, 2)));
// Bytes as lowercase hex into `out` (2 * len + 1 bytes).
void host_hex(const uint8_t *data, size_t len, char *out);

// Handlers of the parent's messages, each in the part it concerns.
void host_pin_driven(uint8_t pin, int level);
void host_serial_received(const uint8_t *data, size_t len);
void host_access_point(bool in_range);
bool host_station_joined();

const char *host_eeprom_path();
uint32_t host_random();

#endif
