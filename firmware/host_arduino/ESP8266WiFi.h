#ifndef HOST_ESP8266WIFI_H
#define HOST_ESP8266WIFI_H

#if !defined(ESP8266)
#error "ESP8266WiFi.h is the ESP8266's; an ESP32 includes WiFi.h"
#endif

#include "host_wifi.h"

class ESP8266WiFiClass : public HostWiFiStation {};

extern ESP8266WiFiClass WiFi;

#endif
