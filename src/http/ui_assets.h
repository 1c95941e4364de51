// The web UI's files (src/ui/), compiled into the binary by cmake/EmbedFiles.cmake.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

namespace custos::http {

struct UiAsset {
  std::string_view name;  // "index.html"
  const unsigned char* data;
  size_t size;
};

std::span<const UiAsset> ui_assets();

}  // namespace custos::http
