// What the parts of the host core share: the board's link to the process that started
// it. One line per message, both ways:
//   parent -> board   pin GPIO 0|1      drive an input pin (a switch to GND drives 0)
//                     wifi up|down      the access point comes into or goes out of range
//                     rx HEX            bytes arriving on the serial console
//                     ok                the parent has recorded the reports before `sync`
//                     halt              stop at the next wait (power is about to go)
//                     leave             the same, after closing MQTT sessions with DISCONNECT
//   board -> parent   hello family=F relay_active_low=0|1
//                     mode GPIO MODE    pinMode (OUTPUT, INPUT, INPUT_PULLUP)
//                     pin GPIO 0|1      an output pin's level changed (first write too)
//                     serial HEX        one line printed on the console, without newline
//                     sync              the reports (pin, serial) since the last sync end
//                     ready             setup() has returned
//                     restart           ESP.restart(): the process ends, to be started again
//                     halted            stopped after `halt`, waiting to be ended
// Reports (`pin`, `serial`) are held and sent together, ended by `sync`, before the board
// next touches the network or waits; the board then waits for `ok`. So what one pass of
// the firmware reports is recorded at once, and before the MQTT packets it causes, as
// the core simulator records it.
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
// A report for the parent's trace, held until the next host_sync().
void host_report(const char *format, ...) __attribute__((format(printf, 1, 2)));
// Sends the held reports and `sync`, then waits (serving the parent's other messages)
// for `ok`. Nothing when no report is held.
void host_sync();
// Bytes as lowercase hex into `out` (2 * len + 1 bytes).
void host_hex(const uint8_t *data, size_t len, char *out);

// Handlers of the parent's messages, each in the part it concerns.
void host_pin_driven(uint8_t pin, int level);
void host_serial_received(const uint8_t *data, size_t len);
void host_access_point(bool in_range);
bool host_station_joined();

// Something came in or changed that the firmware may act on in its next pass, so the
// board must not idle through its next delay().
void host_note_activity();
// The earliest time (millis()) a part has work without any input, or ULONG_MAX.
unsigned long host_wifi_next_due();
unsigned long host_mqtt_next_due();
// Closes every connected PubSubClient's session with DISCONNECT (a clean shutdown).
void host_mqtt_leave();
// The sockets whose incoming bytes end an idle delay(); returns how many were written,
// or -1 when bytes already received wait to be read (the board must not idle).
int host_socket_fds(int *fds, int max);
// delay(): at least `ms`; longer while nothing can happen (see host.cpp).
void host_delay(unsigned long ms);

const char *host_eeprom_path();
uint32_t host_random();

#endif
