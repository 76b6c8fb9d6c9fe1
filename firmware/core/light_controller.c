/*
 * Light-controller firmware core. See light_controller.h for the contract with the board.
 *
 * Persistent record (LC_CONFIG_SIZE bytes; text fields NUL-padded, numbers little-endian):
 *   offset  size  field
 *        0     4  magic "LCF1"
 *        4    33  ssid
 *       37    65  password
 *      102    65  broker host
 *      167     2  broker port
 *      169    65  client id
 *      234   129  topic
 *      363     2  debounce in ms
 *      365     4  FNV-1a 32 of bytes 0..364
 * A record with a wrong magic or checksum, or any value the `config` command would refuse,
 * is ignored as a whole and the defaults are used.
 */
#include "light_controller.h"

#define FW_NAME "light-controller"

#define DEFAULT_HOST "127.0.0.1"
#define DEFAULT_PORT 1883u
#define DEFAULT_CLIENT_ID "light-controller"
#define DEFAULT_TOPIC "living_room_lights"
#define DEFAULT_DEBOUNCE_MS 30u

/* Longest key echoed in a bad_config warning. */
#define KEY_ECHO_MAX 32u

static const uint8_t record_magic[4] = {'L', 'C', 'F', '1'};

static const char *const state_names[] = {"OFFLINE", "CONNECTING_WIFI", "LOOKING_FOR_BROKER",
                                          "ACTIVE"};

/* Keys of the `config` command, in the order the answer lists them. */
enum { KEY_SSID, KEY_PASSWORD, KEY_BROKER, KEY_CLIENT_ID, KEY_TOPIC, KEY_DEBOUNCE, KEY_COUNT };
static const char *const key_names[KEY_COUNT] = {"ssid",      "password", "broker",
                                                 "client_id", "topic",    "debounce_ms"};

/* A borrowed run of bytes, not NUL-terminated. */
typedef struct span {
    const char *p;
    size_t len;
} span;

/* ---- bytes and text (no C library: the core builds freestanding) ---- */

static size_t text_len(const char *s)
{
    size_t n = 0;
    while (s[n] != '\0') {
        n++;
    }
    return n;
}

static span span_of(const char *s)
{
    span out;
    out.p = s;
    out.len = text_len(s);
    return out;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Visible ASCII: values travel in whitespace-separated tokens and end up in serial lines. */
static bool is_visible(char c)
{
    return c > ' ' && c < 0x7f;
}

static char ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static span trim(const char *p, size_t len)
{
    span out;
    while (len > 0 && is_space(p[0])) {
        p++;
        len--;
    }
    while (len > 0 && is_space(p[len - 1])) {
        len--;
    }
    out.p = p;
    out.len = len;
    return out;
}

static bool span_is(span s, const char *word, bool ignore_case)
{
    size_t i;
    for (i = 0; i < s.len; i++) {
        char a = ignore_case ? ascii_lower(s.p[i]) : s.p[i];
        if (word[i] == '\0' || a != word[i]) {
            return false;
        }
    }
    return word[s.len] == '\0';
}

static bool span_has(span s, char c)
{
    size_t i;
    for (i = 0; i < s.len; i++) {
        if (s.p[i] == c) {
            return true;
        }
    }
    return false;
}

static bool all_visible(span s)
{
    size_t i;
    for (i = 0; i < s.len; i++) {
        if (!is_visible(s.p[i])) {
            return false;
        }
    }
    return true;
}

static void copy_span(char *dst, span s)
{
    size_t i;
    for (i = 0; i < s.len; i++) {
        dst[i] = s.p[i];
    }
    dst[s.len] = '\0';
}

static bool text_equal(const char *a, const char *b)
{
    return span_is(span_of(a), b, false);
}

/* The run of non-space bytes at the start of s. */
static span first_word(span s)
{
    span out;
    out.p = s.p;
    out.len = 0;
    while (out.len < s.len && !is_space(s.p[out.len])) {
        out.len++;
    }
    return out;
}

static span after(span s, size_t n)
{
    span out;
    out.p = s.p + n;
    out.len = s.len - n;
    return out;
}

/* ---- serial output ---- */

static void out_start(lc_ctx *ctx)
{
    ctx->line_len = 0;
}

/* Cuts rather than overflows; LC_LINE_MAX is sized so that no line the core builds is cut. */
static void out_char(lc_ctx *ctx, char c)
{
    if (ctx->line_len < LC_LINE_MAX - 1) {
        ctx->line[ctx->line_len++] = c;
    }
}

static void out_span(lc_ctx *ctx, span s)
{
    size_t i;
    for (i = 0; i < s.len; i++) {
        out_char(ctx, s.p[i]);
    }
}

static void out_text(lc_ctx *ctx, const char *s)
{
    out_span(ctx, span_of(s));
}

static void out_u32(lc_ctx *ctx, uint32_t v)
{
    char digits[10];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0);
    while (n > 0) {
        out_char(ctx, digits[--n]);
    }
}

