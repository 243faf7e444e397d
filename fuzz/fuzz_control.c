/* fuzz_control.c: libFuzzer target over the coordinator's request decoders
 * and handlers (control/coordinator.c, zrt_coordinator_fuzz): the first byte
 * picks the method, the rest is the request. State carries over between
 * inputs, as in a real job. Build and run: scons fuzz.
 */
#include "control.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return zrt_coordinator_fuzz(data, size); }
