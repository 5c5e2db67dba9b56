// How the emulated CUDA driver (cuda_driver.cpp) calls a kernel compiled as C++ (emu.hpp): the
// kernel's own parameter types read its arguments out of cuLaunchKernel's `void** params` (one
// pointer per argument, to the argument's value, as the driver API passes them), so a launcher
// that passes too few arguments or a buffer that is not device memory is caught here, and
// cuda_driver.cpp checks the guard zones of every buffer argument after the launch.
#pragma once
#include <cstddef>
#include <tuple>
#include <type_traits>
#include <utility>

#include "emu.hpp"

namespace emu_driver {

// A kernel's buffer arguments, for the driver's checks.
struct PtrArg {
    int index;
    const void* ptr;
};

// Runs the kernel over grid × block; returns null, or why it could not (the driver then answers
// CUDA_ERROR_INVALID_VALUE and prints the reason).
using LaunchFn = const char* (*)(const char* name, void** params, uint3 grid, uint3 block);

// Defined in cuda_driver.cpp: the table cuModuleGetFunction looks kernels up in.
void register_kernel(const char* name, LaunchFn fn);
// Defined in cuda_driver.cpp: null when every pointer is null or inside a live device
// allocation, else the message naming the argument.
const char* check_pointer_args(const char* kernel, const PtrArg* args, int n);
// Defined in cuda_driver.cpp: null when the guard zones of the allocations holding `args` are
// intact after the launch.
const char* check_guards_after(const char* kernel, const PtrArg* args, int n);

template <class F>
struct Kernel;

template <class... A>
struct Kernel<void (*)(A...)> {
    template <void (*K)(A...)>
    static const char* launch(const char* name, void** params, uint3 grid, uint3 block) {
        return run<K>(name, params, grid, block, std::index_sequence_for<A...>{});
    }

   private:
    template <void (*K)(A...), size_t... I>
    static const char* run(const char* name, void** params, uint3 grid, uint3 block, std::index_sequence<I...>) {
        if (sizeof...(A) > 0 && !params) return "kernel arguments missing (params is null)";
        for (size_t i = 0; i < sizeof...(A); ++i)
            if (!params[i]) return "a kernel argument pointer is null";
        // Copied out before the launch, as the driver copies them into constant memory.
        std::tuple<std::decay_t<A>...> args{*static_cast<std::decay_t<A>*>(params[I])...};
        PtrArg ptrs[sizeof...(A) + 1];
        int n = 0;
        (collect<I>(std::get<I>(args), ptrs, n), ...);
        if (const char* bad = check_pointer_args(name, ptrs, n)) return bad;
        emu::g_kernel_name = name;
        emu::launch(grid, block, [&] { std::apply(K, args); });
        emu::g_kernel_name = nullptr;
        return check_guards_after(name, ptrs, n);
    }

    template <size_t I, class T>
    static void collect(const T& v, PtrArg* out, int& n) {
        if constexpr (std::is_pointer_v<T>) out[n++] = {(int)I, (const void*)v};
    }
};

struct Registrar {
    Registrar(const char* name, LaunchFn fn) { register_kernel(name, fn); }
};

}  // namespace emu_driver

// One line per kernel in the generated kernels.cpp (build.sh): registers `name` under its own
// symbol, with the argument unpacking of its own signature.
#define EMU_KERNEL(name) \
    static emu_driver::Registrar emu_reg_##name(#name, &emu_driver::Kernel<decltype(&name)>::launch<&name>);