static void out_end(lc_ctx *ctx)
{
    ctx->line[ctx->line_len] = '\0';
    ctx->hal.serial_line(ctx->hal.user, ctx->line);
}

static void print(lc_ctx *ctx, const char *text)
{
    out_start(ctx);
    out_text(ctx, text);
    out_end(ctx);
}

/* ---- configuration ---- */

static bool valid_text(span v, size_t min, size_t max)
{
    return v.len >= min && v.len <= max && all_visible(v);
}

/* IPv6 literals are not supported: a host never contains ':'. */
static bool valid_host(span v)
{
    return valid_text(v, 1, LC_HOST_MAX) && !span_has(v, ':');
}

/* Wildcards are not allowed in a topic that is published to. */
static bool valid_topic(span v)
{
    return valid_text(v, 1, LC_TOPIC_MAX) && !span_has(v, '+') && !span_has(v, '#');
}

/* Plain decimal, at most 5 digits (so no overflow), at most max. */
static bool parse_number(span v, uint32_t max, uint32_t *out)
{
    uint32_t n = 0;
    size_t i;
    if (v.len == 0 || v.len > 5) {
        return false;
    }
    for (i = 0; i < v.len; i++) {
        if (v.p[i] < '0' || v.p[i] > '9') {
            return false;
        }
        n = n * 10u + (uint32_t)(v.p[i] - '0');
    }
    *out = n;
    return n <= max;
}

/* host or host:port; the port defaults to 1883. */
static bool set_broker(lc_config *cfg, span v)
{
    span host = v;
    uint32_t port = DEFAULT_PORT;
    size_t colon = v.len;
    while (colon > 0 && v.p[colon - 1] != ':') {
        colon--;
    }
    if (colon > 0) {
        span digits;
        digits.p = v.p + colon;
        digits.len = v.len - colon;
        host.len = colon - 1;
        if (!parse_number(digits, 65535u, &port) || port == 0) {
            return false;
        }
    }
    if (!valid_host(host)) {
        return false;
    }
    copy_span(cfg->host, host);
    cfg->port = (uint16_t)port;
    return true;
}

static bool set_setting(lc_config *cfg, unsigned key, span v)
{
    uint32_t ms;
    switch (key) {
    case KEY_SSID:
        if (!valid_text(v, 0, LC_SSID_MAX)) {
            return false;
        }
        copy_span(cfg->ssid, v);
        return true;
    case KEY_PASSWORD:
        if (!valid_text(v, 0, LC_PASSWORD_MAX)) {
            return false;
        }
        copy_span(cfg->password, v);
        return true;
    case KEY_BROKER:
        return set_broker(cfg, v);
    case KEY_CLIENT_ID:
        if (!valid_text(v, 1, LC_CLIENT_ID_MAX)) {
            return false;
        }
        copy_span(cfg->client_id, v);
        return true;
    case KEY_TOPIC:
        if (!valid_topic(v)) {
            return false;
        }
        copy_span(cfg->topic, v);
        return true;
    default: /* KEY_DEBOUNCE */
        if (!parse_number(v, LC_DEBOUNCE_MAX_MS, &ms)) {
            return false;
        }
        cfg->debounce_ms = (uint16_t)ms;
        return true;
    }
}

static void set_defaults(lc_config *cfg)
{
    copy_span(cfg->ssid, span_of(""));
    copy_span(cfg->password, span_of(""));
    copy_span(cfg->host, span_of(DEFAULT_HOST));
    cfg->port = DEFAULT_PORT;
    copy_span(cfg->client_id, span_of(DEFAULT_CLIENT_ID));
    copy_span(cfg->topic, span_of(DEFAULT_TOPIC));
    cfg->debounce_ms = DEFAULT_DEBOUNCE_MS;
}

