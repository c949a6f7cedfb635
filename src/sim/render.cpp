// Mid-plane density slices for quick looks at a run (PNG frames): the raw slices, and a
// labelled figure (colour map, colour bar, axis names, frame number) drawn with a bitmap font.
#include <algorithm>
#include <cmath>

#include <array>

#include <fmt/format.h>

#include "dcdm/error.hpp"
#include "dcdm/render.hpp"
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

// ---- labelled slice figure and the bitmap font (dcdm/render.hpp) ----
namespace dcdm::render {
namespace {

struct Glyph {
  char c;
  std::uint8_t rows[7];  // bit 4 = leftmost column
};

// A classic 5x7 font: digits, upper case and the punctuation that labels need.
constexpr Glyph kGlyphs[] = {
    {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}}, {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}}, {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}},
    {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}}, {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
    {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}}, {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}}, {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
    {'A', {0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11}}, {'B', {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E}},
    {'C', {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}}, {'D', {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C}},
    {'E', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}}, {'F', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10}},
    {'G', {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}}, {'H', {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}},
    {'I', {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}}, {'J', {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C}},
    {'K', {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}}, {'L', {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F}},
    {'M', {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}}, {'N', {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}},
    {'O', {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}}, {'P', {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10}},
    {'Q', {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}}, {'R', {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11}},
    {'S', {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}}, {'T', {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}},
    {'U', {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}}, {'V', {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04}},
    {'W', {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}}, {'X', {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11}},
    {'Y', {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04}}, {'Z', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F}},
    {'.', {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}}, {',', {0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08}},
    {'-', {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00}}, {'=', {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00}},
    {':', {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00}}, {'/', {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00}},
    {'^', {0x04, 0x0A, 0x11, 0x00, 0x00, 0x00, 0x00}}, {'(', {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}},
    {')', {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}}, {'_', {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F}},
    {'+', {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00}}, {'%', {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}},
    {'<', {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02}}, {'>', {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08}},
    {'|', {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}}, {'?', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04}},
};

const Glyph* find_glyph(char c) {
  if (c >= 'a' && c <= 'z') c = char(c - 'a' + 'A');
  for (const auto& g : kGlyphs)
    if (g.c == c) return &g;
  return nullptr;
}

// A perceptual dark-to-bright colour map (close to matplotlib's "inferno").
std::array<std::uint8_t, 3> colour_map(double v) {
  static constexpr double stops[][3] = {{0, 0, 4},      {40, 11, 84},   {101, 21, 110}, {159, 42, 99},
                                        {212, 72, 66},  {245, 125, 21}, {250, 193, 39}, {252, 255, 164}};
  constexpr int n = 8;
  v = std::clamp(v, 0.0, 1.0) * (n - 1);
  const int i = std::min(int(v), n - 2);
  const double f = v - i;
  std::array<std::uint8_t, 3> c{};
  for (int q = 0; q < 3; ++q) c[q] = std::uint8_t(std::lround(stops[i][q] + (stops[i + 1][q] - stops[i][q]) * f));
  return c;
}

constexpr std::array<std::uint8_t, 3> kSolidColour{80, 170, 230};

}  // namespace

int text_width(const std::string& text, int scale) { return int(text.size()) * 6 * scale; }

void draw_text(std::vector<std::uint8_t>& rgb, int width, int height, int x, int y, const std::string& text,
               std::array<std::uint8_t, 3> colour, int scale) {
  for (std::size_t n = 0; n < text.size(); ++n) {
    const Glyph* g = find_glyph(text[n]);
    if (!g) continue;  // space and unknown characters
    const int x0 = x + int(n) * 6 * scale;
    for (int r = 0; r < 7; ++r)
      for (int c = 0; c < 5; ++c) {
        if (!(g->rows[r] & (0x10 >> c))) continue;
        for (int sy = 0; sy < scale; ++sy)
          for (int sx = 0; sx < scale; ++sx) {
            const int X = x0 + c * scale + sx, Y = y + r * scale + sy;
            if (X < 0 || Y < 0 || X >= width || Y >= height) continue;
            const std::size_t o = (std::size_t(Y) * width + X) * 3;
            rgb[o] = colour[0], rgb[o + 1] = colour[1], rgb[o + 2] = colour[2];
          }
      }
  }
}

