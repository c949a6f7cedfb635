#include "solver_registry.hpp"

namespace dcdm::cli {

void add_solver_params(CLI::App* cmd, SolverParams& params) {
  cmd->add_option("--model", params.model, "Model for the methods dcdm, dcdm-relax and dcdm-flag: a path or a shipped model's name (relaxnet, flagnet, paper64)");
  cmd->add_option("--dcdm-k", params.dcdm_k,
                  "DCDM: directions kept for A-orthogonalisation (default: 1 for dcdm-relax, whose cycle is "
                  "symmetric, 2 for the other DCDM methods)")
      ->check(CLI::Range(0, 64));
  cmd->add_option("--dcdm-fallback", params.dcdm_fallback,
                  "DCDM: when to use the Jacobi direction instead of the generator's: best (also when "
                  "it gains more), failures (NaN, curvature, vanishing only), off (stop on a failure)")
      ->check(CLI::IsMember({"best", "failures", "off"}))->capture_default_str();
  cmd->add_option("--dcdm-vectors", params.dcdm_vectors,
                  "DCDM: precision of the direction vectors (x, r and the sums stay double): double, float, or "
                  "auto (dcdm-relax, whose float cycle rounds every direction to float anyway: float where the "
                  "tolerance is at least 1e-7 of ||b||; double for the other DCDM methods)")
      ->check(CLI::IsMember({"auto", "double", "float"}))->capture_default_str();
  cmd->add_option("--network-input-scale", params.network_input_scale,
                  "DCDM network: factor on the unit-norm residual (0 = auto: sqrt(cells / training-grid cells))")
      ->check(CLI::Range(0.0, 1e6))->capture_default_str();
  cmd->add_option("--network-precision", params.network_precision,
                  "DCDM network: float32, bf16 (bfloat16 activations and weights; costs some iterations, "
                  "see docs/perf-network.md), or auto (bf16 where the CPU has native bfloat16, else float32); "
                  "the Krylov state stays double")
      ->check(CLI::IsMember({"float32", "bf16", "auto"}))->capture_default_str();
  cmd->add_option("--dpcg-k", params.deflation_vectors, "Deflated PCG: number of Ritz vectors (set-up grows as (3k)^2 N: above 16, at most 582 at 32^3, "
                  "205 at 64^3, 72 at 128^3)")
      ->check(CLI::Range(1, 4096))->capture_default_str();
  cmd->add_option("--mic-safety", params.mic_safety, "MIC(0) safety parameter in [0, 1]")
      ->check(CLI::Range(0.0, 1.0))->capture_default_str();
}

}  // namespace dcdm::cli
