#include <gtest/gtest.h>

#include "dcdm/error.hpp"
#include "dcdm/grid.hpp"
#include "dcdm/system.hpp"

#include <nlohmann/json.hpp>

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

// Grid sizes whose cell count wraps around 64 bits (or passes 32-bit indices) are refused
// wherever dimensions enter: the command line, system.json, dataset manifests.
TEST(GridDims, OverflowingAndNonIntegerDimensionsAreRefused) {
  EXPECT_THROW(dcdm::parse_dims("4096,14586017,308761441", "--dims"), dcdm::InputError);  // wraps 2^64
  EXPECT_THROW(dcdm::parse_dims("2048", "--dims"), dcdm::InputError);                     // 2^33 cells
  EXPECT_THROW(dcdm::parse_dims("65536,65536,1", "--dims"), dcdm::InputError);            // 2^32 cells
  EXPECT_EQ(dcdm::parse_dims("1024,1024,2047", "--dims").size(), 1024LL * 1024 * 2047);
  try {
    dcdm::check_grid_dims({4096, 14586017, 308761441}, "--dims");
    ADD_FAILURE() << "no error";
  } catch (const dcdm::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("--dims"), std::string::npos) << e.what();
  }
  using nlohmann::json;
  EXPECT_EQ(dcdm::dims_from_json(json::array({3, 4, 5}), "x"), (dcdm::Dims{3, 4, 5}));
  for (const json& bad : {json::array({16.7, 4, 4}), json::array({1LL << 40, 4, 4}), json::array({4, 0, 4}),
                          json::array({4, 4}), json::array({4096, 14586017, 308761441}), json("16")})
    EXPECT_THROW(dcdm::dims_from_json(bad, "system.json dims"), dcdm::InputError) << bad.dump();
}
