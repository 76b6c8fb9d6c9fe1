#include <string.h>

#include "Print.h"

size_t Print::write(const uint8_t *buffer, size_t size) {
    size_t written = 0;
    while (written < size && write(buffer[written]) == 1) {
        written++;
    }
    return written;
}

size_t Print::write(const char *str) {
    return str ? write(reinterpret_cast<const uint8_t *>(str), strlen(str)) : 0;
}

size_t Print::write(const char *buffer, size_t size) {
    return write(reinterpret_cast<const uint8_t *>(buffer), size);
}

size_t Print::print(const char *text) { return write(text); }
size_t Print::print(char c) { return write(static_cast<uint8_t>(c)); }
size_t Print::print(int value, int base) { return print(static_cast<long>(value), base); }
size_t Print::print(unsigned int value, int base) {
    return print(static_cast<unsigned long>(value), base);
}
size_t Print::print(long value, int base) {
    if (base == 10 && value < 0) {
        return print_number(0ul - static_cast<unsigned long>(value), base, true);
    }
    return print_number(static_cast<unsigned long>(value), base, false);
}
size_t Print::print(unsigned long value, int base) { return print_number(value, base, false); }

size_t Print::print_number(unsigned long value, int base, bool negative) {
    if (base < 2) {
        base = 10;
    }
    char digits[8 * sizeof value + 2];
    char *at = digits + sizeof digits;
    *--at = '\0';
    do {
        unsigned long digit = value % static_cast<unsigned long>(base);
        *--at = static_cast<char>(digit < 10 ? '0' + digit : 'A' + digit - 10);
        value /= static_cast<unsigned long>(base);
    } while (value != 0);
    if (negative) {
        *--at = '-';
    }
    return write(at);
}

size_t Print::println() { return write("\r\n"); }
size_t Print::println(const char *text) { return print(text) + println(); }
size_t Print::println(char c) { return print(c) + println(); }
size_t Print::println(int value, int base) { return print(value, base) + println(); }
size_t Print::println(unsigned int value, int base) { return print(value, base) + println(); }
size_t Print::println(long value, int base) { return print(value, base) + println(); }
size_t Print::println(unsigned long value, int base) { return print(value, base) + println(); }
