# dcdm-mpi end to end (cmake -P): the distributed solve agrees with the serial tool on the
# same scene (iteration counts of Jacobi-PCG, the system's cell counts), unit and weighted,
# a system folder gives the scene's result, and bad input exits 2 on every rank with the
# message once.
# Inputs: MPIEXEC, DCDM_MPI, DCDM (the serial tool), WORK_DIR, PYTHON.
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

function(run_mpi np expected_rc out_var err_var)
  execute_process(COMMAND ${MPIEXEC} --oversubscribe -n ${np} ${DCDM_MPI} ${ARGN}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 120)
  if(NOT rc EQUAL expected_rc)
    message(FATAL_ERROR "dcdm-mpi ${ARGN} (-n ${np}): exit ${rc}, expected ${expected_rc}\nstdout: ${out}\nstderr: ${err}")
  endif()
  set(${out_var} "${out}" PARENT_SCOPE)
  set(${err_var} "${err}" PARENT_SCOPE)
endfunction()

# Reads key (a JSON path like system.fluid) from a report.
function(json_get file key out_var)
  file(READ ${file} text)
  string(REPLACE "." ";" path "${key}")
  string(JSON value GET "${text}" ${path})
  set(${out_var} "${value}" PARENT_SCOPE)
endfunction()

# Bad input: exit 2 everywhere, "dcdm-mpi: error:" exactly once, naming what was wrong.
function(expect_bad_input np pattern)
  run_mpi(${np} 2 out err ${ARGN})
  string(REGEX MATCHALL "dcdm-mpi: error:" hits "${err}")
  list(LENGTH hits count)
  if(NOT count EQUAL 1)
    message(FATAL_ERROR "dcdm-mpi ${ARGN}: ${count} error messages, expected 1:\n${err}")
  endif()
  if(NOT err MATCHES "${pattern}")
    message(FATAL_ERROR "dcdm-mpi ${ARGN}: the error does not name '${pattern}':\n${err}")
  endif()
endfunction()

# 1. Jacobi-PCG on 3 ranks against the serial tool's jacobi method on the same scene and b.
set(scene --scene obstacles --dims 24,19,13 --seed 2)
run_mpi(3 0 out err solve ${scene} --json ${WORK_DIR}/cg.json -ksp_type cg -pc_type jacobi -ksp_rtol 1e-8)
execute_process(COMMAND ${DCDM} solve ${scene} --method jacobi --rtol 1e-8 --json ${WORK_DIR}/serial.json
                RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "dcdm solve failed (${rc}): ${err}")
endif()
foreach(key system.fluid system.air system.solid system.singular_components)
  json_get(${WORK_DIR}/cg.json ${key} mpi_value)
  json_get(${WORK_DIR}/serial.json ${key} serial_value)
  if(NOT mpi_value EQUAL serial_value)
    message(FATAL_ERROR "${key}: dcdm-mpi ${mpi_value}, dcdm solve ${serial_value}")
  endif()
endforeach()
json_get(${WORK_DIR}/cg.json iterations mpi_its)
json_get(${WORK_DIR}/serial.json iterations serial_its)
json_get(${WORK_DIR}/cg.json rhs_norm mpi_bnorm)
json_get(${WORK_DIR}/serial.json rhs_norm serial_bnorm)
math(EXPR its_diff "${mpi_its} - ${serial_its}")
if(its_diff GREATER 1 OR its_diff LESS -1)
  message(FATAL_ERROR "Jacobi-PCG iterations: dcdm-mpi ${mpi_its}, dcdm solve ${serial_its}")
endif()
if(NOT mpi_bnorm STREQUAL serial_bnorm)
  # The same b: its norm agrees to the printed digits or very nearly.
  execute_process(COMMAND ${PYTHON} -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); sys.exit(abs(a-b)>1e-12*abs(b))"
                  ${mpi_bnorm} ${serial_bnorm} RESULT_VARIABLE differ)
  if(differ)
    message(FATAL_ERROR "||b||: dcdm-mpi ${mpi_bnorm}, dcdm solve ${serial_bnorm}")
  endif()
endif()
json_get(${WORK_DIR}/cg.json reason reason)
json_get(${WORK_DIR}/cg.json relative_residual relres)
if(NOT reason STREQUAL "converged-rtol")
  message(FATAL_ERROR "dcdm-mpi reason ${reason}")
endif()

# 2. KSPDCDM with PCMG (Galerkin) on a system folder written by the serial tool, shell
#    operator: converges, with the folder's counts.
execute_process(COMMAND ${DCDM} export --scene obstacles --n 17 --seed 1 --out ${WORK_DIR}/sys
                RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "dcdm export failed (${rc}): ${err}")
