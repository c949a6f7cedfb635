#include <gtest/gtest.h>

#include "dcdm/error.hpp"
#include "dcdm/grid.hpp"

using namespace dcdm;

TEST(Grid, IndexIsXFastest) {
  Dims d{5, 4, 3};
  EXPECT_EQ(d.size(), 60);
  EXPECT_EQ(d.index(1, 0, 0), 1);
  EXPECT_EQ(d.index(0, 1, 0), 5);
  EXPECT_EQ(d.index(0, 0, 1), 20);
  EXPECT_EQ(d.index(4, 3, 2), 59);
  EXPECT_TRUE(d.contains(4, 3, 2));
  EXPECT_FALSE(d.contains(5, 0, 0));
  EXPECT_FALSE(d.contains(0, -1, 0));
  EXPECT_EQ(d.str(), "5x4x3");
}

TEST(Grid, FieldIsContiguous) {
  Field<float> f(Dims{3, 2, 2}, 1.5f);
  f(2, 1, 1) = 7.0f;
  EXPECT_EQ(f.data()[11], 7.0f);
  EXPECT_EQ(f[0], 1.5f);
  EXPECT_EQ(f.span().size(), 12u);
}

TEST(Grid, ParseDims) {
  EXPECT_EQ(parse_dims("64"), (Dims{64, 64, 64}));
  EXPECT_EQ(parse_dims("13,9,11"), (Dims{13, 9, 11}));
  EXPECT_EQ(parse_dims("13x9x11"), (Dims{13, 9, 11}));
  for (const char* bad : {"", "0", "-3", "4,4", "4,4,4,4", "4,,4", "4,4,", "abc", "4;4;4"}) {
    EXPECT_THROW(parse_dims(bad, "--dims"), InputError) << bad;
  }
  try {
    parse_dims("4,x", "--dims");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("--dims"), std::string::npos);
  }
}

TEST(Grid, DomainCountsAndFaces) {
  Domain d(Dims{4, 4, 4});
  EXPECT_EQ(d.count(CellType::Fluid), 64);
  d.cells(0, 0, 0) = CellType::Solid;
  d.cells(1, 0, 0) = CellType::Air;
  EXPECT_EQ(d.count(CellType::Fluid), 62);
  EXPECT_EQ(d.count(CellType::Air), 1);
  EXPECT_EQ(d.face(Face::ZMax), FaceBoundary::Wall);
  d.set_face(Face::ZMax, FaceBoundary::Open);
  EXPECT_EQ(d.face(Face::ZMax), FaceBoundary::Open);
  EXPECT_STREQ(to_string(Face::ZMax), "z+");
}
