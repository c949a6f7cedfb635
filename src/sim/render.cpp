// Mid-plane density slices for quick looks at a run (PNG frames).
#include <algorithm>
#include <cmath>

#include "dcdm/error.hpp"
#include "dcdm/sim.hpp"

namespace dcdm::sim {

std::vector<std::uint8_t> render_density_slices(const Field<double>& density, const Domain& domain,
                                                int scale, int& width, int& height) {
  const Dims d = density.dims();
  if (!(domain.dims() == d)) throw Error("render_density_slices: density and domain sizes differ");
  scale = std::max(scale, 1);
  const int gap = 2;
  width = (d.nx + gap + d.ny) * scale;
  height = d.nz * scale;
  std::vector<std::uint8_t> rgb(std::size_t(width) * height * 3, 0);
  auto put = [&](int px, int py, int i, int j, int k) {
    const double rho = std::clamp(density(i, j, k), 0.0, 1.0);
    std::uint8_t r, g, b;
    if (domain.cells(i, j, k) == CellType::Solid) {
      r = 60, g = 80, b = 160;
    } else {
      const auto grey = static_cast<std::uint8_t>(std::lround(255.0 * rho));
      r = g = b = grey;
    }
    for (int sy = 0; sy < scale; ++sy)
      for (int sx = 0; sx < scale; ++sx) {
        const std::size_t o = (std::size_t(py * scale + sy) * width + px * scale + sx) * 3;
        rgb[o] = r, rgb[o + 1] = g, rgb[o + 2] = b;
      }
  };
  const int jmid = d.ny / 2, imid = d.nx / 2;
  for (int k = 0; k < d.nz; ++k) {
    const int row = d.nz - 1 - k;  // z up
    for (int i = 0; i < d.nx; ++i) put(i, row, i, jmid, k);               // front: x right
    for (int j = 0; j < d.ny; ++j) put(d.nx + gap + j, row, imid, j, k);  // side: y right
  }
  return rgb;
}

}  // namespace dcdm::sim
