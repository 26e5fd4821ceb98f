// version.h: the version allocscope_version() returns, set by meson.build.
#pragma once

namespace allocscope {
inline constexpr const char kVersion[] = ALLOCSCOPE_VERSION;
}
