// The volume renderer (dcdm/render.hpp) against analytic cases (Beer-Lambert through a uniform
// sphere, an empty grid, mirror symmetry), a stored reference image, its input checks, the
// labelled slice figure, and `dcdm render` / `dcdm simulate --render --movie` end to end.
#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "cli_test.hpp"

#include "dcdm/error.hpp"
#include "dcdm/io.hpp"
#include "dcdm/render.hpp"

namespace dcdm::render {
namespace {

namespace fs = std::filesystem;

// Density 1 inside a sphere of radius r (cell centres) around the centre of an n^3 grid.
Field<float> sphere(int n, double r, float value = 1.f) {
  Field<float> f(Dims{n, n, n}, 0.f);
  const double c = 0.5 * n;
  for (int k = 0; k < n; ++k)
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < n; ++i) {
        const double dx = i + 0.5 - c, dy = j + 0.5 - c, dz = k + 0.5 - c;
        if (dx * dx + dy * dy + dz * dz <= r * r) f(i, j, k) = value;
      }
  return f;
}

VolumeRenderOptions front_view(int w, int h) {
  VolumeRenderOptions o;
  o.width = w, o.height = h;
  o.azimuth_deg = 0, o.elevation_deg = 0;  // along +y, through the box centre
  o.floor = false;
  o.step = 0.25;
  return o;
}

TEST(Render, SphereTransmittanceIsBeerLambert) {
  // 33x33 pixels: the middle pixel's ray runs through the centre, a chord of 2r cells.
  const int n = 32;
  const double r = 10.0;
  auto o = front_view(33, 33);
  o.lighting = false;
  o.extinction = 1.6;  // per longest side (32 cells): 0.05 per cell
  const Image img = render_volume(sphere(n, r), nullptr, o);
  const double t = img.transmittance[16 * 33 + 16];
  const double expected_depth = 0.05 * 2 * r;  // exp(-sigma * chord)
  EXPECT_NEAR(-std::log(t), expected_depth, 0.02 * expected_depth) << "T = " << t;
  // Absorption only: the pixel is the background times the transmittance.
  const double bg = std::pow(o.background_top[0] / 255.0, 2.2);
  const double bg_mid = bg + (std::pow(o.background_bottom[0] / 255.0, 2.2) - bg) * 0.5;
  EXPECT_NEAR(img.rgb[(16 * 33 + 16) * 3], t * bg_mid, 1e-5);
  // A ray that misses the sphere keeps everything.
  EXPECT_EQ(img.transmittance[0], 1.f);
  // Twice the extinction, twice the optical depth.
  o.extinction = 3.2;
  const double t2 = render_volume(sphere(n, r), nullptr, o).transmittance[16 * 33 + 16];
  EXPECT_NEAR(std::log(t2), 2 * std::log(t), 1e-4);
}

TEST(Render, EmptyGridIsTheBackgroundExactly) {
  const Field<float> empty(Dims{12, 10, 8}, 0.f);
  VolumeRenderOptions o;
  o.width = 40, o.height = 30;
  o.floor = false;
  o.background_top = o.background_bottom = {17, 99, 201};
  const auto rgb = render_volume(empty, nullptr, o).to_rgb8();
  ASSERT_EQ(rgb.size(), 40u * 30u * 3u);
  for (std::size_t p = 0; p < rgb.size(); p += 3) {
    ASSERT_EQ(rgb[p], 17) << p;
    ASSERT_EQ(rgb[p + 1], 99) << p;
    ASSERT_EQ(rgb[p + 2], 201) << p;
  }
  // With the default gradient: first row the top colour, last row the bottom colour.
  VolumeRenderOptions g;
  g.width = 16, g.height = 16;
  g.floor = false;
  const auto rgb2 = render_volume(empty, nullptr, g).to_rgb8();
  for (int q = 0; q < 3; ++q) {
    EXPECT_EQ(rgb2[q], g.background_top[q]);
    EXPECT_EQ(rgb2[(15 * 16 + 7) * 3 + q], g.background_bottom[q]);
  }
}

TEST(Render, CentredSphereIsMirrorSymmetric) {
  const int w = 32, h = 32;
  auto o = front_view(w, h);
  o.lighting = false;
  o.extinction = 6.0;
  const Image a = render_volume(sphere(24, 7.5), nullptr, o);
  // Lit from behind the camera, the lit image keeps the symmetry too.
  o.lighting = true;
  o.light_direction = {0, -1, 0};
  const Image b = render_volume(sphere(24, 7.5), nullptr, o);
  double darkest = 1.0;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const std::size_t p = std::size_t(y) * w + x, mx = std::size_t(y) * w + (w - 1 - x),
                        my = std::size_t(h - 1 - y) * w + x;
      ASSERT_NEAR(a.transmittance[p], a.transmittance[mx], 1e-5) << x << "," << y;
      ASSERT_NEAR(a.transmittance[p], a.transmittance[my], 1e-5) << x << "," << y;
      ASSERT_NEAR(b.rgb[p * 3 + 1], b.rgb[mx * 3 + 1], 1e-4) << x << "," << y;
      darkest = std::min(darkest, double(a.transmittance[p]));
    }
  EXPECT_LT(darkest, 0.5);  // the sphere is in the picture
}

