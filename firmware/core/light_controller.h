/*
 * Light-controller firmware core: a relay, a wall switch and one MQTT topic.
 *
 * Portable C99, freestanding (only <stdbool.h>, <stddef.h>, <stdint.h>): no heap, no
 * mutable static data, no blocking calls. All state lives in one lc_ctx owned by the
 * caller; the outside world is reached only through the callbacks of lc_hal. The same
 * code runs in the Arduino sketch and, through the Rust crate, in the host simulator.
 *
 * Rules for the caller:
 *   - call lc_init once, then lc_boot at power-on; every other event before lc_boot
 *     (or after a restart request) is ignored;
 *   - never call an lc_* event function from inside a HAL callback: queue the work and
 *     deliver it from the main loop (the core is not re-entrant);
 *   - every lc_hal callback must be set;
 *   - call lc_tick often (every few milliseconds): it runs the reconnect timer and
 *     finishes the debounce window.
 */
#ifndef LIGHT_CONTROLLER_H
#define LIGHT_CONTROLLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Limits, in bytes, without the terminating NUL. Longer values are rejected. */
#define LC_SSID_MAX 32       /* 802.11 SSID length */
#define LC_PASSWORD_MAX 64   /* WPA2: 63 characters, or 64 hex digits */
#define LC_HOST_MAX 64
#define LC_CLIENT_ID_MAX 64
#define LC_TOPIC_MAX 128
#define LC_VERSION_MAX 31    /* longer version strings are cut */
#define LC_DEBOUNCE_MAX_MS 1000

/* The longest serial line the core prints, with its NUL (the status line is the longest). */
#define LC_LINE_MAX 320

/* Size of the persistent configuration record passed to config_read / config_write. */
#define LC_CONFIG_SIZE                                                                     \
    (4 + (LC_SSID_MAX + 1) + (LC_PASSWORD_MAX + 1) + (LC_HOST_MAX + 1) + 2 +               \
     (LC_CLIENT_ID_MAX + 1) + (LC_TOPIC_MAX + 1) + 2 + 4)

/* Reconnect backoff: doubles from MIN to MAX, each delay jittered by +-20 %. */
#define LC_BACKOFF_MIN_MS 250u
#define LC_BACKOFF_MAX_MS 8000u

typedef enum lc_state {
    LC_OFFLINE = 0,          /* not booted, or restarting */
    LC_CONNECTING_WIFI = 1,
    LC_LOOKING_FOR_BROKER = 2,
    LC_ACTIVE = 3            /* connected to the broker and subscribed */
} lc_state;

/* What lc_hal.connect is asked to open. Strings are NUL-terminated and valid only
 * during the callback. */
typedef struct lc_connect_request {
    const char *client_id;
    const char *host;
    uint16_t port;
    const char *will_topic;   /* T/status */
    const char *will_payload; /* "offline" */
    uint8_t will_qos;
    bool will_retain;
} lc_connect_request;

/* The board. Every callback gets `user` back. Strings are NUL-terminated and valid only
 * during the callback. */
typedef struct lc_hal {
    void *user;
    /* Drive the relay (true = light on). */
    void (*relay)(void *user, bool on);
    /* Publish; false if the message could not be handed to the network. */
    bool (*publish)(void *user, const char *topic, const uint8_t *payload, size_t len,
                    uint8_t qos, bool retain);
    /* Subscribe; false if the request could not be sent. */
    bool (*subscribe)(void *user, const char *topic, uint8_t qos);
    /* Start connecting to the broker. Report the outcome later, exactly once, with
     * lc_mqtt_connected or lc_mqtt_connect_failed. */
    void (*connect)(void *user, const lc_connect_request *request);
    /* Close the MQTT session; no event is expected for it afterwards. */
    void (*disconnect)(void *user);
    /* Join (or rejoin) a Wi-Fi network; report with lc_wifi. An empty ssid leaves the
     * choice of network to the board. */
    void (*wifi_begin)(void *user, const char *ssid, const char *password);
    /* One line for the serial console, without line terminator. */
    void (*serial_line)(void *user, const char *line);
    /* Milliseconds since an arbitrary start; wraps around like Arduino millis(). */
    uint32_t (*millis)(void *user);
    /* A random number, used for reconnect jitter. */
    uint32_t (*random)(void *user);
    /* Fill buf with the stored record (LC_CONFIG_SIZE bytes); false if there is none. */
    bool (*config_read)(void *user, uint8_t *buf, size_t len);
    /* Store the record (LC_CONFIG_SIZE bytes). */
    void (*config_write)(void *user, const uint8_t *data, size_t len);
    /* Restart the board; the core does nothing more until lc_boot. */
    void (*restart)(void *user);
} lc_hal;

