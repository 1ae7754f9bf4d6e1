/*
 * Compiled (not run) by `make ram`: each array's size is the sizeof of one RAM structure the
 * firmware owns, read back with `nm -S` so cross compilers report their own layout.
 */
#include "../vigil_fwu.h"
#include "../vigil_txq.h"

char vigil_sizeof_fwu_t[sizeof(vigil_fwu_t)];
char vigil_sizeof_rx_t[sizeof(vigil_rx_t)];
char vigil_sizeof_frame_t[sizeof(vigil_frame_t)];
char vigil_sizeof_txq_t[sizeof(vigil_txq_t)];
char vigil_sizeof_sha256_t[sizeof(vigil_sha256_t)];
char vigil_sizeof_wire[VIGIL_MAX_WIRE];
