// The station side of the Wi-Fi stack, shared by ESP8266WiFi.h and WiFi.h. The radio is
// imaginary: the access point comes and goes when the board's parent says so, and a join
// takes HOST_WIFI_JOIN_MS once it is in range.
#ifndef HOST_WIFI_H
#define HOST_WIFI_H

#include <stdint.h>

#include "WiFiClient.h"

#if defined(ESP8266)
typedef enum {
    WL_NO_SHIELD = 255,
    WL_IDLE_STATUS = 0,
    WL_NO_SSID_AVAIL = 1,
    WL_SCAN_COMPLETED = 2,
    WL_CONNECTED = 3,
    WL_CONNECT_FAILED = 4,
    WL_CONNECTION_LOST = 5,
    WL_WRONG_PASSWORD = 6,
    WL_DISCONNECTED = 7
} wl_status_t;
typedef enum WiFiMode { WIFI_OFF = 0, WIFI_STA = 1, WIFI_AP = 2, WIFI_AP_STA = 3 } WiFiMode_t;
#else
typedef enum {
    WL_NO_SHIELD = 255,
    WL_IDLE_STATUS = 0,
    WL_NO_SSID_AVAIL = 1,
    WL_SCAN_COMPLETED = 2,
    WL_CONNECTED = 3,
    WL_CONNECT_FAILED = 4,
    WL_CONNECTION_LOST = 5,
    WL_DISCONNECTED = 6
} wl_status_t;
typedef enum {
    WIFI_MODE_NULL = 0,
    WIFI_MODE_STA,
    WIFI_MODE_AP,
    WIFI_MODE_APSTA,
    WIFI_MODE_MAX
} wifi_mode_t;
typedef wifi_mode_t WiFiMode_t;
#define WIFI_OFF WIFI_MODE_NULL
#define WIFI_STA WIFI_MODE_STA
#define WIFI_AP WIFI_MODE_AP
#define WIFI_AP_STA WIFI_MODE_APSTA
#endif

class HostWiFiStation {
public:
    bool mode(WiFiMode_t mode);
    void persistent(bool persistent);
    bool setAutoReconnect(bool autoReconnect);
    bool getAutoReconnect();
    wl_status_t begin(const char *ssid, const char *passphrase = nullptr, int32_t channel = 0,
                      const uint8_t *bssid = nullptr, bool connect = true);
    // Rejoins the network the SDK has stored.
    wl_status_t begin();
    bool disconnect(bool wifioff = false);
    wl_status_t status();
    bool isConnected() { return status() == WL_CONNECTED; }
};

#endif
