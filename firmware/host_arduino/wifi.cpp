// The Wi-Fi station and WiFiClient on the host's TCP stack.
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <vector>

#include "Arduino.h"
#include "host.h"
#if defined(ESP8266)
#include "ESP8266WiFi.h"
#else
#include "WiFi.h"
#endif

namespace {

// From WiFi.begin() (or the access point coming back) to joined. Real joins take
// seconds; the host keeps a little, so a restarted board does not reconnect before the
// broker has seen its old connection close.
const unsigned long JOIN_MS = 20;
// How long a TCP connect or a blocked write may take.
const unsigned long SOCKET_TIMEOUT_MS = 5000;

struct Station {
    bool in_range = true;         // the access point, as the parent says
    bool started = false;         // WiFi.begin() was called
    bool auto_reconnect = true;
    bool joining = false;
    unsigned long joins_at = 0;
    bool joined = false;

    void update() {
        if (joining && in_range && millis() >= joins_at) {
            joining = false;
            joined = true;
            host_note_activity();
        }
    }
};

Station station;

// Every WiFiClient, for an idle delay() to wake on its socket.
// Built on first use: the sketch's global clients are constructed before this file's
// globals may be.
std::vector<WiFiClient *> &clients() {
    static std::vector<WiFiClient *> all;
    return all;
}

bool wait_for(int fd, short events, unsigned long timeout_ms) {
    pollfd p = {fd, events, 0};
    int ready;
    do {
        ready = poll(&p, 1, static_cast<int>(timeout_ms));
    } while (ready < 0 && errno == EINTR);
    return ready > 0 && (p.revents & (events | POLLERR | POLLHUP)) != 0;
}

}  // namespace

#if defined(ESP8266)
ESP8266WiFiClass WiFi;
#else
WiFiClass WiFi;
#endif

void host_access_point(bool in_range) {
    host_note_activity();
    station.update();
    station.in_range = in_range;
    if (!in_range) {
        if (station.joined && station.auto_reconnect) {
            station.joining = true;  // the stack keeps looking for it
        }
        station.joined = false;
    } else if (station.joining) {
        station.joins_at = millis() + JOIN_MS;
    }
}

unsigned long host_wifi_next_due() {
    return station.joining && station.in_range ? station.joins_at : ULONG_MAX;
}

int host_socket_fds(int *fds, int max) {
    int count = 0;
    for (WiFiClient *client : clients()) {
        int fd = client->idle_fd();
        if (fd == WiFiClient::UNREAD) {
            return -1;
        }
        if (fd >= 0 && count < max) {
            fds[count++] = fd;
        }
    }
    return count;
}

bool host_station_joined() {
    station.update();
    return station.joined;
}

bool HostWiFiStation::mode(WiFiMode_t) {
    return true;
}

void HostWiFiStation::persistent(bool) {}

bool HostWiFiStation::setAutoReconnect(bool autoReconnect) {
    station.auto_reconnect = autoReconnect;
    return true;
}

bool HostWiFiStation::getAutoReconnect() {
    return station.auto_reconnect;
}

// A begin() aborts a join in progress and drops the current network.
wl_status_t HostWiFiStation::begin(const char *, const char *, int32_t, const uint8_t *,
                                   bool connect) {
    station.started = true;
    station.joined = false;
    station.joining = connect;
    station.joins_at = millis() + JOIN_MS;
    return status();
}

wl_status_t HostWiFiStation::begin() {
    return begin(nullptr);
}

bool HostWiFiStation::disconnect(bool) {
    station.joined = false;
    station.joining = false;
    return true;
}

wl_status_t HostWiFiStation::status() {
    if (!station.started) {
        return WL_IDLE_STATUS;
    }
    station.update();
    return station.joined ? WL_CONNECTED : WL_DISCONNECTED;
}

WiFiClient::WiFiClient() {
    clients().push_back(this);
}

WiFiClient::~WiFiClient() {
    stop();
    clients().erase(std::remove(clients().begin(), clients().end(), this), clients().end());
}

// A connection the peer has closed is news too, until the sketch stops it.
int WiFiClient::idle_fd() const {
    if (fd_ >= 0 && (received_ > taken_ || peer_closed_)) {
        return UNREAD;
    }
    return fd_;
}

int WiFiClient::connect(IPAddress ip, uint16_t port) {
    char host[16];
    snprintf(host, sizeof host, "%u.%u.%u.%u", ip[0], ip[1], ip[2], ip[3]);
    return connect_to(host, port);
}