endif()
run_mpi(2 0 out err solve --system ${WORK_DIR}/sys --json ${WORK_DIR}/mg.json
        -ksp_type dcdm -pc_type mg -pc_mg_levels 3 -pc_mg_galerkin pmat)
run_mpi(1 0 out err solve --scene obstacles --n 17 --seed 1 --json ${WORK_DIR}/mg1.json
        -ksp_type dcdm -pc_type mg -pc_mg_levels 3 -pc_mg_galerkin pmat)
foreach(key system.fluid rhs_norm)
  json_get(${WORK_DIR}/mg.json ${key} a)
  json_get(${WORK_DIR}/mg1.json ${key} b)
  execute_process(COMMAND ${PYTHON} -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); sys.exit(abs(a-b)>1e-12*abs(b))"
                  ${a} ${b} RESULT_VARIABLE differ)
  if(differ)
    message(FATAL_ERROR "${key}: --system on 2 ranks ${a}, --scene on 1 rank ${b}")
  endif()
endforeach()
json_get(${WORK_DIR}/mg.json converged converged)
if(NOT converged)
  message(FATAL_ERROR "KSPDCDM + PCMG on the system folder did not converge")
endif()

# 2c. PCMG on a grid the DMDA cannot coarsen (odd and even sizes, 3 ranks), without
#     -pc_mg_galerkin: dcdm's cell-centred levels with Galerkin operators converge; more levels
#     than the ranks' partition allows is bad input naming the option.
run_mpi(3 0 out err solve --scene bunny --dims 41,30,27 --json ${WORK_DIR}/pcmg.json
        -ksp_type cg -pc_type mg -pc_mg_levels 4)
json_get(${WORK_DIR}/pcmg.json converged converged)
json_get(${WORK_DIR}/pcmg.json system.pcmg_interpolation interpolation)
if(NOT converged OR NOT interpolation MATCHES "cell-centred")
  message(FATAL_ERROR "PCMG on 41x30x27: converged ${converged}, interpolation '${interpolation}'")
endif()
expect_bad_input(3 "-pc_mg_levels 8" solve --scene bunny --dims 41,30,27 -ksp_type cg -pc_type mg -pc_mg_levels 8)

# 2b. Weighted systems. Jacobi-PCG on 3 ranks against the serial tool on the density scene
#     (face weights 1/rho): the same cells, b and iterations. Then a cutcell folder (face_*.npy)
#     and a liquid folder (diagonal.npy) on 2 ranks against their scenes on 1 rank.
set(wscene --scene density --dims 19,17,15 --seed 2)
run_mpi(3 0 out err solve ${wscene} --json ${WORK_DIR}/wcg.json -ksp_type cg -pc_type jacobi -ksp_rtol 1e-8)
execute_process(COMMAND ${DCDM} solve ${wscene} --method jacobi --rtol 1e-8 --json ${WORK_DIR}/wserial.json
                RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "dcdm solve ${wscene} failed (${rc}): ${err}")
endif()
json_get(${WORK_DIR}/wcg.json system.weighted weighted)
if(NOT weighted)
  message(FATAL_ERROR "dcdm-mpi ${wscene}: the system is not weighted")
endif()
foreach(key system.fluid system.air system.solid system.singular_components iterations rhs_norm)
  json_get(${WORK_DIR}/wcg.json ${key} mpi_value)
  json_get(${WORK_DIR}/wserial.json ${key} serial_value)
  execute_process(COMMAND ${PYTHON} -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); sys.exit(abs(a-b)>max(1e-12*abs(b), 1 if sys.argv[3]=='iterations' else 0))"
                  ${mpi_value} ${serial_value} ${key} RESULT_VARIABLE differ)
  if(differ)
    message(FATAL_ERROR "weighted ${key}: dcdm-mpi ${mpi_value}, dcdm solve ${serial_value}")
  endif()
endforeach()
foreach(wname cutcell liquid)
  execute_process(COMMAND ${DCDM} export --scene ${wname} --n 17 --seed 1 --out ${WORK_DIR}/sys-${wname}
                  RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "dcdm export --scene ${wname} failed (${rc}): ${err}")
  endif()
  run_mpi(2 0 out err solve --system ${WORK_DIR}/sys-${wname} --json ${WORK_DIR}/w-${wname}-folder.json
          -ksp_type dcdm -pc_type gamg -ksp_rtol 1e-8)
  run_mpi(1 0 out err solve --scene ${wname} --n 17 --seed 1 --json ${WORK_DIR}/w-${wname}-scene.json
          -ksp_type dcdm -pc_type gamg -ksp_rtol 1e-8)
  foreach(key system.fluid system.singular_components rhs_norm)
    json_get(${WORK_DIR}/w-${wname}-folder.json ${key} a)
    json_get(${WORK_DIR}/w-${wname}-scene.json ${key} b)
    execute_process(COMMAND ${PYTHON} -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); sys.exit(abs(a-b)>1e-12*abs(b))"
                    ${a} ${b} RESULT_VARIABLE differ)
    if(differ)
      message(FATAL_ERROR "${wname} ${key}: --system on 2 ranks ${a}, --scene on 1 rank ${b}")
    endif()
  endforeach()
