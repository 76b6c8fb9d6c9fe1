// Arduino's Stream: a Print that can also be read.
#ifndef HOST_STREAM_H
#define HOST_STREAM_H

#include "Print.h"

class Stream : public Print {
public:
    virtual int available() = 0;
    virtual int read() = 0;
    virtual int peek() = 0;
};

#endif
