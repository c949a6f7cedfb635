// Writes a .vdb as another program would (no dcdm_dims metadata): a float grid "density" with
// voxels at negative and positive coordinates and one active 8^3 tile, and a float grid
// "temperature". For the import tests (tests/test_sim_cli.cpp).
//   foreign_vdb OUT.vdb
#include <openvdb/openvdb.h>

#include <cstdio>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: foreign_vdb OUT.vdb\n");
    return 2;
  }
  openvdb::initialize();
  auto density = openvdb::FloatGrid::create(0.0f);
  density->setName("density");
  auto acc = density->getAccessor();
  acc.setValue(openvdb::Coord(-3, 2, 5), 0.5f);
  acc.setValue(openvdb::Coord(4, -1, 6), 0.75f);
  // An active tile of value 0.25 over [8, 16)^3 (a leaf-sized block).
  density->tree().addTile(1, openvdb::Coord(8, 8, 8), 0.25f, true);
  auto temperature = openvdb::FloatGrid::create(0.0f);
  temperature->setName("temperature");
  temperature->getAccessor().setValue(openvdb::Coord(0, 0, 0), 300.0f);
  openvdb::io::File file(argv[1]);
  file.write({density, temperature});
  file.close();
  return 0;
}
