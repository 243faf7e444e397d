/* zrt.h: the public API of libzrt, the ZeRO training runtime.
 *
 * Why one header: a C program linking libzrt needs this file and nothing else.
 * It only includes the API's parts from zrt/ (base, config, comm, mem,
 * device, model, data, schedule, engine, shards, tokenize, tokens); each of them compiles
 * alone and none includes this file back. Together they are everything
 * libzrt.so exports (runtime/libzrt.map lists it; tests/test_exports.sh
 * keeps the two equal). The internal tier (zrt/internal/) is not part of it.
 * No gRPC, YAML or JSON type appears here; the control plane and the parsers
 * stay behind the library boundary.
 *
 * Conventions (every function of the API follows them):
 *  - Functions return a zrt_status. ZRT_OK is 0; anything else is an error and
 *    zrt_last_error() then holds a message for this thread saying what failed.
 *  - The library never prints and never exits.
 *  - Structs named in _init/_fini pairs are owned by the caller; _fini accepts
 *    a struct that was only _init'ed or failed to load, and NULL.
 */
#ifndef ZRT_H
#define ZRT_H

#include "zrt/base.h"
#include "zrt/config.h"
#include "zrt/comm.h"
#include "zrt/mem.h"
#include "zrt/device.h"
#include "zrt/model.h"
#include "zrt/data.h"
#include "zrt/schedule.h"
#include "zrt/engine.h"
#include "zrt/shards.h"
#include "zrt/tokenize.h"
#include "zrt/tokens.h"

#endif /* ZRT_H */