int WiFiClient::connect(const char *host, uint16_t port) {
    return connect_to(host, port);
}

int WiFiClient::connect_to(const char *host, uint16_t port) {
    stop();
    bool joined = host_station_joined();
    host_sync();
    if (!joined) {
        return 0;
    }
    char service[8];
    snprintf(service, sizeof service, "%u", port);
    addrinfo hints = {};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo *found = nullptr;
    if (getaddrinfo(host, service, &hints, &found) != 0) {
        return 0;
    }
    for (addrinfo *a = found; a != nullptr && fd_ < 0; a = a->ai_next) {
        int fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            continue;
        }
        int connected = ::connect(fd, a->ai_addr, a->ai_addrlen);
        if (connected != 0 && errno == EINPROGRESS && wait_for(fd, POLLOUT, SOCKET_TIMEOUT_MS)) {
            int error = 0;
            socklen_t len = sizeof error;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len);
            connected = error == 0 ? 0 : -1;
        }
        if (connected == 0) {
            int on = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
            fd_ = fd;
        } else {
            close(fd);
        }
    }
    freeaddrinfo(found);
    received_ = 0;
    taken_ = 0;
    return fd_ >= 0 ? 1 : 0;
}

size_t WiFiClient::write(uint8_t c) {
    return write(&c, 1);
}

// Out of range, nothing leaves the radio. Whether it is in range is decided before the
// parent hears the reports held so far: what it does meanwhile comes after this write.
size_t WiFiClient::write(const uint8_t *buffer, size_t size) {
    bool joined = host_station_joined();
    host_sync();
    if (fd_ < 0 || !joined) {
        return 0;
    }
    size_t sent = 0;
    while (sent < size) {
        ssize_t n = send(fd_, buffer + sent, size - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            sent += static_cast<size_t>(n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN && wait_for(fd_, POLLOUT, SOCKET_TIMEOUT_MS)) {
            continue;
        } else {
            break;
        }
    }
    return sent;
}

// Moves what the kernel holds into the client's own buffer, as lwIP keeps received
// segments until the sketch reads them.
size_t WiFiClient::fill() {
    if (taken_ == received_) {
        taken_ = received_ = 0;
    }
    if (fd_ >= 0 && received_ < sizeof buffer_ && host_station_joined()) {
        ssize_t n = recv(fd_, buffer_ + received_, sizeof buffer_ - received_, MSG_DONTWAIT);
        if (n > 0) {
            received_ += static_cast<size_t>(n);
            host_note_activity();
        } else if ((n == 0 || (errno != EAGAIN && errno != EINTR)) && !peer_closed_) {
            peer_closed_ = true;
            host_note_activity();
        }
    }
    return received_ - taken_;
}

int WiFiClient::available() {
    if (fd_ < 0) {
        return 0;
    }
    size_t waiting = fill();
    if (waiting == 0 && !peer_closed_) {
        host_serve_until(millis() + 1, fd_);
        waiting = fill();
    }
    return static_cast<int>(waiting);
}

int WiFiClient::read() {
    uint8_t c;
    return read(&c, 1) == 1 ? c : -1;
}

int WiFiClient::read(uint8_t *buffer, size_t size) {
    size_t waiting = fill();
    if (waiting == 0) {
        return -1;
    }
    size_t n = size < waiting ? size : waiting;
    memcpy(buffer, buffer_ + taken_, n);
    taken_ += n;
    return static_cast<int>(n);
}

int WiFiClient::peek() {
    return fill() > 0 ? buffer_[taken_] : -1;
}

void WiFiClient::flush() {}

void WiFiClient::stop() {
    if (fd_ >= 0) {
        host_sync();
        host_note_activity();
        // Closing with unread bytes makes the kernel send RST, and a peer that has not yet
        // read what came before (a DISCONNECT, say) may then lose it: send FIN first and
        // drop what is waiting, so the close is the orderly one the chip's stack makes.
        shutdown(fd_, SHUT_WR);
        char unread[256];
        while (recv(fd_, unread, sizeof unread, MSG_DONTWAIT) > 0) {
        }
        close(fd_);
        fd_ = -1;
    }
    received_ = taken_ = 0;
    peer_closed_ = false;
}

uint8_t WiFiClient::connected() {
    if (fd_ < 0) {
        return 0;
    }
    return fill() > 0 || !peer_closed_;
}
