// counters.cc: the one instance of counters.h's counters.
#include "counters.h"

namespace allocscope {
namespace stats {
Counters g_counters;
}  // namespace stats
}  // namespace allocscope
