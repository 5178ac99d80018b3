// The helpers are header-only (static inline); this file gives SwiftPM a C target to build.
#include "kernel_math.h"
