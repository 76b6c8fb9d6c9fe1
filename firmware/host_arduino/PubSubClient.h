// An MQTT 3.1.1 client with the API and the behaviour of PubSubClient 2.8 (knolleary),
// written for the host: one buffer for every packet in and out, a connect that blocks
// until CONNACK or the socket timeout, QoS 0 publishes only, incoming packets larger
// than the buffer read and dropped whole, keep-alive pings sent from loop().
#ifndef HOST_PUBSUBCLIENT_H
#define HOST_PUBSUBCLIENT_H

#include <functional>
#include <stdint.h>

#include "Arduino.h"
#include "Client.h"
#include "IPAddress.h"

#define MQTT_VERSION_3_1_1 4
#define MQTT_MAX_PACKET_SIZE 256
#define MQTT_KEEPALIVE 15
#define MQTT_SOCKET_TIMEOUT 15
#define MQTT_MAX_HEADER_SIZE 5

#define MQTT_CONNECTION_TIMEOUT -4
#define MQTT_CONNECTION_LOST -3
#define MQTT_CONNECT_FAILED -2
#define MQTT_DISCONNECTED -1
#define MQTT_CONNECTED 0
#define MQTT_CONNECT_BAD_PROTOCOL 1
#define MQTT_CONNECT_BAD_CLIENT_ID 2
#define MQTT_CONNECT_UNAVAILABLE 3
#define MQTT_CONNECT_BAD_CREDENTIALS 4
#define MQTT_CONNECT_UNAUTHORIZED 5

// On ESP8266 and ESP32 the callback is a std::function.
#define MQTT_CALLBACK_SIGNATURE std::function<void(char *, uint8_t *, unsigned int)> callback

class PubSubClient : public Print {
public:
    PubSubClient();
    explicit PubSubClient(Client &client);
    ~PubSubClient() override;
    PubSubClient(const PubSubClient &) = delete;
    PubSubClient &operator=(const PubSubClient &) = delete;

    PubSubClient &setServer(IPAddress ip, uint16_t port);
    PubSubClient &setServer(uint8_t *ip, uint16_t port);
    // Keeps the pointer: the string must outlive the connections made with it.
    PubSubClient &setServer(const char *domain, uint16_t port);
    PubSubClient &setCallback(MQTT_CALLBACK_SIGNATURE);
    PubSubClient &setClient(Client &client);
    PubSubClient &setKeepAlive(uint16_t seconds);
    PubSubClient &setSocketTimeout(uint16_t seconds);
    // Every packet, in or out, must fit: larger incoming ones are dropped.
    boolean setBufferSize(uint16_t size);
    uint16_t getBufferSize();

    boolean connect(const char *id);
    boolean connect(const char *id, const char *user, const char *pass);
    boolean connect(const char *id, const char *willTopic, uint8_t willQos, boolean willRetain,
                    const char *willMessage);
    boolean connect(const char *id, const char *user, const char *pass, const char *willTopic,
                    uint8_t willQos, boolean willRetain, const char *willMessage);
    boolean connect(const char *id, const char *user, const char *pass, const char *willTopic,
                    uint8_t willQos, boolean willRetain, const char *willMessage,
                    boolean cleanSession);
    void disconnect();

    // QoS 0 always.
    boolean publish(const char *topic, const char *payload);
    boolean publish(const char *topic, const char *payload, boolean retained);
    boolean publish(const char *topic, const uint8_t *payload, unsigned int length);
    boolean publish(const char *topic, const uint8_t *payload, unsigned int length,
                    boolean retained);
    boolean subscribe(const char *topic);
    // QoS 0 or 1.
    boolean subscribe(const char *topic, uint8_t qos);
    boolean unsubscribe(const char *topic);

    // Keep-alive and incoming packets; false once the connection is gone.
    boolean loop();
    boolean connected();
    int state();

    size_t write(uint8_t byte) override;
    size_t write(const uint8_t *buffer, size_t size) override;

    // When this client's keep-alive next needs loop() (millis()), or ULONG_MAX.
    unsigned long next_due();

private:
    boolean send_packet(uint8_t header, uint16_t body_length);
    boolean read_byte(uint8_t *byte);
    uint32_t read_packet(uint8_t *length_bytes);
    boolean fits(uint16_t used, const char *text);
    uint16_t put_string(const char *text, uint16_t at);
    boolean send_subscription(uint8_t type, const char *topic, int qos);
    void handle_publish(uint16_t length, uint8_t length_bytes, unsigned long now);

    Client *client_ = nullptr;
    uint8_t *buffer_ = nullptr;
    uint16_t buffer_size_ = 0;
    uint16_t keep_alive_s_ = MQTT_KEEPALIVE;
    uint16_t socket_timeout_s_ = MQTT_SOCKET_TIMEOUT;
    uint16_t next_message_id_ = 1;
    unsigned long last_out_ = 0;
    unsigned long last_in_ = 0;
    bool ping_outstanding_ = false;
    MQTT_CALLBACK_SIGNATURE;
    IPAddress ip_;
    const char *domain_ = nullptr;
    uint16_t port_ = 1883;
    int state_ = MQTT_DISCONNECTED;
};

#endif
