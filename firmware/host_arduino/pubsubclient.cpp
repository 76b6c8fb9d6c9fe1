// PubSubClient's behaviour, packet by packet (MQTT 3.1.1). Every packet is built in and
// read into the one buffer, whose first MQTT_MAX_HEADER_SIZE bytes are kept free for the
// fixed header.
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <vector>

#include "PubSubClient.h"
#include "host.h"

namespace {

const uint8_t CONNECT = 1 << 4;
const uint8_t PUBLISH = 3 << 4;
const uint8_t PUBACK = 4 << 4;
const uint8_t SUBSCRIBE = 8 << 4;
const uint8_t UNSUBSCRIBE = 10 << 4;
const uint8_t PINGREQ = 12 << 4;
const uint8_t PINGRESP = 13 << 4;
const uint8_t DISCONNECT = 14 << 4;
const uint8_t QOS1 = 1 << 1;

// Built on first use: the sketch's global clients are constructed before this file's
// globals may be.
std::vector<PubSubClient *> &clients() {
    static std::vector<PubSubClient *> all;
    return all;
}

}  // namespace

unsigned long host_mqtt_next_due() {
    unsigned long due = ULONG_MAX;
    for (PubSubClient *client : clients()) {
        due = std::min(due, client->next_due());
    }
    return due;
}

void host_mqtt_leave() {
    for (PubSubClient *client : clients()) {
        if (client->connected()) {
            client->disconnect();
        }
    }
}

PubSubClient::PubSubClient() {
    setBufferSize(MQTT_MAX_PACKET_SIZE);
    clients().push_back(this);
}

PubSubClient::PubSubClient(Client &client) : PubSubClient() {
    client_ = &client;
}

PubSubClient::~PubSubClient() {
    clients().erase(std::remove(clients().begin(), clients().end(), this), clients().end());
    free(buffer_);
}

unsigned long PubSubClient::next_due() {
    if (state_ != MQTT_CONNECTED) {
        return ULONG_MAX;
    }
    return std::min(last_in_, last_out_) + keep_alive_s_ * 1000UL + 1;
}

PubSubClient &PubSubClient::setServer(IPAddress ip, uint16_t port) {
    ip_ = ip;
    port_ = port;
    domain_ = nullptr;
    return *this;
}

PubSubClient &PubSubClient::setServer(uint8_t *ip, uint16_t port) {
    return setServer(IPAddress(ip[0], ip[1], ip[2], ip[3]), port);
}

PubSubClient &PubSubClient::setServer(const char *domain, uint16_t port) {
    domain_ = domain;
    port_ = port;
    return *this;
}

PubSubClient &PubSubClient::setCallback(MQTT_CALLBACK_SIGNATURE) {
    this->callback = callback;
    return *this;
}

PubSubClient &PubSubClient::setClient(Client &client) {
    client_ = &client;
    return *this;
}

PubSubClient &PubSubClient::setKeepAlive(uint16_t seconds) {
    keep_alive_s_ = seconds;
    return *this;
}

PubSubClient &PubSubClient::setSocketTimeout(uint16_t seconds) {
    socket_timeout_s_ = seconds;
    return *this;
}

boolean PubSubClient::setBufferSize(uint16_t size) {
    if (size == 0) {
        return false;
    }
    uint8_t *resized = static_cast<uint8_t *>(realloc(buffer_, size));
    if (resized == nullptr) {
        return false;
    }
    buffer_ = resized;
    buffer_size_ = size;
    return true;
}

uint16_t PubSubClient::getBufferSize() {
    return buffer_size_;
}

boolean PubSubClient::connect(const char *id) {
    return connect(id, nullptr, nullptr, nullptr, 0, false, nullptr, true);
}

boolean PubSubClient::connect(const char *id, const char *user, const char *pass) {
    return connect(id, user, pass, nullptr, 0, false, nullptr, true);
}

boolean PubSubClient::connect(const char *id, const char *willTopic, uint8_t willQos,
                              boolean willRetain, const char *willMessage) {
    return connect(id, nullptr, nullptr, willTopic, willQos, willRetain, willMessage, true);
}

