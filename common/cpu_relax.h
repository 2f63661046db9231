// A pause inside a spin-wait: the core lets its sibling thread run and
// saves power while the loop polls.
#pragma once

namespace axon {

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace axon
