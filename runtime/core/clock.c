/* clock.c: the one clock of zrt: monotonic seconds, and a sleep that resumes
 * after signals.
 *
 * Why one: deadlines (comm, store, control plane), benchmarks and tests all
 * measure with the same CLOCK_MONOTONIC, so their numbers compare.
 */
#include "zrt.h"

#include <errno.h>
#include <time.h>

double zrt_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void zrt_sleep(double seconds)
{
    if (!(seconds > 0)) return;
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}
