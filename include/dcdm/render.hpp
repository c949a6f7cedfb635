#pragma once
// Pictures of a smoke simulation: a volume renderer of the density (ray marching with
// absorption and single scattering from one directional light, obstacles shaded from their
// geometry), a labelled figure of mid-plane density slices, and a tiny bitmap font for labels.
//
// World coordinates are cell units: cell (i, j, k) spans [i, i+1] x [j, j+1] x [k, k+1], the
// grid is the box [0, nx] x [0, ny] x [0, nz], z is up. Images are RGB, row-major, top row first.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "dcdm/grid.hpp"

namespace dcdm::render {

struct VolumeRenderOptions {
  int width = 640, height = 640;
  // Camera: looks at the box centre from the direction (azimuth, elevation); azimuth 0 and
  // elevation 0 look along +y (x to the right, z up), positive azimuth turns the camera towards
  // +x. fov_deg is the field of view across the smaller image side; distance 0 = the whole box in
  // view, else the distance from the box centre in cells.
  double azimuth_deg = 30.0, elevation_deg = 18.0, fov_deg = 30.0, distance = 0.0;
  // Optical depth of density 1 across the longest side of the box (so the look does not change
  // with the resolution).
  double extinction = 40.0;
  double albedo = 0.9;  // scattered share of the extinction
  // Direction towards the light (normalised internally), its colour (linear RGB, times the
  // intensity), the sky's ambient light and the Henyey-Greenstein anisotropy of the phase function.
  std::array<double, 3> light_direction{-0.55, -0.45, 0.70};
  std::array<double, 3> light_colour{1.7, 1.6, 1.45};
  std::array<double, 3> ambient_colour{0.12, 0.14, 0.18};
  double anisotropy = 0.35;
  bool lighting = true;  // false: absorption only (pixel = transmittance x background)
  bool solids = true;    // draw the Solid cells as surfaces
  bool floor = true;     // draw the box's bottom face as a checkered floor with the shadows
  // Background: a vertical gradient from top to bottom, display (sRGB) 8-bit values.
  std::array<std::uint8_t, 3> background_top{28, 33, 44}, background_bottom{74, 82, 98};
  std::array<double, 3> solid_colour{0.75, 0.58, 0.45};  // albedo of the obstacles
  // A liquid's surface (render_volume's level set): body colour (albedo) under a Fresnel
  // mirror of the sky, and the strength of the light's highlight.
  std::array<double, 3> liquid_colour{0.06, 0.22, 0.42};
  double liquid_specular = 0.8;
  double step = 0.6;  // ray-march step, in cells
};

// The rendered picture: linear RGB radiance and the transmittance of the volume along each
// pixel's ray (1 = nothing in the way; obstacles and the floor are not counted).
struct Image {
  int width = 0, height = 0;
  std::vector<float> rgb;            // width * height * 3, linear
  std::vector<float> transmittance;  // width * height
  // Display values: sRGB gamma, clamped; the background comes out as its 8-bit values exactly.
  std::vector<std::uint8_t> to_rgb8() const;
};

// Checks a density against its cell types (same sizes, finite, >= 0) and the options (image
// size 1..16384, positive step and field of view, finite non-negative extinction). `name` (a
// file, say) is in the messages. Throws InputError.
void check_inputs(const Field<float>& density, const Field<CellType>* cells, const VolumeRenderOptions& o,
                  const std::string& name = "density", const Field<float>* liquid = nullptr);

// Renders the density (and the Solid cells of `cells`, when given, and the surface of a liquid
// from its level set `liquid` at the cell centres, liquid where < 0, when given) to an image;
// checks its inputs first (check_inputs: the level set must be finite and of the density's
// dims). The liquid is an opaque surface that casts shadows. Multithreaded (OpenMP) over the
// rows of the image.
Image render_volume(const Field<float>& density, const Field<CellType>* cells, const VolumeRenderOptions& o,
                    const std::string& name = "density", const Field<float>* liquid = nullptr);
Image render_volume(const Field<double>& density, const Field<CellType>* cells, const VolumeRenderOptions& o,
                    const std::string& name = "density", const Field<float>* liquid = nullptr);

// ---- labels ----
// A 5x7 bitmap font (upper case, digits, common punctuation; lower case prints as upper case),
// each glyph cell 6x8 pixels times `scale`.
int text_width(const std::string& text, int scale);
void draw_text(std::vector<std::uint8_t>& rgb, int width, int height, int x, int y, const std::string& text,
               std::array<std::uint8_t, 3> colour, int scale);

// A labelled figure of the mid-plane density slices: front (y = ny/2, x right, z up) and side
// (x = nx/2, y right, z up) in a colour map, with the axis names, a colour bar for density 0..1
// (values above 1 saturate), a swatch for solid cells and, when frame >= 0, the frame number.
// `scale`: pixels per cell (0: about 320 pixels for the longest axis).
std::vector<std::uint8_t> density_slice_figure(const Field<double>& density, const Domain& domain, int frame,
                                               int& width, int& height, int scale = 0);

}  // namespace dcdm::render
