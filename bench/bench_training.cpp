// Training throughput of the DCDM trainer: one step = network forward on a batch, the
// scale-invariant loss through the masked grid operator, backward, Adam. Reported as
// samples/s at 32^3 and 64^3 (the grid sizes the training recipe uses), beside the network's
// forward-only samples/s on the same batch in the same run (the ratio says what the loss,
// backward and optimiser cost on top of inference-style work).
//
//   ./build/bench_training                             both sizes, batch 4, 1 and 2 threads
//   ./build/bench_training --benchmark_filter=/32/     32^3 only
//
// Arguments: grid N, batch, LibTorch threads. On a machine shared with other busy processes
// use the 1-thread figures: OpenMP threads that wait for a descheduled peer make 2 threads
// many times slower than 1 there (measured: 37x on an 8^3 training epoch at load 14).
//
// Counters: samples_per_s (training), forward_samples_per_s, train_over_forward
// (= samples_per_s / forward_samples_per_s; about 1/3 when backward costs twice the forward).
#include <benchmark/benchmark.h>

#include "dcdm/training.hpp"

namespace {

void BM_TrainingStep(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const int batch = static_cast<int>(state.range(1));
  const int threads = static_cast<int>(state.range(2));
  const int steps = n >= 64 ? 2 : 4;
  dcdm::learn::ThroughputResult r;
  for (auto _ : state) r = dcdm::learn::measure_training_throughput("paper64", {n, n, n}, batch, steps, threads);
  state.counters["samples_per_s"] = r.samples_per_s;
  state.counters["forward_samples_per_s"] = r.forward_samples_per_s;
  state.counters["train_over_forward"] = r.samples_per_s / r.forward_samples_per_s;
  state.counters["parameters"] = static_cast<double>(r.parameters);
}
BENCHMARK(BM_TrainingStep)
    ->Args({32, 4, 1})
    ->Args({32, 4, 2})
    ->Args({64, 4, 1})
    ->Args({64, 4, 2})
    ->Iterations(1)
    ->Unit(benchmark::kSecond);

}  // namespace

BENCHMARK_MAIN();
