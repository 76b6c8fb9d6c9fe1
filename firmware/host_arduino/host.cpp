// The board process: arguments, the line protocol with the parent (host.h), and the
// Arduino main loop around the sketch's setup() and loop().
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <deque>
#include <string>
#include <utility>
#include <vector>

#include <limits.h>

#include "Arduino.h"
#include "host.h"
#include "light_controller.h"

void setup();
void loop();

#ifndef RELAY_ACTIVE_LOW
#define RELAY_ACTIVE_LOW 0
#endif

namespace {

const char *eeprom_path = nullptr;
uint64_t random_state = 0x9e3779b97f4a7c15ull;
const char *mqtt_user = nullptr;
const char *mqtt_password = nullptr;
std::string pending_input;
bool awaiting_ack = false;
std::string held_reports;
bool halt_requested = false;
bool leave_requested = false;
bool activity = true;
// Pin changes that came during a delay(), applied one per pass of the loop (below).
bool in_delay = false;
std::deque<std::pair<uint8_t, int>> pin_changes;
// The firmware core's context, seen when the sketch calls lc_tick.
const lc_ctx *firmware = nullptr;
// An idle board still looks around this often.
const unsigned long IDLE_MAX_MS = 1000;
const int SOCKETS_MAX = 8;
// A parent that does not answer within this is not waited for any longer.
const unsigned long ACK_TIMEOUT_MS = 5000;

[[noreturn]] void usage(const char *problem) {
    fprintf(stderr,
            "light-controller host board: %s\n"
            "usage: BOARD --eeprom FILE [--seed N] [--ap up|down]\n"
            "  the broker login, if any, comes from HIL_MQTT_USER and HIL_MQTT_PASSWORD\n",
            problem);
    exit(2);
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

void complain(const std::string &line, const char *why) {
    fprintf(stderr, "light-controller host board: ignored %.80s: %s\n", line.c_str(), why);
}

void handle(const std::string &line) {
    activity = true;
    unsigned pin = 0;
    int level = 0;
    if (line == "ok") {
        awaiting_ack = false;
    } else if (line == "halt") {
        halt_requested = true;
    } else if (line == "leave") {
        halt_requested = leave_requested = true;
    } else if (sscanf(line.c_str(), "pin %u %d", &pin, &level) == 2) {
        if (in_delay || !pin_changes.empty()) {  // never ahead of earlier changes
            pin_changes.emplace_back(static_cast<uint8_t>(pin), level);
        } else {
            host_pin_driven(static_cast<uint8_t>(pin), level);
        }
    } else if (line == "wifi up" || line == "wifi down") {
        host_access_point(line == "wifi up");
    } else if (line.compare(0, 3, "rx ") == 0) {
        const std::string hex = line.substr(3);
        if (hex.size() % 2 != 0) {
            complain(line, "odd number of hex digits");
            return;
        }
        std::vector<uint8_t> bytes;
        for (size_t i = 0; i < hex.size(); i += 2) {
            int high = hex_digit(hex[i]);
            int low = hex_digit(hex[i + 1]);
            if (high < 0 || low < 0) {
                complain(line, "not hex");
                return;
            }
            bytes.push_back(static_cast<uint8_t>(high * 16 + low));
        }
        host_serial_received(bytes.data(), bytes.size());
    } else {
        complain(line, "unknown message");
    }
}

// Reads what the parent has sent and handles every complete line.
void read_input() {
    char chunk[4096];
    ssize_t n = read(STDIN_FILENO, chunk, sizeof chunk);
    if (n == 0) {
        _exit(0);  // the parent is gone
    }
    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) {
            return;
        }
        _exit(0);
    }
    pending_input.append(chunk, static_cast<size_t>(n));
    size_t start = 0;
    for (size_t end; (end = pending_input.find('\n', start)) != std::string::npos;
         start = end + 1) {
        handle(pending_input.substr(start, end - start));
    }
    pending_input.erase(0, start);
}

}  // namespace

