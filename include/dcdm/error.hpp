#pragma once
// Errors that reach the user. InputError = bad input (files, options, data): the CLI prints
// the message and exits with status 2. Messages name the file and the line or byte offset.
#include <stdexcept>
#include <string>

namespace dcdm {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class InputError : public Error {
 public:
  using Error::Error;
};

// Bad input of one kind: a named file or folder that does not exist (the Python module raises
// FileNotFoundError for it).
class MissingFileError : public InputError {
 public:
  using InputError::InputError;
};

}  // namespace dcdm
