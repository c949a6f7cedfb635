#pragma once
// Plain interface to the LibTorch-backed code; no LibTorch header is visible from here.
#include <string>

namespace dcdm::learn {

// "LibTorch 1.13.1, oneDNN available, 2 threads"
std::string backend_info();

}  // namespace dcdm::learn
