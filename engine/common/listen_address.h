// Listen addresses, "HOST:PORT" or "[V6]:PORT": splitting one, and checking before a slow start that its port is
// free.
//
// CheckPortFree binds a TCP socket to the address as the servers do (SO_REUSEADDR, so that connections of an
// earlier process lingering in TIME_WAIT do not count; no SO_REUSEPORT, so a listening socket does) and closes it
// at once. It answers UNAVAILABLE when the port is in use, and OK when it is free and for everything it cannot
// judge (port 0, a host that does not resolve or is not local, an address that is not HOST:PORT): the server's own
// bind reports those. Nothing is reserved: the port can still be taken before the server binds it, which the bind
// then reports. Thread-safety: pure functions (CheckPortFree uses a socket of its own).
#ifndef CNNSERVE_ENGINE_COMMON_LISTEN_ADDRESS_H_
#define CNNSERVE_ENGINE_COMMON_LISTEN_ADDRESS_H_

#include <string>

#include "engine/common/status.h"

namespace cnnserve {

// Splits "HOST:PORT" / "[V6]:PORT" (port 0..65535); INVALID_ARGUMENT naming `address` otherwise.
Status SplitHostPort(const std::string& address, std::string* host, int* port);

// OK, or UNAVAILABLE "... the port is in use" (above).
Status CheckPortFree(const std::string& address);

}  // namespace cnnserve

#endif  // CNNSERVE_ENGINE_COMMON_LISTEN_ADDRESS_H_
