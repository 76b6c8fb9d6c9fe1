#ifndef HOST_WIFI_ESP32_H
#define HOST_WIFI_ESP32_H

#if !defined(ESP32)
#error "WiFi.h is the ESP32's; an ESP8266 includes ESP8266WiFi.h"
#endif

#include "host_wifi.h"

class WiFiClass : public HostWiFiStation {};

extern WiFiClass WiFi;

#endif