// A liquid drawn from its level set: a level set with no liquid leaves the picture exactly as
// without one; a centred drop (a sphere of phi < 0) is mirror-symmetric seen from the front,
// water-coloured (blue over red) where it is, and shades its lit side brighter; a pool seen from
// above covers the centre; the inputs are checked.
TEST(Render, LiquidSurfaceFromItsLevelSet) {
  const int n = 24, w = 32, h = 32;
  auto o = front_view(w, h);
  o.light_direction = {0, -1, 0};  // from behind the camera: the front view stays symmetric
  const Field<float> no_smoke(Dims{n, n, n}, 0.f);
  Field<float> dry(Dims{n, n, n}, 5.f), drop(Dims{n, n, n}, 0.f);
  for (int k = 0; k < n; ++k)
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < n; ++i) {
        const double dx = i + 0.5 - 0.5 * n, dy = j + 0.5 - 0.5 * n, dz = k + 0.5 - 0.5 * n;
        drop(i, j, k) = float(std::sqrt(dx * dx + dy * dy + dz * dz) - 7.0);
      }
  const Image none = render_volume(no_smoke, nullptr, o);
  EXPECT_EQ(render_volume(no_smoke, nullptr, o, "density", &dry).rgb, none.rgb);
  const Image wet = render_volume(no_smoke, nullptr, o, "density", &drop);
  const std::size_t centre = std::size_t(h / 2) * w + w / 2;
  EXPECT_GT(wet.rgb[centre * 3 + 2], wet.rgb[centre * 3 + 0]);  // blue over red
  EXPECT_NE(wet.rgb[centre * 3 + 2], none.rgb[centre * 3 + 2]);
  EXPECT_EQ(wet.rgb[0], none.rgb[0]);  // a corner sees the background
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const std::size_t p = std::size_t(y) * w + x, mx = std::size_t(y) * w + (w - 1 - x);
      ASSERT_NEAR(wet.rgb[p * 3 + 2], wet.rgb[mx * 3 + 2], 2e-3) << x << "," << y;
    }
  // Lit from the left (-x), the drop's left half is brighter than its right.
  o.light_direction = {-1, -0.2, 0};
  const Image side = render_volume(no_smoke, nullptr, o, "density", &drop);
  const std::size_t left = std::size_t(h / 2) * w + w / 2 - 3, right = std::size_t(h / 2) * w + w / 2 + 2;
  EXPECT_GT(side.rgb[left * 3 + 2], side.rgb[right * 3 + 2]);
  // A pool filling the lower half, seen from above: the centre pixel is water.
  Field<float> pool(Dims{n, n, n}, 0.f);
  for (int k = 0; k < n; ++k)
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < n; ++i) pool(i, j, k) = float(k + 0.5 - 0.5 * n);
  auto top = front_view(w, h);
  top.elevation_deg = 89;
  const Image above = render_volume(no_smoke, nullptr, top, "density", &pool);
  const Image empty = render_volume(no_smoke, nullptr, top);
  EXPECT_GT(above.rgb[centre * 3 + 2], above.rgb[centre * 3 + 0]);
  EXPECT_NE(above.rgb[centre * 3 + 2], empty.rgb[centre * 3 + 2]);
  // Inputs: the level set's dims and finite values.
  Field<float> bad = drop;
  bad(1, 2, 3) = std::nanf("");
  try {
    (void)render_volume(no_smoke, nullptr, o, "phi.npy", &bad);
    ADD_FAILURE() << "a NaN in the level set was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("phi.npy: liquid level set nan at cell (1, 2, 3)"), std::string::npos)
        << e.what();
  }
  const Field<float> small(Dims{n, n, n - 1}, 1.f);
  EXPECT_THROW((void)render_volume(no_smoke, nullptr, o, "phi.npy", &small), InputError);
}

