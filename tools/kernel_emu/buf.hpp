// The emulation drivers' device buffer (main.cpp, main_bf16.cpp).
#pragma once
#include <algorithm>
#include <cstddef>
#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/asan_interface.h>
#endif
#include <vector>

#include "emu.hpp"

// A device buffer: `len` floats between two guard zones of a NaN whose payload marks it. Under
// AddressSanitizer (run.sh with KERNEL_EMU_ASAN=1) the guards are poisoned too, so any read
// past a buffer is reported even when its value never reaches an output.
struct Buf {
    static constexpr size_t G = 64;
    static constexpr unsigned GUARD = emu::kGuardNaN;
    std::vector<float> v;
    size_t len;
    explicit Buf(size_t n, float fill = NAN) : v(n + 2 * G, __uint_as_float(GUARD)), len(n) {
        std::fill(v.begin() + G, v.begin() + G + n, fill);
        poison(true);
    }
    Buf(Buf&& o) noexcept : v(std::move(o.v)), len(o.len) {}
    Buf(const Buf&) = delete;
    ~Buf() { poison(false); }
    void poison(bool on) const {
#ifdef __SANITIZE_ADDRESS__
        if (v.empty()) return;
        const size_t bytes = G * sizeof(float);
        if (on) {
            ASAN_POISON_MEMORY_REGION(v.data(), bytes);
            ASAN_POISON_MEMORY_REGION(v.data() + G + len, bytes);
        } else {
            ASAN_UNPOISON_MEMORY_REGION(v.data(), bytes);
            ASAN_UNPOISON_MEMORY_REGION(v.data() + G + len, bytes);
        }
#else
        (void)on;
#endif
    }
    float* p() { return v.data() + G; }
    float operator[](size_t i) const { return v[G + i]; }
    bool guards_intact() const {
        poison(false);
        bool ok = true;
        for (size_t i = 0; i < G; ++i)
            ok &= __float_as_uint(v[i]) == GUARD && __float_as_uint(v[G + len + i]) == GUARD;
        poison(true);
        return ok;
    }
};
