// A TCP client on a real socket of the host. It only reaches the network while the
// station is joined, as on the chip.
#ifndef HOST_WIFICLIENT_H
#define HOST_WIFICLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "Client.h"

class WiFiClient : public Client {
public:
    WiFiClient();
    ~WiFiClient() override;
    WiFiClient(const WiFiClient &) = delete;
    WiFiClient &operator=(const WiFiClient &) = delete;

    int connect(IPAddress ip, uint16_t port) override;
    int connect(const char *host, uint16_t port) override;
    size_t write(uint8_t c) override;
    size_t write(const uint8_t *buffer, size_t size) override;
    using Print::write;
    // Bytes waiting; with none, lets the stack run for a moment first (the ESP8266
    // core's optimistic_yield), so a loop polling it does not spin.
    int available() override;
    int read() override;
    int read(uint8_t *buffer, size_t size) override;
    int peek() override;
    void flush() override;
    void stop() override;
    // True while the connection is open, or while received bytes remain to be read.
    uint8_t connected() override;
    operator bool() override { return fd_ >= 0; }

    // For an idle delay(): the socket to wake on (-1: none), or UNREAD when received
    // bytes or the peer's close wait to be seen.
    static const int UNREAD = -2;
    int idle_fd() const;

private:
    int connect_to(const char *host, uint16_t port);
    size_t fill();
    int fd_ = -1;
    bool peer_closed_ = false;
    uint8_t buffer_[4096];
    size_t received_ = 0;
    size_t taken_ = 0;
};

#endif
