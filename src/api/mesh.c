/*
 * mesh.c -- the mesh controllers and endpoints (being written).
 */
#include "api/api_int.h"