std::vector<std::uint8_t> density_slice_figure(const Field<double>& density, const Domain& domain, int frame,
                                               int& width, int& height, int scale) {
  const Dims d = density.dims();
  if (!(domain.dims() == d)) throw Error("density_slice_figure: density and domain sizes differ");
  const int s = scale > 0 ? scale : std::max(1, 320 / std::max({d.nx, d.ny, d.nz}));  // pixels per cell
  const int t = 2;                                                  // text scale
  const int line = 8 * t;
  const int left = 3 * line, top = 2 * line + 8, bottom = 2 * line + 12, gap = 3 * line, bar_w = 16;
  const int panel_h = d.nz * s, front_w = d.nx * s, side_w = d.ny * s;
  const int bar_x = left + front_w + gap + side_w + gap;
  width = bar_x + bar_w + 10 + text_width("SOLID", t) + 12;
  width = std::max(width, left + text_width("FRAME 000000", t) + 200);
  height = top + panel_h + bottom;
  height = std::max(height, top + 8 * line);
  const std::array<std::uint8_t, 3> bg{24, 24, 28}, ink{225, 225, 225}, dim{150, 150, 150};
  std::vector<std::uint8_t> rgb(std::size_t(width) * height * 3);
  for (std::size_t p = 0; p < rgb.size(); p += 3) rgb[p] = bg[0], rgb[p + 1] = bg[1], rgb[p + 2] = bg[2];
  auto put = [&](int x, int y, std::array<std::uint8_t, 3> c) {
    if (x < 0 || y < 0 || x >= width || y >= height) return;
    const std::size_t o = (std::size_t(y) * width + x) * 3;
    rgb[o] = c[0], rgb[o + 1] = c[1], rgb[o + 2] = c[2];
  };
  const int jmid = d.ny / 2, imid = d.nx / 2;
  const int py0 = top;
  auto panel = [&](int x0, int cols, bool front) {
    for (int k = 0; k < d.nz; ++k)
      for (int a = 0; a < cols; ++a) {
        const int i = front ? a : imid, j = front ? jmid : a;
        const auto c = domain.cells(i, j, k) == CellType::Solid ? kSolidColour : colour_map(density(i, j, k));
        const int y = py0 + (d.nz - 1 - k) * s;  // z up
        for (int sy = 0; sy < s; ++sy)
          for (int sx = 0; sx < s; ++sx) put(x0 + a * s + sx, y + sy, c);
      }
    // Frame and axis arrows: horizontal axis to the right, z up.
    for (int x = x0 - 1; x <= x0 + cols * s; ++x) put(x, py0 - 1, dim), put(x, py0 + panel_h, dim);
    for (int y = py0 - 1; y <= py0 + panel_h; ++y) put(x0 - 1, y, dim), put(x0 + cols * s, y, dim);
  };
  const int front_x = left, side_x = left + front_w + gap;
  panel(front_x, d.nx, true);
  panel(side_x, d.ny, false);
  draw_text(rgb, width, height, front_x, 6, fmt::format("FRONT  Y={}", jmid), ink, t);
  draw_text(rgb, width, height, side_x, 6, fmt::format("SIDE  X={}", imid), ink, t);
  const int axis_y = py0 + panel_h + 6;
  draw_text(rgb, width, height, front_x + front_w / 2 - text_width("X ->", t) / 2, axis_y, "X ->", ink, t);
  draw_text(rgb, width, height, side_x + side_w / 2 - text_width("Y ->", t) / 2, axis_y, "Y ->", ink, t);
  for (int x0 : {front_x, side_x}) {
    draw_text(rgb, width, height, x0 - 2 * line + 2, py0 + panel_h / 2 - line, "^", ink, t);
    draw_text(rgb, width, height, x0 - 2 * line + 2, py0 + panel_h / 2, "Z", ink, t);
  }
  // Colour bar: density 0 (bottom) .. 1 (top), then the solid swatch.
  const int bar_h = std::max(panel_h - 3 * line, 4 * line);
  for (int y = 0; y < bar_h; ++y) {
    const auto c = colour_map(1.0 - double(y) / std::max(bar_h - 1, 1));
    for (int x = 0; x < bar_w; ++x) put(bar_x + x, py0 + y, c);
  }
  draw_text(rgb, width, height, bar_x - 4, 6, "DENSITY", ink, t);
  for (const double v : {0.0, 0.5, 1.0}) {
    const int y = py0 + int(std::lround((1.0 - v) * (bar_h - 1)));
    for (int x = bar_w; x < bar_w + 4; ++x) put(bar_x + x, y, ink);
    draw_text(rgb, width, height, bar_x + bar_w + 10, y - 7 * t / 2, v == 0.5 ? "0.5" : fmt::format("{:g}", v), ink, t);
  }
  const int sw_y = py0 + bar_h + line;
  for (int y = 0; y < line; ++y)
    for (int x = 0; x < bar_w; ++x) put(bar_x + x, sw_y + y, kSolidColour);
  draw_text(rgb, width, height, bar_x + bar_w + 10, sw_y + 1, "SOLID", ink, t);
  if (frame >= 0) {
    const std::string label = fmt::format("FRAME {}", frame);
    draw_text(rgb, width, height, width - text_width(label, t) - 8, height - line - 4, label, ink, t);
  }
  return rgb;
}

}  // namespace dcdm::render
