/* line_protocol.cpp — placeholder, replaced by the parser. */
#include "line_protocol.hpp"
#include "cpp_only.hpp"