boolean PubSubClient::connect(const char *id, const char *user, const char *pass,
                              const char *willTopic, uint8_t willQos, boolean willRetain,
                              const char *willMessage) {
    return connect(id, user, pass, willTopic, willQos, willRetain, willMessage, true);
}

// Blocks until CONNACK, or for the socket timeout when the broker says nothing.
boolean PubSubClient::connect(const char *id, const char *user, const char *pass,
                              const char *willTopic, uint8_t willQos, boolean willRetain,
                              const char *willMessage, boolean cleanSession) {
    if (connected()) {
        return true;
    }
    int opened = 1;
    if (!client_->connected()) {
        opened = domain_ != nullptr ? client_->connect(domain_, port_)
                                    : client_->connect(ip_, port_);
    }
    if (opened != 1) {
        state_ = MQTT_CONNECT_FAILED;
        return false;
    }
    next_message_id_ = 1;
    static const uint8_t protocol[] = {0x00, 0x04, 'M', 'Q', 'T', 'T', MQTT_VERSION_3_1_1};
    uint16_t at = MQTT_MAX_HEADER_SIZE;
    memcpy(buffer_ + at, protocol, sizeof protocol);
    at += sizeof protocol;
    uint8_t flags = 0;
    if (willTopic != nullptr) {
        flags = static_cast<uint8_t>(0x04 | (willQos << 3) | (willRetain ? 0x20 : 0));
    }
    if (cleanSession) {
        flags |= 0x02;
    }
    if (user != nullptr) {
        flags |= 0x80;
        if (pass != nullptr) {
            flags |= 0x40;
        }
    }
    buffer_[at++] = flags;
    buffer_[at++] = static_cast<uint8_t>(keep_alive_s_ >> 8);
    buffer_[at++] = static_cast<uint8_t>(keep_alive_s_ & 0xFF);
    const char *fields[] = {
        id,
        willTopic,
        willTopic != nullptr ? (willMessage != nullptr ? willMessage : "") : nullptr,
        user,
        user != nullptr ? pass : nullptr,
    };
    for (const char *field : fields) {
        if (field == nullptr) {
            continue;
        }
        if (!fits(at, field)) {
            client_->stop();  // a CONNECT larger than the buffer is never sent
            return false;
        }
        at = put_string(field, at);
    }
    send_packet(CONNECT, static_cast<uint16_t>(at - MQTT_MAX_HEADER_SIZE));
    last_in_ = last_out_ = millis();
    while (!client_->available()) {
        if (millis() - last_in_ >= socket_timeout_s_ * 1000UL) {
            state_ = MQTT_CONNECTION_TIMEOUT;
            client_->stop();
            return false;
        }
    }
    uint8_t length_bytes;
    if (read_packet(&length_bytes) == 4) {
        if (buffer_[3] == 0) {
            last_in_ = millis();
            ping_outstanding_ = false;
            state_ = MQTT_CONNECTED;
            return true;
        }
        state_ = buffer_[3];  // the CONNACK's refusal code
    }
    client_->stop();
    return false;
}

void PubSubClient::disconnect() {
    buffer_[0] = DISCONNECT;
    buffer_[1] = 0;
    client_->write(buffer_, 2);
    state_ = MQTT_DISCONNECTED;
    client_->flush();
    client_->stop();
    last_in_ = last_out_ = millis();
}

boolean PubSubClient::publish(const char *topic, const char *payload) {
    return publish(topic, payload, false);
}

boolean PubSubClient::publish(const char *topic, const char *payload, boolean retained) {
    unsigned int length = payload != nullptr ? strnlen(payload, buffer_size_) : 0;
    return publish(topic, reinterpret_cast<const uint8_t *>(payload), length, retained);
}

boolean PubSubClient::publish(const char *topic, const uint8_t *payload, unsigned int length) {
    return publish(topic, payload, length, false);
}