// Power goes between two waits of the firmware, never in the middle of what it does in
// between, as the core simulator's power-off comes between two events.
static void halt_if_asked() {
    if (!halt_requested) {
        return;
    }
    if (leave_requested) {
        host_mqtt_leave();
    }
    host_emit("halted");
    for (;;) {
        char ignored[256];
        ssize_t n = read(STDIN_FILENO, ignored, sizeof ignored);
        if (n == 0 || (n < 0 && errno != EINTR)) {
            _exit(0);  // the parent is gone without ending the board
        }
    }
}

void host_serve_until(unsigned long deadline_ms, int wake_fd) {
    host_sync();
    halt_if_asked();
    for (;;) {
        unsigned long now = millis();
        int wait = deadline_ms > now ? static_cast<int>(deadline_ms - now) : 0;
        pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {wake_fd, POLLIN, 0}};
        int ready = poll(fds, wake_fd >= 0 ? 2 : 1, wait);
        if (ready > 0 && fds[0].revents != 0) {
            read_input();
            halt_if_asked();
        }
        if (wait == 0 || (wake_fd >= 0 && ready > 0 && fds[1].revents != 0)) {
            return;
        }
    }
}

namespace {

void emit_line(const char *format, va_list args) {
    char line[65536];
    int n = vsnprintf(line, sizeof line - 1, format, args);
    if (n < 0) {
        return;
    }
    size_t len = static_cast<size_t>(n) < sizeof line - 1 ? static_cast<size_t>(n)
                                                          : sizeof line - 2;
    line[len++] = '\n';
    for (size_t sent = 0; sent < len;) {
        ssize_t w = write(STDOUT_FILENO, line + sent, len - sent);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            _exit(0);  // nobody reads the board any more
        }
        sent += static_cast<size_t>(w);
    }
}

}  // namespace

void host_note_activity() {
    activity = true;
}

// The sketch's lc_tick calls come here first (the host build links with
// --wrap=lc_tick): the core's timers tell when it next has work.
extern "C" void __real_lc_tick(lc_ctx *ctx);
extern "C" void __wrap_lc_tick(lc_ctx *ctx) {
    firmware = ctx;
    if (lc_ms_until_tick(ctx, static_cast<uint32_t>(millis())) == 0) {
        activity = true;
    }
    __real_lc_tick(ctx);
}

namespace {

unsigned long next_due(unsigned long now) {
    unsigned long due = now + IDLE_MAX_MS;
    uint32_t core = lc_ms_until_tick(firmware, static_cast<uint32_t>(now));
    if (core != LC_NO_TIMER && now + core < due) {
        due = now + core;
    }
    unsigned long wifi = host_wifi_next_due();
    unsigned long mqtt = host_mqtt_next_due();
    due = wifi < due ? wifi : due;
    return mqtt < due ? mqtt : due;
}

}  // namespace

// An idle board sleeps. A pass of the loop in which nothing came in and no timer was due
// leaves nothing for the next pass to do, so delay() may then wait until the earliest
// timer of the core, the Wi-Fi join or the MQTT keep-alive, or until input arrives
// (the parent's messages, a socket's bytes), instead of looping every millisecond: the
// sketch sees the same events at the same times, and a fleet of boards costs little.
// Sketches without the core (which never call lc_tick) are never idled.
void host_delay(unsigned long ms) {
    host_sync();
    halt_if_asked();
    unsigned long now = millis();
    unsigned long minimum = now + ms;
    unsigned long deadline = minimum;
    int sockets[SOCKETS_MAX];
    int count = host_socket_fds(sockets, SOCKETS_MAX);
    if (!activity && count >= 0 && firmware != nullptr) {
        unsigned long due = next_due(now);
        deadline = due > minimum ? due : minimum;
    }
    activity = false;
    in_delay = true;
    for (; now < deadline && !(activity && now >= minimum); now = millis()) {
        pollfd fds[1 + SOCKETS_MAX];
        fds[0] = {STDIN_FILENO, POLLIN, 0};
        if (activity || count < 0) {
            count = 0;
        }
        for (int i = 0; i < count; i++) {
            fds[1 + i] = {sockets[i], POLLIN, 0};
        }
        unsigned long until = activity ? minimum : deadline;
        int ready = poll(fds, static_cast<nfds_t>(1 + count), static_cast<int>(until - now));
        if (ready <= 0) {
            continue;
        }
        if (fds[0].revents != 0) {
            read_input();
            halt_if_asked();
        }
        for (int i = 0; i < count; i++) {
            if (fds[1 + i].revents != 0) {
                activity = true;
            }
        }
    }
    in_delay = false;
    // A chip loops every millisecond or so, so it sees each edge of a press in some pass;
    // a host process may be scheduled out while several arrive. One change per pass
    // gives the sketch every edge, in order. (Inside a pass, as during a blocking
    // connect, a change applies at once: the chip would not have looked either.)
    if (!pin_changes.empty()) {
        host_pin_driven(pin_changes.front().first, pin_changes.front().second);
        pin_changes.pop_front();
        activity = true;
    }
}

