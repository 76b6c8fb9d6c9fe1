// Light controller for ESP8266 (NodeMCU) and ESP32-C3 boards: a relay, a wall switch and
// one MQTT topic. All behaviour lives in the portable core (light_controller.c); this
// sketch only connects the core's HAL callbacks to the Arduino APIs and feeds it events.
//
// The core must never be re-entered: a HAL callback that needs an answer from the network
// (connect) only records the request, and loop() carries it out and reports the outcome.

#include <Arduino.h>
#include <EEPROM.h>
#include <PubSubClient.h>
#include <string.h>

#if defined(ESP8266)
#include <ESP8266WiFi.h>
#elif defined(ESP32)
#include <WiFi.h>
#include <esp_random.h>
#else
#error "This sketch is for ESP8266 and ESP32 boards"
#endif

#include "light_controller.h"

#ifndef FW_VERSION
#define FW_VERSION "0.1.0"
#endif

#if defined(ESP8266)
static const uint8_t RELAY_PIN = D1;   // GPIO5
static const uint8_t BUTTON_PIN = D5;  // GPIO14
#else
static const uint8_t RELAY_PIN = 4;    // GPIO4: not a strapping pin on the C3
static const uint8_t BUTTON_PIN = 5;   // GPIO5
#endif

// A broker login built into the firmware, e.g. for `hil run --auth USER:PASS` on a bench:
// -DMQTT_USER='"bench"' -DMQTT_PASSWORD='"secret"'. Without them the board connects
// without one.
#ifndef MQTT_USER
#define MQTT_USER nullptr
#endif
#ifndef MQTT_PASSWORD
#define MQTT_PASSWORD nullptr
#endif

// Most relay modules with an opto-coupler input switch on when their input is LOW.
#ifndef RELAY_ACTIVE_LOW
#define RELAY_ACTIVE_LOW 0
#endif

// PubSubClient's default 256-byte buffer is too small for a CONNECT carrying a 64-byte
// client id and a 135-byte will topic plus headers; 512 bytes also holds the longest
// publish the core makes (a 135-byte topic and a 7-byte payload). Incoming messages larger
// than the buffer are dropped by PubSubClient before they reach the core.
static const uint16_t MQTT_BUFFER_SIZE = 512;
static const uint16_t MQTT_KEEP_ALIVE_S = 15;
// PubSubClient connects synchronously; keep the wait for CONNACK short so the loop (and
// the wall switch) is not held up for long when the broker does not answer.
static const uint16_t MQTT_SOCKET_TIMEOUT_S = 2;

// Long enough for a `config` line carrying every key at its maximum length.
static const size_t SERIAL_LINE_MAX = 512;

static WiFiClient net;
static PubSubClient mqtt(net);
static lc_ctx controller;

// A connect request from the core, copied because its strings live only during the call.
static struct {
    bool wanted;
    char client_id[LC_CLIENT_ID_MAX + 1];
    char host[LC_HOST_MAX + 1];
    uint16_t port;
    char will_topic[LC_TOPIC_MAX + sizeof "/status"];
    char will_payload[16];
    uint8_t will_qos;
    bool will_retain;
} connect_request;

// The credentials of the last WiFi.begin(), to tell a changed network from a retry.
static bool wifi_started = false;
static char wifi_ssid[LC_SSID_MAX + 1];
static char wifi_password[LC_PASSWORD_MAX + 1];

static bool wifi_up = false;
static bool mqtt_up = false;
static bool button_pressed = false;

static char serial_line[SERIAL_LINE_MAX];
static size_t serial_len = 0;
static bool serial_overflow = false;

static void copy_text(char *dst, size_t size, const char *src) {
    strncpy(dst, src, size - 1);
    dst[size - 1] = '\0';
}

// ---- HAL callbacks ----

static void hal_relay(void *, bool on) {
    bool high = RELAY_ACTIVE_LOW ? !on : on;
    digitalWrite(RELAY_PIN, high ? HIGH : LOW);
}

