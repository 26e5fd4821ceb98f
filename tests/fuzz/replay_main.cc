// replay_main.cc: runs config_fuzz.cc's LLVMFuzzerTestOneInput over files and directories
// without libFuzzer, so the seed corpus (and any crash file) is checked in every build,
// gcc and sanitizer builds included.
//   config_fuzz_replay PATH...   (a directory: every regular file in it)
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerInitialize(int *argc, char ***argv);
extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

namespace {

int run_file(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    fprintf(stderr, "config_fuzz_replay: cannot read %s\n", path.c_str());
    return 1;
  }
  const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t *>(data.data()), data.size());
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  LLVMFuzzerInitialize(&argc, &argv);
  int inputs = 0, errors = 0;
  for (int i = 1; i < argc; ++i) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      fprintf(stderr, "config_fuzz_replay: no such path %s\n", argv[i]);
      ++errors;
      continue;
    }
    std::vector<std::string> files;
    if (S_ISDIR(st.st_mode)) {
      if (DIR *dir = opendir(argv[i])) {
        while (const dirent *e = readdir(dir)) {
          const std::string path = std::string(argv[i]) + "/" + e->d_name;
          struct stat fst;
          if (stat(path.c_str(), &fst) == 0 && S_ISREG(fst.st_mode)) files.push_back(path);
        }
        closedir(dir);
      }
      std::sort(files.begin(), files.end());
    } else {
      files.push_back(argv[i]);
    }
    for (const std::string &f : files) {
      errors += run_file(f);
      ++inputs;
    }
  }
  printf("config_fuzz_replay: %d inputs, all checked\n", inputs);
  return errors == 0 && inputs > 0 ? 0 : 1;
}
