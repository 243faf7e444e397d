/* host_work.h: the check mode's view of work the host does on device
 * buffers outside any stream -- a collective's request form
 * (zrt_comm_all_gather(comm, a, b, ..., &request) + zrt_comm_wait), whose
 * worker thread reads and writes the buffers while no stream knows of it.
 *
 * Why: without it the host read that follows the wait is reported as
 * "reads 'b', which nothing has written yet", and a read before the wait
 * (a real race) passes. begin checks the accesses as the host's and marks
 * every buffer the work writes pending: anyone touching it fails, naming
 * it, until end (at the wait) records the writes as the host's. Memory of
 * no check-mode device (pageable host memory) is not tracked. Private to
 * the library: comm.c and the device layer.
 */
#ifndef ZRT_DEVICE_HOST_WORK_H
#define ZRT_DEVICE_HOST_WORK_H

#include "zrt/device.h"

/* Checks every access against every check-mode device's tracker, then marks
 * them; on a hazard nothing is marked and the error names the buffer. */
zrt_status zrt_host_work_begin(const char *what, const zrt_access *access, int n_access);
/* The same accesses, once the work has ended (completed: it ran to the end). */
void zrt_host_work_end(const zrt_access *access, int n_access, bool completed);

#endif