void host_emit(const char *format, ...) {
    va_list args;
    va_start(args, format);
    emit_line(format, args);
    va_end(args);
}

void host_report(const char *format, ...) {
    activity = true;
    char line[8192];
    va_list args;
    va_start(args, format);
    int n = vsnprintf(line, sizeof line, format, args);
    va_end(args);
    if (n > 0) {
        held_reports.append(line, static_cast<size_t>(n) < sizeof line ? static_cast<size_t>(n)
                                                                       : sizeof line - 1);
        held_reports.push_back('\n');
    }
}

void host_sync() {
    if (held_reports.empty()) {
        return;
    }
    held_reports.append("sync");
    std::string reports;
    reports.swap(held_reports);
    host_emit("%s", reports.c_str());
    awaiting_ack = true;
    unsigned long deadline = millis() + ACK_TIMEOUT_MS;
    for (unsigned long now = millis(); awaiting_ack && now < deadline; now = millis()) {
        pollfd input = {STDIN_FILENO, POLLIN, 0};
        if (poll(&input, 1, static_cast<int>(deadline - now)) > 0) {
            read_input();
        }
    }
    awaiting_ack = false;
}

void host_hex(const uint8_t *data, size_t len, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[data[i] >> 4];
        out[2 * i + 1] = digits[data[i] & 15];
    }
    out[2 * len] = '\0';
}

const char *host_eeprom_path() {
    return eeprom_path;
}

// splitmix64: the same seed gives the same numbers, run after run.
uint32_t host_random() {
    uint64_t z = (random_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return static_cast<uint32_t>((z ^ (z >> 31)) >> 32);
}

const char *host_mqtt_user() {
    return mqtt_user;
}

const char *host_mqtt_password() {
    return mqtt_password;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        std::string arg = argv[i];
        if (i + 1 >= argc) {
            usage(("missing the value of " + arg).c_str());
        }
        const char *value = argv[++i];
        if (arg == "--eeprom") {
            eeprom_path = value;
        } else if (arg == "--seed") {
            char *end = nullptr;
            random_state = strtoull(value, &end, 10);
            if (*value == '\0' || *end != '\0') {
                usage("--seed takes a number");
            }
        } else if (arg == "--ap") {
            if (strcmp(value, "up") != 0 && strcmp(value, "down") != 0) {
                usage("--ap takes up or down");
            }
            host_access_point(strcmp(value, "up") == 0);
        } else {
            usage(("unknown argument " + arg).c_str());
        }
    }
    if (eeprom_path == nullptr) {
        usage("--eeprom is required");
    }
    mqtt_user = getenv("HIL_MQTT_USER");
    mqtt_password = getenv("HIL_MQTT_PASSWORD");
#if defined(ESP8266)
    host_emit("hello family=esp8266 relay_active_low=%d", RELAY_ACTIVE_LOW ? 1 : 0);
#else
    host_emit("hello family=esp32 relay_active_low=%d", RELAY_ACTIVE_LOW ? 1 : 0);
#endif
    setup();
    host_sync();
    host_emit("ready");
    for (;;) {
        loop();
        yield();  // the Arduino core runs the SDK between two loop() calls
    }
}