// A small lit scene with an obstacle and the floor: smoke sphere above a solid block.
Image reference_scene(Field<CellType>& cells) {
  const int n = 20;
  Field<float> rho = sphere(n, 5.0, 0.8f);
  cells = Field<CellType>(Dims{n, n, n}, CellType::Fluid);
  for (int k = 0; k < 5; ++k)
    for (int j = 6; j < 14; ++j)
      for (int i = 3; i < 9; ++i) cells(i, j, k) = CellType::Solid;
  VolumeRenderOptions o;  // every look option pinned, so that new defaults leave the reference alone
  o.width = o.height = 32;
  o.azimuth_deg = 30, o.elevation_deg = 18, o.fov_deg = 30, o.distance = 0;
  o.extinction = 40, o.albedo = 0.9, o.anisotropy = 0.35;
  o.light_direction = {-0.55, -0.45, 0.70};
  o.light_colour = {1.7, 1.6, 1.45};
  o.ambient_colour = {0.12, 0.14, 0.18};
  o.solid_colour = {0.75, 0.58, 0.45};
  o.background_top = {28, 33, 44}, o.background_bottom = {74, 82, 98};
  o.step = 0.6;
  return render_volume(rho, &cells, o);
}

TEST(Render, MatchesStoredReferenceImage) {
  Field<CellType> cells;
  const Image img = reference_scene(cells);
  const auto rgb = img.to_rgb8();
  const fs::path ref = fs::path(DCDM_SOURCE_DIR) / "tests" / "data" / "render_reference_32.npy";
  if (std::getenv("DCDM_UPDATE_RENDER_REFERENCE")) {
    fs::create_directories(ref.parent_path());
    io::write_npy(ref, rgb, {32, 32, 3});
  }
  const io::NpyArray a = io::read_npy(ref);
  ASSERT_EQ(a.dtype, io::DType::UInt8);
  ASSERT_EQ(a.bytes.size(), rgb.size());
  double sum = 0;
  int worst = 0;
  for (std::size_t p = 0; p < rgb.size(); ++p) {
    const int diff = std::abs(int(rgb[p]) - int(a.bytes[p]));
    sum += diff;
    worst = std::max(worst, diff);
  }
  EXPECT_LT(sum / rgb.size(), 1.0);
  EXPECT_LE(worst, 16);
  // The obstacle is drawn (the obstacle does not count in the transmittance) and is lit.
  int non_background = 0;
  for (std::size_t p = 0; p < img.transmittance.size(); ++p)
    if (img.transmittance[p] == 1.f && (img.rgb[p * 3] > 0.2f)) ++non_background;
  EXPECT_GT(non_background, 10);
}