static uint32_t fnv1a(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    size_t i;
    for (i = 0; i < n; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

static void put_bytes(uint8_t *rec, size_t *pos, const uint8_t *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        rec[(*pos)++] = p[i];
    }
}

/* A text field of `size` bytes: the text, then NUL padding. */
static void put_text(uint8_t *rec, size_t *pos, const char *s, size_t size)
{
    size_t n = text_len(s);
    size_t i;
    for (i = 0; i < size; i++) {
        rec[*pos + i] = i < n ? (uint8_t)s[i] : 0u;
    }
    *pos += size;
}

static void put_u16(uint8_t *rec, size_t *pos, uint16_t v)
{
    rec[(*pos)++] = (uint8_t)(v & 0xffu);
    rec[(*pos)++] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *rec, size_t *pos, uint32_t v)
{
    put_u16(rec, pos, (uint16_t)(v & 0xffffu));
    put_u16(rec, pos, (uint16_t)(v >> 16));
}

static void encode_config(const lc_config *cfg, uint8_t *rec)
{
    size_t pos = 0;
    put_bytes(rec, &pos, record_magic, sizeof record_magic);
    put_text(rec, &pos, cfg->ssid, sizeof cfg->ssid);
    put_text(rec, &pos, cfg->password, sizeof cfg->password);
    put_text(rec, &pos, cfg->host, sizeof cfg->host);
    put_u16(rec, &pos, cfg->port);
    put_text(rec, &pos, cfg->client_id, sizeof cfg->client_id);
    put_text(rec, &pos, cfg->topic, sizeof cfg->topic);
    put_u16(rec, &pos, cfg->debounce_ms);
    put_u32(rec, &pos, fnv1a(rec, pos));
}

/* Copies a text field into dst (same size); false without a NUL inside the field. */
static bool get_text(const uint8_t *rec, size_t *pos, char *dst, size_t size, span *out)
{
    size_t n = 0;
    while (n < size && rec[*pos + n] != 0u) {
        dst[n] = (char)rec[*pos + n];
        n++;
    }
    if (n == size) {
        return false;
    }
    dst[n] = '\0';
    out->p = dst;
    out->len = n;
    *pos += size;
    return true;
}

static uint16_t get_u16(const uint8_t *rec, size_t *pos)
{
    uint16_t v = (uint16_t)(rec[*pos] | (rec[*pos + 1] << 8));
    *pos += 2;
    return v;
}

static uint32_t get_u32(const uint8_t *rec, size_t *pos)
{
    uint32_t lo = get_u16(rec, pos);
    uint32_t hi = get_u16(rec, pos);
    return lo | (hi << 16);
}

/* May leave cfg half-written when it returns false. */
static bool decode_config(const uint8_t *rec, lc_config *cfg)
{
    size_t pos = sizeof record_magic;
    span ssid, password, host, client_id, topic;
    size_t i;
    for (i = 0; i < sizeof record_magic; i++) {
        if (rec[i] != record_magic[i]) {
            return false;
        }
    }
    if (!get_text(rec, &pos, cfg->ssid, sizeof cfg->ssid, &ssid) ||
        !get_text(rec, &pos, cfg->password, sizeof cfg->password, &password) ||
        !get_text(rec, &pos, cfg->host, sizeof cfg->host, &host)) {
        return false;
    }
    cfg->port = get_u16(rec, &pos);
    if (!get_text(rec, &pos, cfg->client_id, sizeof cfg->client_id, &client_id) ||
        !get_text(rec, &pos, cfg->topic, sizeof cfg->topic, &topic)) {
        return false;
    }
    cfg->debounce_ms = get_u16(rec, &pos);
    const size_t covered = pos;
    if (get_u32(rec, &pos) != fnv1a(rec, covered)) {
        return false;
    }
    return valid_text(ssid, 0, LC_SSID_MAX) && valid_text(password, 0, LC_PASSWORD_MAX) &&
           valid_host(host) && cfg->port != 0 &&
           valid_text(client_id, 1, LC_CLIENT_ID_MAX) && valid_topic(topic) &&
           cfg->debounce_ms <= LC_DEBOUNCE_MAX_MS;
}

/* dst = a followed by b; the caller sizes dst for both. */
static void join(char *dst, const char *a, const char *b)
{
    size_t n = text_len(a);
    copy_span(dst, span_of(a));
    copy_span(dst + n, span_of(b));
}

static void derive_topics(lc_ctx *ctx)
{
    join(ctx->status_topic, ctx->cfg.topic, "/status");
    join(ctx->state_topic, ctx->cfg.topic, "/state");
}

/* ---- relay, state, MQTT ---- */

static const char *on_off(bool on)
{
    return on ? "on" : "off";
}

static uint32_t now_ms(lc_ctx *ctx)
{
    return ctx->hal.millis(ctx->hal.user);
}

static void set_state(lc_ctx *ctx, lc_state state)
{
    if (ctx->state == state) {
        return;
    }
    ctx->state = state;
    out_start(ctx);
    out_text(ctx, "HIL state=");
    out_text(ctx, state_names[state]);
    out_end(ctx);
}

static void set_relay(lc_ctx *ctx, bool on)
{
    ctx->relay = on;
    ctx->hal.relay(ctx->hal.user, on);
    out_start(ctx);
    out_text(ctx, "HIL relay=");
    out_text(ctx, on_off(on));
    out_end(ctx);
}

/* Every message the core sends is QoS 1 and retained: each topic holds a current value. */
static bool publish_text(lc_ctx *ctx, const char *topic, const char *text)
{
    return ctx->hal.publish(ctx->hal.user, topic, (const uint8_t *)text, text_len(text), 1u,
                            true);
}

/* T/state follows the relay whatever moved it; a failure is repaired at the next connect,
 * which republishes it. */
static void publish_state(lc_ctx *ctx)
{
    if (ctx->state == LC_ACTIVE) {
        (void)publish_text(ctx, ctx->state_topic, on_off(ctx->relay));
    }
}

/* A local change goes out on T now, or after the next connect if it cannot go now. */
static void switch_toggle(lc_ctx *ctx)
{
    set_relay(ctx, !ctx->relay);
    ctx->pending =
        !(ctx->state == LC_ACTIVE && publish_text(ctx, ctx->cfg.topic, on_off(ctx->relay)));
    publish_state(ctx);
}

static void arm_retry(lc_ctx *ctx)
{
    uint32_t spread = ctx->backoff_ms / 5u;
    uint64_t r = ctx->hal.random(ctx->hal.user);
    /* Scales r onto 0..=2*spread: 0 gives -20 %, the largest value +20 %. */
    uint32_t offset = (uint32_t)((r * (2u * spread + 1u)) >> 32);
    ctx->timer_delay = ctx->backoff_ms - spread + offset;
    ctx->timer_start = now_ms(ctx);
    ctx->timer_armed = true;
    ctx->backoff_ms =
        ctx->backoff_ms >= LC_BACKOFF_MAX_MS / 2u ? LC_BACKOFF_MAX_MS : ctx->backoff_ms * 2u;
}

/* Keeps retrying by timer too: a join attempt can fail without the board reporting it. */
static void start_wifi(lc_ctx *ctx)
{
    set_state(ctx, LC_CONNECTING_WIFI);
    ctx->hal.wifi_begin(ctx->hal.user, ctx->cfg.ssid, ctx->cfg.password);
    arm_retry(ctx);
}

static void request_connect(lc_ctx *ctx)
{
    lc_connect_request request;
    request.client_id = ctx->cfg.client_id;
    request.host = ctx->cfg.host;
    request.port = ctx->cfg.port;
    request.will_topic = ctx->status_topic;
    request.will_payload = "offline";
    request.will_qos = 1u;
    request.will_retain = true;
    ctx->timer_armed = false;
    ctx->connect_pending = true;
    ctx->hal.connect(ctx->hal.user, &request);
}

/* A clean disconnect suppresses the will, so "offline" is published first (best effort). */
static void leave_broker(lc_ctx *ctx)
{
    if (ctx->state == LC_ACTIVE) {
        (void)publish_text(ctx, ctx->status_topic, "offline");
    }
    if (ctx->state == LC_ACTIVE || ctx->state == LC_LOOKING_FOR_BROKER) {
        ctx->hal.disconnect(ctx->hal.user);
    }
    ctx->connect_pending = false;
}

static void connection_down(lc_ctx *ctx)
{
    bool attempt_failed = ctx->state == LC_LOOKING_FOR_BROKER && ctx->connect_pending;
    if (ctx->state != LC_ACTIVE && !attempt_failed) {
        return;
    }
    ctx->connect_pending = false;
    set_state(ctx, LC_LOOKING_FOR_BROKER);
    arm_retry(ctx);
}

/* ---- wall switch ---- */

/* After the window the current level is taken as settled (bounce is shorter than the window),
 * without opening a new window, so that a press right after it still acts at once. */
static void settle_button(lc_ctx *ctx, uint32_t now)
{
    if (!ctx->locked || (uint32_t)(now - ctx->lock_start) < ctx->cfg.debounce_ms) {
        return;
    }
    ctx->locked = false;
    if (ctx->raw_pressed != ctx->stable_pressed) {
        ctx->stable_pressed = ctx->raw_pressed;
        if (ctx->stable_pressed) {
            switch_toggle(ctx);
        }
    }
}

/* ---- serial commands ---- */

static void print_status(lc_ctx *ctx)
{
    out_start(ctx);
    out_text(ctx, "HIL status state=");
    out_text(ctx, state_names[ctx->state]);
    out_text(ctx, " relay=");
    out_text(ctx, on_off(ctx->relay));
    out_text(ctx, " topic=");
    out_text(ctx, ctx->cfg.topic);
    out_text(ctx, " broker=");
    out_text(ctx, ctx->cfg.host);
    out_text(ctx, ":");
    out_u32(ctx, ctx->cfg.port);
    out_end(ctx);
}

/* Echoes only the key, cut and made printable: never a value (it may be the password). */
static void warn_bad_config(lc_ctx *ctx, span key)
{
    size_t i;
    out_start(ctx);
    out_text(ctx, "HIL warn=bad_config key=");
    for (i = 0; i < key.len && i < KEY_ECHO_MAX; i++) {
        out_char(ctx, is_visible(key.p[i]) ? key.p[i] : '?');
    }
    out_end(ctx);
}

/* Settings take effect at once; a changed network or broker means reconnecting. */
static void apply_config(lc_ctx *ctx, const lc_config *next)
{
    bool wifi_changed = !text_equal(next->ssid, ctx->cfg.ssid) ||
                        !text_equal(next->password, ctx->cfg.password);
    bool broker_changed = !text_equal(next->host, ctx->cfg.host) || next->port != ctx->cfg.port ||
                          !text_equal(next->client_id, ctx->cfg.client_id) ||
                          !text_equal(next->topic, ctx->cfg.topic);
    bool online = ctx->state == LC_ACTIVE || ctx->state == LC_LOOKING_FOR_BROKER;
    if (wifi_changed || broker_changed) {
        leave_broker(ctx);
    }
    ctx->cfg = *next;
    derive_topics(ctx);
    if (wifi_changed) {
        ctx->backoff_ms = LC_BACKOFF_MIN_MS;
        start_wifi(ctx);
    } else if (broker_changed && online) {
        ctx->backoff_ms = LC_BACKOFF_MIN_MS;
        set_state(ctx, LC_LOOKING_FOR_BROKER);
        request_connect(ctx);
    }
}

/* `config key=value ...`: all pairs are checked before anything is saved. */
static void config_command(lc_ctx *ctx, span args)
{
    lc_config next = ctx->cfg;
    unsigned set = 0;
    unsigned key;
    size_t pos = 0;
    while (pos < args.len) {
        if (is_space(args.p[pos])) {
            pos++;
            continue;
        }
        const span token = first_word(after(args, pos));
        pos += token.len;
        span name = token;
        name.len = 0;
        while (name.len < token.len && token.p[name.len] != '=') {
            name.len++;
        }
        const bool has_value = name.len < token.len;
        const span value = has_value ? after(token, name.len + 1) : after(token, token.len);
        key = 0;
        while (key < KEY_COUNT && !span_is(name, key_names[key], false)) {
            key++;
        }
        if (!has_value || key == KEY_COUNT || !set_setting(&next, key, value)) {
            /* A lone word that is not a key may be a stray piece of a password. */
            warn_bad_config(ctx, has_value || key < KEY_COUNT ? name : after(name, name.len));
            return;
        }
        set |= 1u << key;
    }
    if (set == 0) {
        warn_bad_config(ctx, span_of(""));
        return;
    }
    encode_config(&next, ctx->record);
    ctx->hal.config_write(ctx->hal.user, ctx->record, LC_CONFIG_SIZE);
    out_start(ctx);
    out_text(ctx, "HIL config saved keys=");
    bool first = true;
    for (key = 0; key < KEY_COUNT; key++) {
        if (set & (1u << key)) {
            out_text(ctx, first ? "" : ",");
            out_text(ctx, key_names[key]);
            first = false;
        }
    }
    out_end(ctx);
    apply_config(ctx, &next);
}

static void reboot(lc_ctx *ctx)
{
    leave_broker(ctx);
    ctx->timer_armed = false;
    set_state(ctx, LC_OFFLINE);
    ctx->hal.restart(ctx->hal.user);
}

/* ---- public API ---- */

static void reset_runtime(lc_ctx *ctx)
{
    ctx->state = LC_OFFLINE;
    ctx->relay = false;
    ctx->pending = false;
    ctx->connect_pending = false;
    ctx->timer_armed = false;
    ctx->timer_start = 0;
    ctx->timer_delay = 0;
    ctx->backoff_ms = LC_BACKOFF_MIN_MS;
    ctx->raw_pressed = false;
    ctx->stable_pressed = false;
    ctx->locked = false;
    ctx->lock_start = 0;
    ctx->line_len = 0;
}

void lc_init(lc_ctx *ctx, const lc_hal *hal, const char *version)
{
    size_t n;
    ctx->hal = *hal;
    /* The version ends up in a space-separated serial line: keep it one visible word. */
    for (n = 0; n < LC_VERSION_MAX && version[n] != '\0'; n++) {
        ctx->version[n] = is_visible(version[n]) ? version[n] : '?';
    }
    ctx->version[n] = '\0';
    set_defaults(&ctx->cfg);
    derive_topics(ctx);
    reset_runtime(ctx);
}

void lc_boot(lc_ctx *ctx)
{
    reset_runtime(ctx);
    ctx->hal.relay(ctx->hal.user, false);
    out_start(ctx);
    out_text(ctx, "HIL boot fw=" FW_NAME " version=");
    out_text(ctx, ctx->version);
    out_end(ctx);
    if (!ctx->hal.config_read(ctx->hal.user, ctx->record, LC_CONFIG_SIZE) ||
        !decode_config(ctx->record, &ctx->cfg)) {
        set_defaults(&ctx->cfg);
    }
    derive_topics(ctx);
    start_wifi(ctx);
}

void lc_tick(lc_ctx *ctx)
{
    uint32_t now;
    if (ctx->state == LC_OFFLINE) {
        return;
    }
    now = now_ms(ctx);
    settle_button(ctx, now);
    if (!ctx->timer_armed || (uint32_t)(now - ctx->timer_start) < ctx->timer_delay) {
        return;
    }
    ctx->timer_armed = false;
    if (ctx->state == LC_CONNECTING_WIFI) {
        start_wifi(ctx);
    } else if (ctx->state == LC_LOOKING_FOR_BROKER && !ctx->connect_pending) {
        request_connect(ctx);
    }
}

/* Milliseconds left of a span of `length` that began at `start`. */
static uint32_t remaining(uint32_t start, uint32_t length, uint32_t now)
{
    uint32_t elapsed = (uint32_t)(now - start);
    return elapsed >= length ? 0 : length - elapsed;
}

uint32_t lc_ms_until_tick(const lc_ctx *ctx, uint32_t now)
{
    uint32_t wait = LC_NO_TIMER;
    if (ctx->state == LC_OFFLINE) {
        return wait;
    }
    if (ctx->locked) {
        wait = remaining(ctx->lock_start, ctx->cfg.debounce_ms, now);
    }
    if (ctx->timer_armed) {
        uint32_t timer = remaining(ctx->timer_start, ctx->timer_delay, now);
        wait = timer < wait ? timer : wait;
    }
    return wait;
}

void lc_wifi(lc_ctx *ctx, bool up)
{
    if (ctx->state == LC_OFFLINE) {
        return;
    }
    if (up) {
        if (ctx->state == LC_CONNECTING_WIFI) {
            ctx->backoff_ms = LC_BACKOFF_MIN_MS;
            set_state(ctx, LC_LOOKING_FOR_BROKER);
            request_connect(ctx);
        }
    } else if (ctx->state != LC_CONNECTING_WIFI) {
        /* The MQTT session died with the link; a late outcome of a connect is ignored. */
        ctx->connect_pending = false;
        set_state(ctx, LC_CONNECTING_WIFI);
        arm_retry(ctx);
    }
}

void lc_mqtt_connected(lc_ctx *ctx)
{
    if (ctx->state != LC_LOOKING_FOR_BROKER || !ctx->connect_pending) {
        return;
    }
    ctx->connect_pending = false;
    ctx->backoff_ms = LC_BACKOFF_MIN_MS;
    set_state(ctx, LC_ACTIVE);
    /* A failed publish here is repaired at the next connect, which repeats all of this. */
    (void)publish_text(ctx, ctx->status_topic, "online");
    /* Before subscribing, so that the local change replaces the retained command that the
     * subscription would otherwise deliver. */
    if (ctx->pending) {
        ctx->pending = !publish_text(ctx, ctx->cfg.topic, on_off(ctx->relay));
    }
    if (!ctx->hal.subscribe(ctx->hal.user, ctx->cfg.topic, 1u)) {
        print(ctx, "HIL warn=subscribe_failed");
    }
    publish_state(ctx);
}

void lc_mqtt_connect_failed(lc_ctx *ctx)
{
    connection_down(ctx);
}

void lc_mqtt_lost(lc_ctx *ctx)
{
    connection_down(ctx);
}

void lc_mqtt_message(lc_ctx *ctx, const char *topic, size_t topic_len, const uint8_t *payload,
                     size_t payload_len)
{
    span t;
    span p;
    bool on;
    t.p = topic;
    t.len = topic_len;
    if (ctx->state == LC_OFFLINE || !span_is(t, ctx->cfg.topic, false)) {
        return;
    }
    p = trim((const char *)payload, payload_len);
    if (span_is(p, "on", true)) {
        on = true;
    } else if (span_is(p, "off", true)) {
        on = false;
    } else {
        print(ctx, "HIL warn=invalid_payload");
        return;
    }
    /* Never publishes on T: the device's own echo must not start a storm. */
    if (on != ctx->relay) {
        set_relay(ctx, on);
        publish_state(ctx);
    }
}

void lc_button(lc_ctx *ctx, bool pressed)
{
    uint32_t now;
    if (ctx->state == LC_OFFLINE) {
        return;
    }
    now = now_ms(ctx);
    settle_button(ctx, now);
    ctx->raw_pressed = pressed;
    if (ctx->locked || pressed == ctx->stable_pressed) {
        return;
    }
    /* Leading edge: act now, then ignore bounce for the window. */
    ctx->stable_pressed = pressed;
    ctx->locked = true;
    ctx->lock_start = now;
    if (pressed) {
        switch_toggle(ctx);
    }
}

void lc_press(lc_ctx *ctx)
{
    if (ctx->state != LC_OFFLINE) {
        switch_toggle(ctx);
    }
}

void lc_serial_input(lc_ctx *ctx, const char *line, size_t len)
{
    span s = trim(line, len);
    if (ctx->state == LC_OFFLINE || s.len == 0) {
        return;
    }
    const span word = first_word(s);
    const bool alone = word.len == s.len;
    if (span_is(word, "config", false)) {
        config_command(ctx, after(s, word.len));
    } else if (alone && span_is(word, "press", false)) {
        lc_press(ctx);
    } else if (alone && span_is(word, "status", false)) {
        print_status(ctx);
    } else if (alone && span_is(word, "reboot", false)) {
        reboot(ctx);
    } else {
        print(ctx, "HIL warn=unknown_command");
    }
}

bool lc_relay(const lc_ctx *ctx)
{
    return ctx->relay;
}

lc_state lc_get_state(const lc_ctx *ctx)
{
    return ctx->state;
}

typedef struct align_probe {
    char c;
    lc_ctx ctx;
} align_probe;

size_t lc_ctx_size(void)
{
    return sizeof(lc_ctx);
}

size_t lc_ctx_align(void)
{
    return offsetof(align_probe, ctx);
}
