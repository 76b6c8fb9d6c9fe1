// Arduino's Print: formatting on top of write(byte).
#ifndef HOST_PRINT_H
#define HOST_PRINT_H

#include <stddef.h>
#include <stdint.h>

class Print {
public:
    virtual ~Print() = default;
    virtual size_t write(uint8_t c) = 0;
    virtual size_t write(const uint8_t *buffer, size_t size);
    size_t write(const char *str);
    size_t write(const char *buffer, size_t size);
    virtual void flush() {}

    size_t print(const char *text);
    size_t print(char c);
    size_t print(int value, int base = 10);
    size_t print(unsigned int value, int base = 10);
    size_t print(long value, int base = 10);
    size_t print(unsigned long value, int base = 10);
    size_t println();
    size_t println(const char *text);
    size_t println(char c);
    size_t println(int value, int base = 10);
    size_t println(unsigned int value, int base = 10);
    size_t println(long value, int base = 10);
    size_t println(unsigned long value, int base = 10);

private:
    size_t print_number(unsigned long value, int base, bool negative);
};

#define DEC 10
#define HEX 16
#define OCT 8
#define BIN 2

#endif
