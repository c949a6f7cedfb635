// Forward-pass speed of the reference DCDM network (paper64 / paper128) against one isolated
// 16->16 3x3x3 convolution at 128^3 in the same precision, measured in the same run, and the
// process's peak memory.
//
//   ./build/bench_network                          all cases
//   ./build/bench_network --benchmark_filter=f32   float32 only
//
// Counters: GFLOPs = useful convolution FLOPs per second (a 16->16 3x3x3 convolution is
// 2*27*16*16 FLOPs per cell); ratio = forward GFLOP/s / isolated-convolution GFLOP/s of the
// same precision (target >= 0.6); peak_MiB = VmHWM of the process after the case (cases run
// from small to large, so each figure bounds the case's own peak).
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <string>

#include "dcdm/learn.hpp"

namespace {

using namespace dcdm;
using namespace dcdm::learn;

double peak_rss_mib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;  // kB
  return 0.0;
}

Field<float> random_field(Dims d) {
  std::mt19937 rng(1);
  std::normal_distribution<float> g;
  Field<float> f(d);
  for (std::int64_t i = 0; i < f.size(); ++i) f[i] = g(rng);
  return f;
}

NetworkPrecision precision_of(int p) { return p ? NetworkPrecision::BFloat16 : NetworkPrecision::Float32; }

// GFLOP/s of the isolated convolution per precision, filled by BM_IsolatedConv.
std::map<int, double>& conv_rate() {
  static std::map<int, double> r;
  return r;
}

// args: n, precision (0 f32, 1 bf16)
void BM_IsolatedConv(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const auto precision = precision_of(static_cast<int>(state.range(1)));
  if (precision == NetworkPrecision::BFloat16 && !cpu_has_native_bf16()) {
    state.SkipWithError("no native bfloat16 on this CPU");
    return;
  }
  isolated_conv_seconds({n, n, n}, precision, 1);  // warm-up: oneDNN primitive
  double total = 0;
  for (auto _ : state) {
    const double s = isolated_conv_seconds({n, n, n}, precision, 1);
    state.SetIterationTime(s);
    total += s;
  }
  const double flops = 2.0 * 27 * 16 * 16 * double(n) * n * n;
  const double rate = flops * state.iterations() / total * 1e-9;
  conv_rate()[static_cast<int>(state.range(1))] = rate;
  state.counters["GFLOPs"] = rate;
  state.counters["peak_MiB"] = peak_rss_mib();
  state.SetLabel(to_string(precision));
}

// args: n, variant (0 paper64, 1 paper128), precision
void BM_Forward(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const int p = static_cast<int>(state.range(2));
  const auto precision = precision_of(p);
  if (precision == NetworkPrecision::BFloat16 && !cpu_has_native_bf16()) {
    state.SkipWithError("no native bfloat16 on this CPU");
    return;
  }
  auto net = DirectionNetwork::random(state.range(1) ? "paper128" : "paper64", 1);
  InferenceOptions o;
  o.precision = precision;
  net.set_inference_options(o);
  const auto in = random_field({n, n, n});
  benchmark::DoNotOptimize(net.forward(in));  // warm-up: plan, oneDNN primitives
  double total = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(net.forward(in));
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.SetIterationTime(s);
    total += s;
  }
  const double rate = net.forward_flops({n, n, n}) * state.iterations() / total * 1e-9;
  state.counters["GFLOPs"] = rate;
  state.counters["peak_MiB"] = peak_rss_mib();
  const auto it = conv_rate().find(p);
  if (it != conv_rate().end()) state.counters["ratio"] = rate / it->second;
  state.SetLabel(to_string(precision));
}

}  // namespace

// The isolated convolutions first (their rate feeds the ratio), then forward passes.
BENCHMARK(BM_IsolatedConv)->Args({128, 0})->Args({128, 1})->UseManualTime()->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_Forward)
    ->ArgNames({"n", "paper128", "bf16"})
    ->Args({16, 0, 0})->Args({32, 0, 0})->Args({64, 0, 0})->Args({64, 0, 1})->Args({128, 0, 0})->Args({128, 0, 1})->Args({128, 1, 0})->Args({128, 1, 1})
    ->UseManualTime()->Unit(benchmark::kMillisecond)->MinTime(2.0);

BENCHMARK_MAIN();
