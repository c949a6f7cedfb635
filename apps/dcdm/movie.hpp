#pragma once
// Rendered frames to an MP4 (H.264, yuv420p) and a small GIF with ffmpeg, run as a child
// process (found on PATH). Without ffmpeg the movie is skipped with a message, never an error.
#include <filesystem>
#include <string>
#include <vector>

#include "dcdm/grid.hpp"
#include "dcdm/render.hpp"

namespace dcdm::cli {

struct MovieResult {
  bool made = false;     // both files written
  std::string message;   // what happened, for the user (the reason when nothing was made)
  std::filesystem::path mp4, gif;
};

// The full path of `program` on PATH, or empty.
std::filesystem::path find_on_path(const std::string& program);

// Runs `argv` (argv[0] a path) as a child process with no shell; stdout and stderr go to
// `log`. Returns the exit status (-1: it could not start or did not exit normally).
int run_child(const std::vector<std::string>& argv, const std::filesystem::path& log);

// Assembles `frames` (PNG paths in order, all the same size) into `stem`.mp4 and `stem`.gif
// at `fps` frames per second; the GIF is scaled down (and thinned) until it is at most
// `gif_max_bytes`. Throws Error with the tail of ffmpeg's stderr when ffmpeg fails; returns
// made = false with a message when ffmpeg is absent or there are no frames.
MovieResult make_movie(const std::vector<std::filesystem::path>& frames, const std::filesystem::path& stem,
                       double fps, std::size_t gif_max_bytes = 2u << 20);

// make_movie for a command: prints what was made or why nothing was (no ffmpeg: exit status
// unchanged); when ffmpeg fails, prints its message and the tail of its stderr as an error and
// exits with status 1 (every other output of the command is written by then).
void make_movie_for_command(const std::vector<std::filesystem::path>& frames, const std::filesystem::path& stem,
                            double fps);

// The files NAME_DDDD.png of `dir` (any digits), in frame order.
std::vector<std::filesystem::path> numbered_pngs(const std::filesystem::path& dir, const std::string& prefix);

// ---- rendering shared by `dcdm render` and `dcdm simulate --render` ----

// Parses "N" (square) or "WxH" / "W,H" for `option`; InputError naming it otherwise.
void parse_image_size(const std::string& text, const std::string& option, int& width, int& height);

// Renders and writes one PNG; `frame` >= 0 is stamped in the lower right corner. Returns the
// seconds the rendering took (without the PNG encoding).
double write_rendered_png(const std::filesystem::path& path, const Field<float>& density, const Field<CellType>* cells,
                        const render::VolumeRenderOptions& options, int frame, const std::string& name,
                        const Field<float>* liquid = nullptr);

}  // namespace dcdm::cli