endforeach()
# The unit-coefficient V-cycle refuses a weighted system on every rank.
expect_bad_input(2 "weighted.*gamg" solve --scene liquid --n 12 --method mgpcg)
expect_bad_input(3 "weighted.*gamg" solve --system ${WORK_DIR}/sys-cutcell --method dcdm-relax)
# A truncated coefficient file: only the ranks whose part is missing find it; all exit 2.
file(MAKE_DIRECTORY ${WORK_DIR}/wtruncated)
file(COPY ${WORK_DIR}/sys-cutcell/system.json ${WORK_DIR}/sys-cutcell/b.npy ${WORK_DIR}/sys-cutcell/flags.npy
     ${WORK_DIR}/sys-cutcell/face_x.npy ${WORK_DIR}/sys-cutcell/face_y.npy DESTINATION ${WORK_DIR}/wtruncated)
execute_process(COMMAND ${PYTHON} -c "import sys; d=open(sys.argv[1],'rb').read(); open(sys.argv[2],'wb').write(d[:len(d)*2//3])"
                ${WORK_DIR}/sys-cutcell/face_z.npy ${WORK_DIR}/wtruncated/face_z.npy)
expect_bad_input(3 "face_z.npy" solve --system ${WORK_DIR}/wtruncated -pc_type gamg)

# 3. Not converged: exit 3, the report says why.
run_mpi(2 3 out err solve --scene obstacles --n 17 --json ${WORK_DIR}/its.json -pc_type jacobi -ksp_max_it 3)
json_get(${WORK_DIR}/its.json reason reason)
json_get(${WORK_DIR}/its.json iterations its)
json_get(${WORK_DIR}/its.json converged converged)
if(NOT reason STREQUAL "max-iterations" OR NOT its EQUAL 3 OR converged)
  message(FATAL_ERROR "-ksp_max_it 3: reason ${reason}, iterations ${its}, converged ${converged}")
endif()

# 4. Bad input.
expect_bad_input(3 "-ksp_dcdm_fallback" solve --scene box --n 8 -ksp_dcdm_fallback sometimes)
expect_bad_input(3 "--n" solve --scene box --n 3)
expect_bad_input(2 "--operator" solve --scene box --n 8 --operator dense)
expect_bad_input(2 "unknown option '--bogus'" solve --scene box --n 8 --bogus)
expect_bad_input(2 "nowhere" solve --system ${WORK_DIR}/nowhere)
expect_bad_input(2 "scene" solve --scene teapot --n 8)
expect_bad_input(2 "--n/--dims: a 1200x1200x1200 scene" solve --scene box --dims 1200,1200,1200)
# A truncated flags.npy: only the ranks whose part is missing find it; all exit 2.
file(MAKE_DIRECTORY ${WORK_DIR}/truncated)
file(COPY ${WORK_DIR}/sys/system.json ${WORK_DIR}/sys/b.npy DESTINATION ${WORK_DIR}/truncated)
execute_process(COMMAND ${PYTHON} -c "import sys; d=open(sys.argv[1],'rb').read(); open(sys.argv[2],'wb').write(d[:len(d)//2])"
                ${WORK_DIR}/sys/flags.npy ${WORK_DIR}/truncated/flags.npy)
