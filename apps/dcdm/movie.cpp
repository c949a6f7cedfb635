// ffmpeg as a child process (posix_spawn, arguments, no shell) for the MP4 and GIF of a run.
#include "movie.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "dcdm/error.hpp"

extern char** environ;

namespace dcdm::cli {

namespace fs = std::filesystem;

fs::path find_on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  if (!path) return {};
  std::stringstream ss(path);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    const fs::path p = (dir.empty() ? fs::current_path() : fs::path(dir)) / program;
    if (::access(p.c_str(), X_OK) == 0 && fs::is_regular_file(p)) return p;
  }
  return {};
}

int run_child(const std::vector<std::string>& argv, const fs::path& log) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, argv[0].c_str(), &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -1;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

namespace {

std::string tail_of(const fs::path& log, std::size_t max_chars = 1500) {
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  if (s.size() > max_chars) s = "..." + s.substr(s.size() - max_chars);
  return s;
}

void run_ffmpeg(const std::vector<std::string>& argv, const fs::path& log, const fs::path& what) {
  const int status = run_child(argv, log);
  if (status != 0)
    throw Error(fmt::format("movie: ffmpeg failed writing {} (status {}):\n{}", what.string(), status, tail_of(log)));
}

}  // namespace

void make_movie_for_command(const std::vector<fs::path>& frames, const fs::path& stem, double fps) {
  std::fflush(stdout);
  try {
    fmt::print("{}\n", make_movie(frames, stem, fps).message);
  } catch (const Error& e) {
    // Not an internal error and not bad input: the external program failed.
    std::fflush(stdout);
    fmt::print(stderr, "dcdm: error: {}\n", e.what());
    std::fflush(stderr);
    std::exit(1);
  }
}

std::vector<fs::path> numbered_pngs(const fs::path& dir, const std::string& prefix) {
  std::vector<std::pair<long, fs::path>> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() <= prefix.size() + 4 || name.rfind(prefix, 0) != 0 || e.path().extension() != ".png") continue;
    const std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - 4);
    if (digits.empty() || digits.size() > 9 || !std::all_of(digits.begin(), digits.end(), ::isdigit)) continue;
    found.emplace_back(std::stol(digits), e.path());
  }
  std::sort(found.begin(), found.end());
  std::vector<fs::path> out;
  for (auto& f : found) out.push_back(f.second);
  return out;
}