// PubSubClient publishes only at QoS 0, and the core asks for QoS 1. So a QoS 1 PUBLISH
// is built here and sent with PubSubClient's raw write(), which also counts as activity
// for the keep-alive; mqtt.loop() reads its PUBACK and ignores it. The session is clean,
// so nothing carries over to the next connection (MQTT 3.1.1, 4.4): a message whose
// PUBACK never comes is not sent again, and the core publishes the current state after
// every connect anyway. Packet ids from 0x8000 up never meet PubSubClient's own (its
// subscriptions count up from 2 on each connection).
static bool publish_qos1(const char *topic, const uint8_t *payload, size_t len, bool retain) {
    static uint8_t packet[5 + MQTT_BUFFER_SIZE];
    static uint16_t packet_id = 0x8000;
    size_t topic_len = strlen(topic);
    size_t remaining = 2 + topic_len + 2 + len;
    if (remaining > MQTT_BUFFER_SIZE || !mqtt.connected()) {
        return false;  // the limit PubSubClient's own buffer sets
    }
    size_t at = 0;
    packet[at++] = 0x32 | (retain ? 0x01 : 0x00);  // PUBLISH, QoS 1
    size_t left = remaining;
    do {
        uint8_t digit = left % 128;
        left /= 128;
        packet[at++] = left > 0 ? (uint8_t)(digit | 0x80) : digit;
    } while (left > 0);
    packet[at++] = (uint8_t)(topic_len >> 8);
    packet[at++] = (uint8_t)(topic_len & 0xFF);
    memcpy(packet + at, topic, topic_len);
    at += topic_len;
    packet_id = packet_id == 0xFFFF ? 0x8000 : (uint16_t)(packet_id + 1);
    packet[at++] = (uint8_t)(packet_id >> 8);
    packet[at++] = (uint8_t)(packet_id & 0xFF);
    memcpy(packet + at, payload, len);
    at += len;
    return mqtt.write(packet, at) == at;
}

static bool hal_publish(void *, const char *topic, const uint8_t *payload, size_t len,
                        uint8_t qos, bool retain) {
    if (qos == 0) {
        return mqtt.publish(topic, payload, (unsigned int)len, retain);
    }
    return publish_qos1(topic, payload, len, retain);
}

static bool hal_subscribe(void *, const char *topic, uint8_t qos) {
    return mqtt.subscribe(topic, qos);
}

static void hal_connect(void *, const lc_connect_request *request) {
    copy_text(connect_request.client_id, sizeof connect_request.client_id, request->client_id);
    copy_text(connect_request.host, sizeof connect_request.host, request->host);
    connect_request.port = request->port;
    copy_text(connect_request.will_topic, sizeof connect_request.will_topic,
              request->will_topic);
    copy_text(connect_request.will_payload, sizeof connect_request.will_payload,
              request->will_payload);
    connect_request.will_qos = request->will_qos;
    connect_request.will_retain = request->will_retain;
    connect_request.wanted = true;
}

static void hal_disconnect(void *) {
    connect_request.wanted = false;
    mqtt.disconnect();
    mqtt_up = false;
}

// The Wi-Fi stack rejoins by itself (auto-reconnect) and WiFi.begin() aborts a join in
// progress, so the core's periodic retries start a new join only when the credentials
// changed or the stack has given up.
static void hal_wifi_begin(void *, const char *ssid, const char *password) {
    bool same = wifi_started && strcmp(ssid, wifi_ssid) == 0 &&
                strcmp(password, wifi_password) == 0;
    wl_status_t status = WiFi.status();
    if (same && status != WL_CONNECT_FAILED && status != WL_NO_SSID_AVAIL) {
        return;
    }
    copy_text(wifi_ssid, sizeof wifi_ssid, ssid);
    copy_text(wifi_password, sizeof wifi_password, password);
    wifi_started = true;
    if (ssid[0] == '\0') {
        WiFi.begin();  // no network configured: rejoin the one the SDK has stored
    } else {
        WiFi.begin(ssid, password);
    }
}

static void hal_serial_line(void *, const char *line) {
    Serial.println(line);
}

static uint32_t hal_millis(void *) {
    return millis();
}

static uint32_t hal_random(void *) {
#if defined(ESP8266)
    return ESP.random();
#else
    return esp_random();
#endif
}

static bool hal_config_read(void *, uint8_t *buf, size_t len) {
    for (size_t i = 0; i < len; i++) {
        buf[i] = EEPROM.read((int)i);
    }
    return true;  // the core checks the record's magic and checksum itself
}

