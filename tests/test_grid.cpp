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

TEST(GridCrop, PartHasTheWholeDomainsCellsFacesAndWeights) {
  const Dims d{7, 5, 6};
  Domain whole(d);
  whole.set_face(Face::ZMax, FaceBoundary::Open);
  whole.set_face(Face::XMin, FaceBoundary::Open);
  Coefficients c;
  const auto sizes = Coefficients::face_sizes(d);
  for (int axis = 0; axis < 3; ++axis) {
    std::vector<double>& a = axis == 0 ? c.face_x : axis == 1 ? c.face_y : c.face_z;
    for (std::int64_t n = 0; n < sizes[axis]; ++n) a.push_back(0.25 + 0.001 * double(n) + axis);
  }
  for (std::int64_t n = 0; n < d.size(); ++n) {
    c.diagonal.push_back(0.5 * double(n % 3));
    if (n % 4 == 1) whole.cells[n] = CellType::Solid;
    if (n % 9 == 2) whole.cells[n] = CellType::Air;
  }
  c.scale = 3.0;
  whole.set_coefficients(c);
  for (const CellBox box : {CellBox{{0, 0, 0}, d}, CellBox{{2, 1, 3}, Dims{3, 4, 2}}, CellBox{{6, 4, 5}, Dims{1, 1, 1}},
                            CellBox{{0, 2, 0}, Dims{7, 1, 6}}}) {
    const Domain part = crop(whole, box);
    ASSERT_EQ(part.dims(), box.size);
    EXPECT_EQ(part.faces, whole.faces);
    ASSERT_TRUE(part.weighted());
    EXPECT_EQ(part.coefficients->scale, 3.0);
    const Dims s = box.size;
    for (int k = 0; k < s.nz; ++k)
      for (int j = 0; j < s.ny; ++j)
        for (int i = 0; i < s.nx; ++i) {
          const int gi = box.lo[0] + i, gj = box.lo[1] + j, gk = box.lo[2] + k;
          EXPECT_EQ(part.cells(i, j, k), whole.cells(gi, gj, gk));
          EXPECT_EQ(part.coefficients->diagonal[s.index(i, j, k)], c.diagonal[d.index(gi, gj, gk)]);
          for (int f = 0; f < 6; ++f)
            EXPECT_EQ(part.coefficients->weight(s, i, j, k, Face(f)), c.weight(d, gi, gj, gk, Face(f)))
                << i << "," << j << "," << k << " face " << f;
        }
    EXPECT_NO_THROW(part.coefficients->check(s));
  }
  // A unit domain's part is unit; empty and outlying boxes are refused.
  EXPECT_FALSE(crop(Domain(d), CellBox{{1, 1, 1}, Dims{2, 2, 2}}).weighted());
  EXPECT_THROW(crop(whole, CellBox{{5, 0, 0}, Dims{3, 1, 1}}), InputError);
  EXPECT_THROW(crop(whole, CellBox{{0, 0, 0}, Dims{0, 1, 1}}), InputError);
  EXPECT_THROW(crop(whole, CellBox{{-1, 0, 0}, Dims{1, 1, 1}}), InputError);
}
