// cxx_workout.cc: ordinary C++ under the preload: containers, strings, over-aligned
// types (aligned new/delete), sized delete, exceptions thrown and caught (libstdc++
// allocates exception objects with malloc), std::bad_alloc from a huge new, and threads
// that hand objects to each other. Prints a checksum that must match a run without the
// preload.
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "preload_check.h"

struct alignas(128) Wide {
  uint64_t value[4];
};

uint64_t containers(int seed) {
  std::map<std::string, std::vector<int>> tree;
  std::unordered_map<int, std::string> hash;
  for (int i = 0; i < 20000; ++i) {
    std::string key = "key-" + std::to_string((i * 7919 + seed) % 5000);
    tree[key].push_back(i);
    hash[i % 3000] += key.substr(0, 3 + i % 5);
  }
  uint64_t sum = 0;
  for (auto &[k, v] : tree) sum += k.size() * v.size() + v.back();
  for (auto &[k, v] : hash) sum += static_cast<uint64_t>(k) ^ v.size();
  return sum;
}

uint64_t aligned_objects() {
  std::vector<std::unique_ptr<Wide>> objects;
  uint64_t sum = 0;
  for (int i = 0; i < 5000; ++i) {
    objects.push_back(std::make_unique<Wide>());
    if (reinterpret_cast<uintptr_t>(objects.back().get()) % alignof(Wide) != 0) {
      std::fprintf(stderr, "misaligned Wide\n");
      std::exit(1);
    }
    objects.back()->value[0] = static_cast<uint64_t>(i);
    sum += objects.back()->value[0];
  }
  std::vector<Wide> array(777);  // aligned new[] / delete[]
  array[776].value[3] = 5;
  return sum + array[776].value[3];
}

uint64_t exceptions() {
  uint64_t caught = 0;
  for (int i = 0; i < 2000; ++i) {
    try {
      throw std::runtime_error(std::string(100 + i % 300, 'x'));
    } catch (const std::runtime_error &e) {
      caught += std::string(e.what()).size();
    }
  }
  try {
    volatile size_t huge = SIZE_MAX / 2;
    char *p = new char[huge];
    delete[] p;
  } catch (const std::bad_alloc &) {
    caught += 1;
  }
  return caught;
}

uint64_t threads_handing_off() {
  std::vector<std::unique_ptr<std::string>> made(4000);
  std::thread producer([&] {
    for (size_t i = 0; i < made.size(); ++i)
      made[i] = std::make_unique<std::string>(50 + i % 200, 'a' + i % 26);
  });
  producer.join();
  uint64_t sum = 0;
  std::thread consumer([&] {
    for (auto &s : made) {
      sum += s->size();
      s.reset();  // freed by another thread than the one that allocated it
    }
  });
  consumer.join();
  return sum;
}

int main() {
  require_preload();
  const uint64_t sums[] = {containers(1), containers(2), aligned_objects(), exceptions(),
                           threads_handing_off()};
  for (uint64_t s : sums) std::printf("%llu\n", static_cast<unsigned long long>(s));
  return 0;
}
