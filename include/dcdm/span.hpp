#pragma once
// dcdm::span: a non-owning view of contiguous elements, the subset of C++20's std::span that
// the public API uses. The public headers compile as C++17 (what plug-in hosts such as the
// VFX Reference Platform build with), and a function's signature must be the same type for a
// C++17 consumer as for the C++20 library build, so this is one class in both languages
// rather than an alias of std::span where it exists. It converts implicitly from vectors,
// arrays, std::span and pointer + size, and (in C++20) to std::span.
#include <array>
#include <cstddef>
#include <type_traits>
#include <utility>
#if __cplusplus >= 202002L && __has_include(<span>)
#include <span>
#define DCDM_HAS_STD_SPAN 1
#endif

namespace dcdm {

template <class T>
class span;

namespace detail {
template <class>
struct is_span : std::false_type {};
template <class U>
struct is_span<span<U>> : std::true_type {};
// A contiguous container whose elements are viewable as T (vector, array, std::span, string).
template <class C, class T, class = void>
struct viewable_as : std::false_type {};
template <class C, class T>
struct viewable_as<C, T,
                   std::void_t<decltype(std::declval<C&>().data()), decltype(std::declval<C&>().size())>>
    : std::bool_constant<!is_span<std::remove_cv_t<std::remove_reference_t<C>>>::value &&
                         std::is_convertible_v<std::remove_pointer_t<decltype(std::declval<C&>().data())> (*)[], T (*)[]>> {};
}  // namespace detail

template <class T>
class span {
 public:
  using element_type = T;
  using value_type = std::remove_cv_t<T>;
  using size_type = std::size_t;
  using pointer = T*;
  using reference = T&;
  using iterator = T*;

  constexpr span() noexcept = default;
  constexpr span(T* data, std::size_t size) noexcept : data_(data), size_(size) {}
  template <std::size_t N>
  constexpr span(T (&array)[N]) noexcept : data_(array), size_(N) {}
  // A view of a container: lvalues always; rvalues only for views of const elements (a
  // temporary vector passed as an argument), as std::span allows.
  template <class C, class = std::enable_if_t<detail::viewable_as<C, T>::value &&
                                              (std::is_lvalue_reference_v<C> || std::is_const_v<T>)>>
  constexpr span(C&& container) noexcept : data_(container.data()), size_(container.size()) {}
  template <class U, class = std::enable_if_t<std::is_convertible_v<U (*)[], T (*)[]>>>
  constexpr span(const span<U>& other) noexcept : data_(other.data()), size_(other.size()) {}
#ifdef DCDM_HAS_STD_SPAN
  template <class U, std::size_t E, class = std::enable_if_t<std::is_convertible_v<U (*)[], T (*)[]>>>
  constexpr span(std::span<U, E> other) noexcept : data_(other.data()), size_(other.size()) {}
  constexpr operator std::span<T>() const noexcept { return {data_, size_}; }
#endif

  constexpr T* data() const noexcept { return data_; }
  constexpr std::size_t size() const noexcept { return size_; }
  constexpr std::size_t size_bytes() const noexcept { return size_ * sizeof(T); }
  constexpr bool empty() const noexcept { return size_ == 0; }
  constexpr T& operator[](std::size_t i) const noexcept { return data_[i]; }
  constexpr T& front() const noexcept { return data_[0]; }
  constexpr T& back() const noexcept { return data_[size_ - 1]; }
  constexpr T* begin() const noexcept { return data_; }
  constexpr T* end() const noexcept { return data_ + size_; }
  constexpr span first(std::size_t count) const noexcept { return {data_, count}; }
  constexpr span last(std::size_t count) const noexcept { return {data_ + size_ - count, count}; }
  constexpr span subspan(std::size_t offset, std::size_t count) const noexcept { return {data_ + offset, count}; }
  constexpr span subspan(std::size_t offset) const noexcept { return {data_ + offset, size_ - offset}; }

 private:
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

template <class T, std::size_t N>
span(T (&)[N]) -> span<T>;
template <class T>
span(T*, std::size_t) -> span<T>;
template <class C>
span(C&) -> span<std::remove_pointer_t<decltype(std::declval<C&>().data())>>;
template <class C>
span(const C&) -> span<std::remove_pointer_t<decltype(std::declval<const C&>().data())>>;

}  // namespace dcdm