boolean PubSubClient::publish(const char *topic, const uint8_t *payload, unsigned int length,
                              boolean retained) {
    if (!connected()) {
        return false;
    }
    if (buffer_size_ < MQTT_MAX_HEADER_SIZE + 2 + strnlen(topic, buffer_size_) + length) {
        return false;  // too long for the buffer
    }
    uint16_t at = put_string(topic, MQTT_MAX_HEADER_SIZE);
    if (length > 0) {
        memcpy(buffer_ + at, payload, length);
    }
    at = static_cast<uint16_t>(at + length);
    uint8_t header = PUBLISH | (retained ? 1 : 0);
    return send_packet(header, static_cast<uint16_t>(at - MQTT_MAX_HEADER_SIZE));
}

boolean PubSubClient::subscribe(const char *topic) {
    return subscribe(topic, 0);
}

boolean PubSubClient::subscribe(const char *topic, uint8_t qos) {
    if (qos > 1) {
        return false;
    }
    return send_subscription(SUBSCRIBE, topic, qos);
}

boolean PubSubClient::unsubscribe(const char *topic) {
    return send_subscription(UNSUBSCRIBE, topic, -1);
}

// SUBSCRIBE (with its QoS) or UNSUBSCRIBE (qos < 0) for one topic.
boolean PubSubClient::send_subscription(uint8_t type, const char *topic, int qos) {
    if (topic == nullptr || buffer_size_ < 9 + strnlen(topic, buffer_size_) || !connected()) {
        return false;
    }
    next_message_id_++;
    if (next_message_id_ == 0) {
        next_message_id_ = 1;
    }
    uint16_t at = MQTT_MAX_HEADER_SIZE;
    buffer_[at++] = static_cast<uint8_t>(next_message_id_ >> 8);
    buffer_[at++] = static_cast<uint8_t>(next_message_id_ & 0xFF);
    at = put_string(topic, at);
    if (qos >= 0) {
        buffer_[at++] = static_cast<uint8_t>(qos);
    }
    return send_packet(type | QOS1, static_cast<uint16_t>(at - MQTT_MAX_HEADER_SIZE));
}

boolean PubSubClient::loop() {
    if (!connected()) {
        return false;
    }
    unsigned long now = millis();
    unsigned long keep_alive_ms = keep_alive_s_ * 1000UL;
    if (now - last_in_ > keep_alive_ms || now - last_out_ > keep_alive_ms) {
        if (ping_outstanding_) {
            state_ = MQTT_CONNECTION_TIMEOUT;  // the broker missed a whole keep-alive
            client_->stop();
            return false;
        }
        buffer_[0] = PINGREQ;
        buffer_[1] = 0;
        client_->write(buffer_, 2);
        last_out_ = last_in_ = now;
        ping_outstanding_ = true;
    }
    if (client_->available()) {
        uint8_t length_bytes;
        // Read as PubSubClient does: the length kept in 16 bits.
        uint16_t length = static_cast<uint16_t>(read_packet(&length_bytes));
        if (length > 0) {
            last_in_ = now;
            uint8_t type = buffer_[0] & 0xF0;
            if (type == PUBLISH) {
                if (callback) {
                    handle_publish(length, length_bytes, now);
                }
            } else if (type == PINGREQ) {
                buffer_[0] = PINGRESP;
                buffer_[1] = 0;
                client_->write(buffer_, 2);
            } else if (type == PINGRESP) {
                ping_outstanding_ = false;
            }
        } else if (!connected()) {
            return false;
        }
    }
    return true;
}

// Hands a PUBLISH in the buffer to the callback, the topic made a C string in place;
// a QoS 1 message is acknowledged after the callback has returned.
void PubSubClient::handle_publish(uint16_t length, uint8_t length_bytes, unsigned long now) {
    uint16_t topic_length =
        static_cast<uint16_t>((buffer_[length_bytes + 1] << 8) + buffer_[length_bytes + 2]);
    bool qos1 = (buffer_[0] & 0x06) == QOS1;
    uint32_t payload_at = length_bytes + 3u + topic_length + (qos1 ? 2u : 0u);
    if (payload_at > length) {
        return;  // a topic longer than the packet
    }
    memmove(buffer_ + length_bytes + 2, buffer_ + length_bytes + 3, topic_length);
    buffer_[length_bytes + 2 + topic_length] = 0;
    char *topic = reinterpret_cast<char *>(buffer_ + length_bytes + 2);
    uint16_t message_id = 0;
    if (qos1) {
        message_id = static_cast<uint16_t>((buffer_[length_bytes + 3 + topic_length] << 8) +
                                           buffer_[length_bytes + 4 + topic_length]);
    }
    callback(topic, buffer_ + payload_at, length - payload_at);
    if (qos1) {
        buffer_[0] = PUBACK;
        buffer_[1] = 2;
        buffer_[2] = static_cast<uint8_t>(message_id >> 8);
        buffer_[3] = static_cast<uint8_t>(message_id & 0xFF);
        client_->write(buffer_, 4);
        last_out_ = now;
    }
}