/* The configuration (also what is stored, in the layout described in the .c file). */
typedef struct lc_config {
    char ssid[LC_SSID_MAX + 1];
    char password[LC_PASSWORD_MAX + 1];
    char host[LC_HOST_MAX + 1];
    uint16_t port;
    char client_id[LC_CLIENT_ID_MAX + 1];
    char topic[LC_TOPIC_MAX + 1];
    uint16_t debounce_ms;
} lc_config;

/* The whole state of one controller. Allocate it (statically is fine) and pass it to the
 * functions below; its fields are private to the core. */
typedef struct lc_ctx {
    lc_hal hal;
    char version[LC_VERSION_MAX + 1];
    lc_config cfg;
    char status_topic[LC_TOPIC_MAX + sizeof "/status"];
    char state_topic[LC_TOPIC_MAX + sizeof "/state"];
    lc_state state;
    bool relay;
    bool pending;          /* a switch change not yet delivered on T */
    bool connect_pending;  /* a connect request awaits its outcome */
    bool timer_armed;      /* reconnect timer */
    uint32_t timer_start;
    uint32_t timer_delay;
    uint32_t backoff_ms;   /* base of the next reconnect delay */
    bool raw_pressed;      /* last button level seen */
    bool stable_pressed;   /* debounced button level */
    bool locked;           /* inside the debounce window */
    uint32_t lock_start;
    char line[LC_LINE_MAX];
    size_t line_len;
    uint8_t record[LC_CONFIG_SIZE];
} lc_ctx;

/* Set up ctx with a copy of *hal and of version. Calls no HAL callback. */
void lc_init(lc_ctx *ctx, const lc_hal *hal, const char *version);

/* Power-on: relay off, boot line, configuration from storage, Wi-Fi. */
void lc_boot(lc_ctx *ctx);

/* Timers: reconnect backoff and the end of the debounce window. */
void lc_tick(lc_ctx *ctx);

/* Returned by lc_ms_until_tick when no timer runs. */
#define LC_NO_TIMER UINT32_MAX

/* Milliseconds from `now` until lc_tick has work (0: now), or LC_NO_TIMER. Lets a host
 * sleep between events instead of calling lc_tick every few milliseconds. */
uint32_t lc_ms_until_tick(const lc_ctx *ctx, uint32_t now);

/* Wi-Fi link went up or down. */
void lc_wifi(lc_ctx *ctx, bool up);

/* Outcome of a connect request, and loss of an established session. */
void lc_mqtt_connected(lc_ctx *ctx);
void lc_mqtt_connect_failed(lc_ctx *ctx);
void lc_mqtt_lost(lc_ctx *ctx);

/* An incoming message. Neither buffer needs a NUL; both may hold any bytes. */
void lc_mqtt_message(lc_ctx *ctx, const char *topic, size_t topic_len,
                     const uint8_t *payload, size_t payload_len);

/* Raw wall-switch level (true = pressed), debounced inside. Report every change. */
void lc_button(lc_ctx *ctx, bool pressed);

/* One already-debounced press. */
void lc_press(lc_ctx *ctx);

/* One line typed on the serial console, without its line terminator; any bytes. */
void lc_serial_input(lc_ctx *ctx, const char *line, size_t len);

bool lc_relay(const lc_ctx *ctx);
lc_state lc_get_state(const lc_ctx *ctx);

/* For callers that allocate the context without seeing this header (foreign code). */
size_t lc_ctx_size(void);
size_t lc_ctx_align(void);

#ifdef __cplusplus
}
#endif

#endif /* LIGHT_CONTROLLER_H */
