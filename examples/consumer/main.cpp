// Uses the installed LibReID package: loads the built-in default config, overrides a key the
// way `--set` does, and prints the resolved value with the library version.
#include <iostream>

#include <reid/reid.h>

int main() {
  try {
    const reid::Config config = reid::config::load_config("", {"solver.base_lr=0.01"});
    std::cout << "LibReID " << reid::version() << ": solver.base_lr = " << config.solver.base_lr
              << "\n";
    return config.solver.base_lr == 0.01 ? 0 : 1;
  } catch (const std::exception& error) {
    std::cerr << "error: " << error.what() << "\n";
    return 1;
  }
}
