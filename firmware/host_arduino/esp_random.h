// ESP-IDF's hardware random number generator.
#ifndef HOST_ESP_RANDOM_H
#define HOST_ESP_RANDOM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
uint32_t esp_random(void);
#ifdef __cplusplus
}
#endif

#endif
