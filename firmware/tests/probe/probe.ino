// A test sketch for the host Arduino core: console commands call PubSubClient and EEPROM
// directly and print what they return.
//   connect HOST PORT      wait for Wi-Fi, then a synchronous connect
//   eeprom write A V | eeprom read A | commit
#include <Arduino.h>
#include <EEPROM.h>
#include <ESP8266WiFi.h>
#include <PubSubClient.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static WiFiClient net;
static PubSubClient mqtt(net);
static char line[128];
static size_t line_len = 0;
static char host[64];

static void on_message(char *topic, byte *, unsigned int length) {
    char text[160];
    snprintf(text, sizeof text, "message %s %u", topic, length);
    Serial.println(text);
}

static void run(const char *command) {
    char text[96];
    unsigned port = 0;
    int address = 0;
    int value = 0;
    if (sscanf(command, "connect %63s %u", host, &port) == 2) {
        while (WiFi.status() != WL_CONNECTED) {
            delay(1);
        }
        mqtt.setServer(host, (uint16_t)port);
        unsigned long started = millis();
        bool ok = mqtt.connect("probe");
        snprintf(text, sizeof text, "connect ok=%d state=%d ms=%lu", ok ? 1 : 0, mqtt.state(),
                 millis() - started);
        Serial.println(text);
    } else if (sscanf(command, "eeprom write %d %d", &address, &value) == 2) {
        EEPROM.write(address, (uint8_t)value);
        Serial.println("written");
    } else if (sscanf(command, "eeprom read %d", &address) == 1) {
        snprintf(text, sizeof text, "value %d", EEPROM.read(address));
        Serial.println(text);
    } else if (strcmp(command, "commit") == 0) {
        Serial.println(EEPROM.commit() ? "committed" : "commit failed");
    }
}

void setup() {
    Serial.begin(115200);
    EEPROM.begin(16);
    WiFi.mode(WIFI_STA);
    WiFi.begin("probe", "secret");
    mqtt.setCallback(on_message);
    mqtt.setBufferSize(64);
    mqtt.setKeepAlive(1);
    mqtt.setSocketTimeout(1);
}

void loop() {
    while (Serial.available() > 0) {
        char c = (char)Serial.read();
        if (c == '\n') {
            line[line_len] = '\0';
            run(line);
            line_len = 0;
        } else if (line_len + 1 < sizeof line) {
            line[line_len++] = c;
        }
    }
    static bool was_connected = false;
    if (mqtt.connected()) {
        was_connected = true;
        mqtt.loop();
    } else if (was_connected) {
        was_connected = false;
        char text[32];
        snprintf(text, sizeof text, "lost state=%d", mqtt.state());
        Serial.println(text);
    }
    delay(1);
}
