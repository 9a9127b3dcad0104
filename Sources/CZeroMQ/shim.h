#ifndef TALLY_CZEROMQ_SHIM_H
#define TALLY_CZEROMQ_SHIM_H
// libzmq 4.3 (Debian: libzmq3-dev). Draft APIs are not used.
#include <zmq.h>
#endif
