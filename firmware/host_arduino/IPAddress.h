// An IPv4 address, as Arduino's IPAddress.
#ifndef HOST_IPADDRESS_H
#define HOST_IPADDRESS_H

#include <stdint.h>

class IPAddress {
public:
    IPAddress() : octets_{0, 0, 0, 0} {}
    IPAddress(uint8_t a, uint8_t b, uint8_t c, uint8_t d) : octets_{a, b, c, d} {}
    uint8_t operator[](int index) const { return octets_[index & 3]; }

private:
    uint8_t octets_[4];
};

#endif