expect_bad_input(3 "flags.npy: truncated" solve --system ${WORK_DIR}/truncated)
# 5. The distributed V-cycle: mgpcg and dcdm-relax, through `dcdm solve --backend petsc` on 3
#    ranks (the serial tool becomes dcdm-mpi on every rank), take the serial tool's iterations
#    on the same scene and reach its residual.
set(scene5 --scene bunny --dims 29,34,31 --seed 4)
foreach(method mgpcg dcdm-relax)
  execute_process(COMMAND ${MPIEXEC} --oversubscribe -n 3 ${DCDM} solve --backend petsc ${scene5} --method ${method}
                          --json ${WORK_DIR}/${method}-mpi.json
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 120)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "mpiexec -n 3 dcdm solve --backend petsc --method ${method}: exit ${rc}\n${out}\n${err}")
  endif()
  execute_process(COMMAND ${DCDM} solve ${scene5} --method ${method} --json ${WORK_DIR}/${method}-serial.json
                  RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "dcdm solve --method ${method} failed (${rc}): ${err}")
  endif()
  json_get(${WORK_DIR}/${method}-mpi.json iterations mpi_its)
  json_get(${WORK_DIR}/${method}-serial.json iterations serial_its)
  json_get(${WORK_DIR}/${method}-mpi.json relative_residual mpi_res)
  json_get(${WORK_DIR}/${method}-serial.json relative_residual serial_res)
  json_get(${WORK_DIR}/${method}-mpi.json dcdm_mg.levels mpi_levels)
  math(EXPR its_diff "${mpi_its} - ${serial_its}")
  if(its_diff GREATER 1 OR its_diff LESS -1)
    message(FATAL_ERROR "${method}: ${mpi_its} iterations on 3 ranks, ${serial_its} serial")
  endif()
  execute_process(COMMAND ${PYTHON} -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); sys.exit(not (a < 1e-6 and b < 1e-6))"
                  ${mpi_res} ${serial_res} RESULT_VARIABLE bad)
  if(bad)
    message(FATAL_ERROR "${method}: relative residual ${mpi_res} on 3 ranks, ${serial_res} serial")
  endif()
  message(STATUS "${method}: ${mpi_its} iterations on 3 ranks (${mpi_levels} levels), serial ${serial_its}")
endforeach()
expect_bad_input(2 "paper64" solve --scene box --n 12 --method dcdm-relax:paper64)
expect_bad_input(2 "omega" solve --scene box --n 12 --method mgpcg:omega=3)
expect_bad_input(2 "--method" solve --scene box --n 12 --method cg)
execute_process(COMMAND ${DCDM} solve --backend petsc --scene box --n 8 --monitor
                RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT rc EQUAL 2 OR NOT err MATCHES "--monitor")
  message(FATAL_ERROR "dcdm solve --backend petsc --monitor: exit ${rc}, ${err}")
endif()

message(STATUS "dcdm-mpi CLI: Jacobi-PCG ${mpi_its} iterations (serial ${serial_its}), relative residual ${relres}")
# --dcdm-vectors: KSPDCDM's float or double directions, reported in the JSON; bad values of it
# and of -ksp_dcdm_vectors exit 2 on every rank.
foreach(vectors float double)
  run_mpi(2 0 out err solve --scene obstacles --n 20 --seed 5 --method dcdm-relax --dcdm-vectors ${vectors}
          --json ${WORK_DIR}/vectors-${vectors}.json)
  json_get(${WORK_DIR}/vectors-${vectors}.json dcdm.single_precision_vectors single)
  json_get(${WORK_DIR}/vectors-${vectors}.json iterations its_${vectors})
  if(vectors STREQUAL "float" AND NOT single)
    message(FATAL_ERROR "--dcdm-vectors float: single_precision_vectors is ${single}")
  elseif(vectors STREQUAL "double" AND single)
    message(FATAL_ERROR "--dcdm-vectors double: single_precision_vectors is ${single}")
  endif()
endforeach()
math(EXPR its_gap "${its_float} - ${its_double}")
if(its_gap GREATER 1 OR its_gap LESS -1)
  message(FATAL_ERROR "--dcdm-vectors: ${its_float} iterations with float, ${its_double} with double")
endif()
expect_bad_input(2 "--dcdm-vectors" solve --scene box --n 8 --method dcdm-relax --dcdm-vectors half)
# `dcdm solve --backend petsc` passes --dcdm-vectors on to dcdm-mpi.
execute_process(COMMAND ${MPIEXEC} --oversubscribe -n 2 ${DCDM} solve --backend petsc --scene obstacles --n 20 --seed 5
                        --method dcdm-relax --dcdm-vectors double --json ${WORK_DIR}/backend-double.json
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 120)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "dcdm solve --backend petsc --dcdm-vectors double: exit ${rc}\n${out}\n${err}")
endif()
json_get(${WORK_DIR}/backend-double.json dcdm.single_precision_vectors single)
json_get(${WORK_DIR}/backend-double.json iterations its_backend)
if(single OR NOT its_backend EQUAL its_double)
  message(FATAL_ERROR "dcdm solve --backend petsc --dcdm-vectors double: single_precision_vectors ${single}, "
                      "${its_backend} iterations (dcdm-mpi ${its_double})")
endif()
expect_bad_input(3 "-ksp_dcdm_vectors" solve --scene box --n 8 --method dcdm-relax -ksp_dcdm_vectors half)
