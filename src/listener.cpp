/* listener.cpp — placeholder, replaced by the listener implementation. */
extern "C" {
#include "postgres.h"
}
#include "listener.hpp"
namespace influx {
void RegisterListener(void) {}
}
extern "C" void pg_influx_listener_main(Datum) {}