static void hal_config_write(void *, const uint8_t *data, size_t len) {
    for (size_t i = 0; i < len; i++) {
        EEPROM.write((int)i, data[i]);
    }
    EEPROM.commit();
}

static void hal_restart(void *) {
    Serial.flush();
    ESP.restart();
}

// ---- events into the core ----

// Called from mqtt.loop(), never from inside a core call.
static void on_message(char *topic, byte *payload, unsigned int length) {
    lc_mqtt_message(&controller, topic, strlen(topic), payload, length);
}

static void poll_serial() {
    while (Serial.available() > 0) {
        char c = (char)Serial.read();
        if (c == '\n' || c == '\r') {
            // An over-long line is dropped whole rather than acted on cut short.
            if (!serial_overflow) {
                lc_serial_input(&controller, serial_line, serial_len);
            }
            serial_len = 0;
            serial_overflow = false;
        } else if (serial_len < sizeof serial_line) {
            serial_line[serial_len++] = c;
        } else {
            serial_overflow = true;
        }
    }
}

// Raw level changes only; the core debounces.
static void poll_button() {
    bool pressed = digitalRead(BUTTON_PIN) == LOW;  // pull-up: pressed pulls the pin low
    if (pressed != button_pressed) {
        button_pressed = pressed;
        lc_button(&controller, pressed);
    }
}

static void poll_wifi() {
    bool up = WiFi.status() == WL_CONNECTED;
    if (up == wifi_up) {
        return;
    }
    wifi_up = up;
    if (!up) {
        // Drop the socket without DISCONNECT: the session is gone, and the broker should
        // publish the will.
        connect_request.wanted = false;
        net.stop();
        mqtt_up = false;
    }
    lc_wifi(&controller, up);
}

static void poll_mqtt() {
    if (connect_request.wanted) {
        connect_request.wanted = false;
        // PubSubClient keeps the host pointer: connect_request.host stays valid.
        mqtt.setServer(connect_request.host, connect_request.port);
        mqtt_up = wifi_up && mqtt.connect(connect_request.client_id, MQTT_USER, MQTT_PASSWORD,
                                          connect_request.will_topic, connect_request.will_qos,
                                          connect_request.will_retain,
                                          connect_request.will_payload);
        if (mqtt_up) {
            lc_mqtt_connected(&controller);
        } else {
            lc_mqtt_connect_failed(&controller);
        }
        return;
    }
    if (mqtt_up && !mqtt.loop()) {
        mqtt_up = false;
        lc_mqtt_lost(&controller);
    }
}

void setup() {
    pinMode(RELAY_PIN, OUTPUT);
    hal_relay(nullptr, false);  // off before anything else can take time
    pinMode(BUTTON_PIN, INPUT_PULLUP);
    Serial.begin(115200);
    EEPROM.begin(LC_CONFIG_SIZE);

    WiFi.mode(WIFI_STA);
    WiFi.persistent(false);  // the core stores the credentials; spare the flash
    WiFi.setAutoReconnect(true);

    mqtt.setBufferSize(MQTT_BUFFER_SIZE);
    mqtt.setKeepAlive(MQTT_KEEP_ALIVE_S);
    mqtt.setSocketTimeout(MQTT_SOCKET_TIMEOUT_S);
    mqtt.setCallback(on_message);

    lc_hal hal;
    hal.user = nullptr;
    hal.relay = hal_relay;
    hal.publish = hal_publish;
    hal.subscribe = hal_subscribe;
    hal.connect = hal_connect;
    hal.disconnect = hal_disconnect;
    hal.wifi_begin = hal_wifi_begin;
    hal.serial_line = hal_serial_line;
    hal.millis = hal_millis;
    hal.random = hal_random;
    hal.config_read = hal_config_read;
    hal.config_write = hal_config_write;
    hal.restart = hal_restart;
    lc_init(&controller, &hal, FW_VERSION);
    lc_boot(&controller);
}

void loop() {
    poll_serial();
    poll_button();
    poll_wifi();
    poll_mqtt();
    lc_tick(&controller);
    delay(1);  // lets the Wi-Fi stack run; the core's timers need only millisecond steps
}