MovieResult make_movie(const std::vector<fs::path>& frames, const fs::path& stem, double fps,
                       std::size_t gif_max_bytes) {
  MovieResult r;
  const fs::path ffmpeg = find_on_path("ffmpeg");
  if (ffmpeg.empty()) {
    r.message = "movie: ffmpeg was not found on PATH, so no MP4/GIF was made (the PNG frames are written; "
                "install it with `apt-get install ffmpeg` or scripts/setup-deps.sh)";
    return r;
  }
  if (frames.empty()) {
    r.message = "movie: no rendered frames, so no MP4/GIF was made";
    return r;
  }
  // ffmpeg reads a numbered sequence: links 000000.png, 000001.png, ... to the frames.
  const fs::path work = stem.string() + fmt::format(".frames.{}", ::getpid());
  fs::remove_all(work);
  fs::create_directories(work);
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{work};
  for (std::size_t n = 0; n < frames.size(); ++n)
    fs::create_symlink(fs::absolute(frames[n]), work / fmt::format("{:06d}.png", n));
  const std::string input = (work / "%06d.png").string();
  const std::string rate = fmt::format("{:g}", fps);
  const fs::path log = work / "ffmpeg.log";

  r.mp4 = stem.string() + ".mp4";
  const fs::path mp4_tmp = stem.string() + ".tmp.mp4";
  run_ffmpeg({ffmpeg.string(), "-hide_banner", "-loglevel", "error", "-y", "-framerate", rate, "-i", input, "-vf",
              "scale=trunc(iw/2)*2:trunc(ih/2)*2", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "20",
              "-preset", "medium", "-movflags", "+faststart", mp4_tmp.string()},
             log, r.mp4);
  fs::rename(mp4_tmp, r.mp4);

  // GIF: palettegen/paletteuse; narrower and at a lower frame rate until it fits.
  r.gif = stem.string() + ".gif";
  const fs::path gif_tmp = stem.string() + ".tmp.gif";
  std::size_t size = 0;
  int used_width = 0;
  for (const int w : {480, 360, 280, 200, 140}) {
    const double gif_fps = std::min(fps, w >= 360 ? 15.0 : 10.0);
    const std::string filter = fmt::format(
        "fps={:g},scale={}:-1:flags=lanczos,split[a][b];[a]palettegen=max_colors=128:stats_mode=diff[p];"
        "[b][p]paletteuse=dither=bayer:bayer_scale=4:diff_mode=rectangle",
        gif_fps, w);
    run_ffmpeg({ffmpeg.string(), "-hide_banner", "-loglevel", "error", "-y", "-framerate", rate, "-i", input,
                "-filter_complex", filter, "-loop", "0", gif_tmp.string()},
               log, r.gif);
    size = fs::file_size(gif_tmp);
    used_width = w;
    if (size <= gif_max_bytes) break;
  }
  fs::rename(gif_tmp, r.gif);
  r.made = true;
  auto human = [](std::uintmax_t bytes) {
    return bytes >= (1u << 20) ? fmt::format("{:.2f} MB", bytes / 1048576.0) : fmt::format("{} KB", (bytes + 1023) / 1024);
  };
  r.message = fmt::format("movie: {} ({}, {} frames at {} fps) and {} ({}, {} px wide)", r.mp4.string(),
                          human(fs::file_size(r.mp4)), frames.size(), rate, r.gif.string(), human(size), used_width);
  if (size > gif_max_bytes) r.message += " (still over the GIF size limit at the smallest width)";
  return r;
}

}  // namespace dcdm::cli

#include "dcdm/io.hpp"

namespace dcdm::cli {

void parse_image_size(const std::string& text, const std::string& option, int& width, int& height) {
  std::string t = text;
  std::replace(t.begin(), t.end(), ',', 'x');
  std::replace(t.begin(), t.end(), 'X', 'x');
  auto number = [&](const std::string& s) {
    if (s.empty() || s.size() > 6 || !std::all_of(s.begin(), s.end(), ::isdigit))
      throw InputError(fmt::format("{}: '{}' is not an image size (N or WxH, each 16..8192)", option, text));
    const int v = std::stoi(s);
    if (v < 16 || v > 8192)
      throw InputError(fmt::format("{}: '{}': each side must be in 16..8192 pixels", option, text));
    return v;
  };
  const auto x = t.find('x');
  if (x == std::string::npos) {
    width = height = number(t);
  } else {
    width = number(t.substr(0, x));
    height = number(t.substr(x + 1));
  }
}

double write_rendered_png(const fs::path& path, const Field<float>& density, const Field<CellType>* cells,
                          const render::VolumeRenderOptions& options, int frame, const std::string& name,
                          const Field<float>* liquid) {
  const auto t0 = std::chrono::steady_clock::now();
  const render::Image img = render::render_volume(density, cells, options, name, liquid);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto rgb = img.to_rgb8();
  if (frame >= 0) {
    const int scale = std::max(1, img.height / 320);
    const std::string label = fmt::format("FRAME {}", frame);
    const int x = img.width - render::text_width(label, scale) - 6 * scale, y = img.height - 12 * scale;
    render::draw_text(rgb, img.width, img.height, x + scale, y + scale, label, {0, 0, 0}, scale);  // shadow
    render::draw_text(rgb, img.width, img.height, x, y, label, {235, 235, 235}, scale);
  }
  io::write_png(path, img.width, img.height, 3, rgb);
  return seconds;
}

}  // namespace dcdm::cli