TEST(Render, BadInputsAreInputErrors) {
  VolumeRenderOptions o;
  o.width = o.height = 16;
  Field<float> rho(Dims{8, 8, 8}, 0.1f);
  const Field<CellType> wrong(Dims{8, 8, 9}, CellType::Fluid);
  auto message = [&](const Field<float>& d, const Field<CellType>* c, const VolumeRenderOptions& opt) {
    try {
      render_volume(d, c, opt, "smoke.npy");
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(rho, &wrong, o).find("8x8x9"), std::string::npos) << message(rho, &wrong, o);
  rho(1, 2, 3) = std::nanf("");
  EXPECT_NE(message(rho, nullptr, o).find("smoke.npy: density nan at cell (1, 2, 3)"), std::string::npos)
      << message(rho, nullptr, o);
  rho(1, 2, 3) = -0.5f;
  EXPECT_NE(message(rho, nullptr, o).find("cell (1, 2, 3)"), std::string::npos);
  rho(1, 2, 3) = 0.f;
  EXPECT_EQ(message(rho, nullptr, o), "no error");
  auto bad = o;
  bad.width = 0;
  EXPECT_NE(message(rho, nullptr, bad).find("image size"), std::string::npos);
  bad = o;
  bad.light_direction = {0, 0, 0};
  EXPECT_NE(message(rho, nullptr, bad).find("light direction"), std::string::npos);
  bad = o;
  bad.extinction = std::nan("");
  EXPECT_NE(message(rho, nullptr, bad).find("extinction"), std::string::npos);
  // The double overload checks the same way.
  Field<double> rd(Dims{4, 4, 4}, 0.0);
  rd(0, 0, 0) = -1.0;
  EXPECT_THROW(render_volume(rd, nullptr, o), InputError);
}

TEST(Render, SliceFigureHasColourBarLabelsAndFrame) {
  const Dims d{16, 12, 10};
  Domain dom(d);
  Field<double> rho(d, 0.0);
  dom.cells(2, 6, 1) = CellType::Solid;
  int w = 0, h = 0;
  const auto rgb = density_slice_figure(rho, dom, 123, w, h);
  ASSERT_EQ(rgb.size(), std::size_t(w) * h * 3);
  EXPECT_GT(w, (16 + 12) * 10);
  // Some light text pixels in the lower right (the frame number), none without a frame.
  auto ink = [&](const std::vector<std::uint8_t>& img) {
    int count = 0;
    for (int y = h - 24; y < h; ++y)
      for (int x = w - 120; x < w; ++x)
        if (img[(std::size_t(y) * w + x) * 3] > 200) ++count;
    return count;
  };
  EXPECT_GT(ink(rgb), 20);
  int w2 = 0, h2 = 0;
  EXPECT_EQ(ink(density_slice_figure(rho, dom, -1, w2, h2)), 0);
  // The colour bar's top is the colour of density 1: a cell of density 1 shows it.
  rho(8, 6, 9) = 1.0;  // top row of the front slice (y = 6)
  const auto lit = density_slice_figure(rho, dom, -1, w2, h2);
  std::size_t found = 0;
  for (std::size_t p = 0; p < lit.size(); p += 3)
    if (lit[p] == 252 && lit[p + 1] == 255 && lit[p + 2] == 164) ++found;
  EXPECT_GT(found, 400u);  // the cell (20x20 pixels) and the top of the bar
}

TEST(Render, TextDrawsKnownGlyphsOnly) {
  std::vector<std::uint8_t> img(30 * 10 * 3, 0);
  draw_text(img, 30, 10, 0, 0, "1 ~", {255, 0, 0}, 1);
  int lit = 0;
  for (std::size_t p = 0; p < img.size(); p += 3) lit += img[p] == 255;
  EXPECT_EQ(lit, 10);  // the '1' of the 5x7 font; space and '~' draw nothing
  EXPECT_EQ(text_width("abc", 2), 36);
}

// ---- the command line ----

class RenderCli : public dcdm::testing::CliTest {
 protected:
  RenderCli() : CliTest("render_cli", 2) {}
  // Runs dcdm with PATH set to `path` (to hide ffmpeg).
  int run_with_path(const std::string& path, const std::string& args) {
    const std::string cmd = fmt::format("PATH={} OMP_NUM_THREADS=2 {} {} > {} 2>&1", path, DCDM_CLI_PATH, args,
                                        (dir_ / "log.txt").string());
    const int rc = std::system(cmd.c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  }
  static std::pair<int, int> png_size(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    unsigned char b[24] = {};
    in.read(reinterpret_cast<char*>(b), 24);
    auto be = [&](int o) { return (b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]; };
    return {be(16), be(20)};
  }
};

TEST_F(RenderCli, RendersAnExportedFrameAtTheRequestedSize) {
  const fs::path run = dir_ / "run";
  ASSERT_EQ(run_cli(fmt::format("simulate --n 16 --frames 2 --export-every 1 --quiet --out {}", run.string())), 0)
      << log();
  ASSERT_TRUE(fs::exists(run / "frame_0002" / "density.npy"));
  const fs::path png = dir_ / "frame2.png";
  ASSERT_EQ(run_cli(fmt::format("render {} --size 96x64 --out {}", (run / "frame_0002").string(), png.string())), 0)
      << log();
  EXPECT_EQ(png_size(png), std::make_pair(96, 64));
  // A run folder: one picture per frame.
  ASSERT_EQ(run_cli(fmt::format("render {} --size 48", run.string())), 0) << log();
  EXPECT_EQ(png_size(run / "render" / "render_0001.png"), std::make_pair(48, 48));
  EXPECT_TRUE(fs::exists(run / "render" / "render_0002.png"));
  // The labelled slice figure of the run.
  EXPECT_TRUE(fs::exists(run / "png" / "density_0002.png"));
}

TEST_F(RenderCli, RenderEveryKFramesWithoutExportingSystems) {
  const fs::path run = dir_ / "run";
  ASSERT_EQ(run_cli(fmt::format("simulate --n 16 --frames 3 --export-every 0 --render-every 2 --render-size 40x32 "
                                "--quiet --out {}",
                                run.string())),
            0)
      << log();
  EXPECT_EQ(png_size(run / "render" / "render_0002.png"), std::make_pair(40, 32));
  EXPECT_FALSE(fs::exists(run / "render" / "render_0001.png"));
  EXPECT_FALSE(fs::exists(run / "frame_0002"));
  EXPECT_TRUE(fs::exists(run / "checkpoint.bin"));  // written at the end
}

TEST_F(RenderCli, BadInputsExitTwoNamingTheFileOrOption) {
  EXPECT_EQ(run_cli(fmt::format("render {}", (dir_ / "missing").string())), 2);
  EXPECT_NE(log().find("missing"), std::string::npos) << log();
  const fs::path frame = dir_ / "frame_0001";
  fs::create_directories(frame);
  std::vector<float> v(4 * 4 * 4, 0.f);
  v[5] = std::nanf("");
  io::write_npy(frame / "density.npy", v, {4, 4, 4});
  EXPECT_EQ(run_cli(fmt::format("render {}", frame.string())), 2);
  EXPECT_NE(log().find("density.npy"), std::string::npos) << log();  // the .npy reader refuses NaN
  EXPECT_NE(log().find("NaN"), std::string::npos) << log();
  v[5] = -1.f;
  io::write_npy(frame / "density.npy", v, {4, 4, 4});
  EXPECT_EQ(run_cli(fmt::format("render {}", frame.string())), 2);
  EXPECT_NE(log().find("density.npy: density -1 at cell (1, 1, 0)"), std::string::npos) << log();
  v[5] = 0.f;
  io::write_npy(frame / "density.npy", v, {4, 4, 4});
  io::write_npy(frame / "flags.npy", std::vector<std::uint8_t>(4 * 4 * 5, 1), {5, 4, 4});
  EXPECT_EQ(run_cli(fmt::format("render {}", frame.string())), 2);
  EXPECT_NE(log().find("flags.npy"), std::string::npos) << log();
  fs::remove(frame / "flags.npy");
  EXPECT_EQ(run_cli(fmt::format("render {} --size 7x7", frame.string())), 2);
  EXPECT_NE(log().find("--size"), std::string::npos) << log();
  EXPECT_EQ(run_cli(fmt::format("render {} --size 32", frame.string())), 0) << log();
  // A level set beside the density: its shape must be the density's.
  io::write_npy(dir_ / "phi.npy", std::vector<float>(4 * 4 * 5, 1.f), {5, 4, 4});
  EXPECT_EQ(run_cli(fmt::format("render {} --size 32 --level-set {}", frame.string(), (dir_ / "phi.npy").string())), 2);
  EXPECT_NE(log().find("--level-set"), std::string::npos) << log();
  io::write_npy(dir_ / "phi.npy", std::vector<float>(4 * 4 * 4, -1.f), {4, 4, 4});
  EXPECT_EQ(run_cli(fmt::format("render {} --size 32 --level-set {}", frame.string(), (dir_ / "phi.npy").string())), 0)
      << log();
  // Scenes: the liquid scene's surface; no input and no scene, or both, are errors.
  EXPECT_EQ(run_cli(fmt::format("render --scene liquid --n 16 --param drop=1 --size 32 --out {}",
                                (dir_ / "liquid.png").string())),
            0)
      << log();
  EXPECT_TRUE(fs::exists(dir_ / "liquid.png"));
  EXPECT_EQ(run_cli(fmt::format("render --scene teapot --n 16 --out {}", (dir_ / "t.png").string())), 2);
  EXPECT_EQ(run_cli("render --size 32"), 2);
  EXPECT_NE(log().find("--scene"), std::string::npos) << log();
  EXPECT_EQ(run_cli(fmt::format("render {} --scene liquid", frame.string())), 2);
}

TEST_F(RenderCli, MovieWithoutFfmpegIsSkippedWithAMessage) {
  const fs::path run = dir_ / "run";
  ASSERT_EQ(run_with_path("/nonexistent-dcdm-test",
                          fmt::format("simulate --n 16 --frames 2 --export-every 1 --quiet --movie --render-size 32 "
                                      "--out {}",
                                      run.string())),
            0)
      << log();
  EXPECT_NE(log().find("ffmpeg was not found on PATH"), std::string::npos) << log();
  EXPECT_TRUE(fs::exists(run / "render" / "render_0002.png"));
  EXPECT_FALSE(fs::exists(run / "render" / "movie.mp4"));
  EXPECT_EQ(run_with_path("/nonexistent-dcdm-test", fmt::format("render {} --movie --size 32", run.string())), 0)
      << log();
  EXPECT_NE(log().find("ffmpeg was not found on PATH"), std::string::npos) << log();
}

TEST_F(RenderCli, FfmpegFailureIsReportedWithItsMessage) {
  const fs::path run = dir_ / "run";
  ASSERT_EQ(run_cli(fmt::format("simulate --n 16 --frames 1 --export-every 1 --quiet --out {}", run.string())), 0)
      << log();
  // An ffmpeg that fails the way a build without H.264 does.
  const fs::path bin = dir_ / "bin";
  fs::create_directories(bin);
  {
    std::ofstream script(bin / "ffmpeg");
    script << "#!/bin/sh\necho \"Unknown encoder 'libx264'\" >&2\nexit 1\n";
  }
  fs::permissions(bin / "ffmpeg", fs::perms::owner_all);
  EXPECT_EQ(run_with_path(bin.string(), fmt::format("render {} --movie --size 32", run.string())), 1) << log();
  EXPECT_NE(log().find("ffmpeg failed writing"), std::string::npos) << log();
  EXPECT_NE(log().find("Unknown encoder 'libx264'"), std::string::npos) << log();
  EXPECT_TRUE(fs::exists(run / "render" / "render_0001.png"));  // the frames stay
}

TEST_F(RenderCli, MovieWithFfmpeg) {
  if (std::system("command -v ffmpeg > /dev/null 2>&1") != 0) GTEST_SKIP() << "ffmpeg is not installed";
  const fs::path run = dir_ / "run";
  ASSERT_EQ(run_cli(fmt::format("simulate --n 16 --frames 3 --export-every 1 --quiet --out {}", run.string())), 0)
      << log();
  ASSERT_EQ(run_cli(fmt::format("render {} --movie --size 64", run.string())), 0) << log();
  ASSERT_TRUE(fs::exists(run / "render" / "movie.mp4")) << log();
  ASSERT_TRUE(fs::exists(run / "render" / "movie.gif")) << log();
  EXPECT_GT(fs::file_size(run / "render" / "movie.mp4"), 100u);
  EXPECT_LE(fs::file_size(run / "render" / "movie.gif"), 2u << 20);
  std::ifstream gif(run / "render" / "movie.gif", std::ios::binary);
  char magic[6] = {};
  gif.read(magic, 6);
  EXPECT_EQ(std::string(magic, 6), "GIF89a");
}

}  // namespace
}  // namespace dcdm::render