boolean PubSubClient::connected() {
    if (client_ == nullptr) {
        return false;
    }
    if (!client_->connected()) {
        if (state_ == MQTT_CONNECTED) {
            state_ = MQTT_CONNECTION_LOST;
            client_->flush();
            client_->stop();
        }
        return false;
    }
    return state_ == MQTT_CONNECTED;
}

int PubSubClient::state() {
    return state_;
}

size_t PubSubClient::write(uint8_t byte) {
    last_out_ = millis();
    return client_->write(byte);
}

size_t PubSubClient::write(const uint8_t *buffer, size_t size) {
    last_out_ = millis();
    return client_->write(buffer, size);
}

// Waits up to the socket timeout for one byte.
boolean PubSubClient::read_byte(uint8_t *byte) {
    unsigned long started = millis();
    while (!client_->available()) {
        yield();
        if (millis() - started >= socket_timeout_s_ * 1000UL) {
            return false;
        }
    }
    *byte = static_cast<uint8_t>(client_->read());
    return true;
}

// Reads one whole packet. Returns the bytes kept in the buffer, or 0 when the packet
// did not fit (it is still read to its end, so the stream stays in step), when a byte
// did not come within the socket timeout, or when the length is malformed.
uint32_t PubSubClient::read_packet(uint8_t *length_bytes) {
    uint32_t kept = 0;
    uint32_t total = 0;
    auto keep = [&](uint8_t byte) {
        if (kept < buffer_size_) {
            buffer_[kept++] = byte;
        }
        total++;
    };
    uint8_t byte;
    if (!read_byte(&byte)) {
        return 0;
    }
    keep(byte);
    uint32_t remaining = 0;
    uint32_t multiplier = 1;
    do {
        if (total == 5) {
            state_ = MQTT_DISCONNECTED;  // more than four length bytes
            client_->stop();
            return 0;
        }
        if (!read_byte(&byte)) {
            return 0;
        }
        keep(byte);
        remaining += (byte & 127u) * multiplier;
        multiplier <<= 7;
    } while ((byte & 128) != 0);
    *length_bytes = static_cast<uint8_t>(total - 1);
    for (uint32_t i = 0; i < remaining; i++) {
        if (!read_byte(&byte)) {
            return 0;
        }
        keep(byte);
    }
    if (total > buffer_size_) {
        return 0;  // dropped: larger than the buffer
    }
    return kept;
}

boolean PubSubClient::fits(uint16_t used, const char *text) {
    return used + 2 + strnlen(text, buffer_size_) <= buffer_size_;
}

uint16_t PubSubClient::put_string(const char *text, uint16_t at) {
    size_t length = strlen(text);
    buffer_[at++] = static_cast<uint8_t>(length >> 8);
    buffer_[at++] = static_cast<uint8_t>(length & 0xFF);
    memcpy(buffer_ + at, text, length);
    return static_cast<uint16_t>(at + length);
}

boolean PubSubClient::send_packet(uint8_t header, uint16_t body_length) {
    uint8_t length_bytes[4];
    uint8_t count = 0;
    uint16_t remaining = body_length;
    do {
        uint8_t digit = remaining & 127;
        remaining >>= 7;
        if (remaining > 0) {
            digit |= 0x80;
        }
        length_bytes[count++] = digit;
    } while (remaining > 0);
    uint8_t *start = buffer_ + MQTT_MAX_HEADER_SIZE - count - 1;
    start[0] = header;
    memcpy(start + 1, length_bytes, count);
    size_t size = static_cast<size_t>(count) + 1 + body_length;
    size_t written = client_->write(start, size);
    last_out_ = millis();
    return written == size;
}
