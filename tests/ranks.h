/* ranks.h: run a function as N real processes (ranks) and collect the result.
 *
 * Why fork without exec: the tests need real processes (shared memory, TCP,
 * kill -9) but no binary of their own. Each child runs fn(rank, world, arg)
 * and exits with its return value; the parent waits with a deadline, kills
 * every child on timeout, and returns 0 only if all exited 0.
 */
#ifndef ZRT_TEST_RANKS_H
#define ZRT_TEST_RANKS_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef int (*rank_fn)(int rank, int world, void *arg);

#define MAX_TEST_RANKS 16

/* Starts the ranks; pids[] receives their pids. */
static inline void ranks_start(int world, rank_fn fn, void *arg, pid_t *pids)
{
    fflush(stdout);
    fflush(stderr);
    for (int r = 0; r < world; r++) {
        pids[r] = fork();
        if (pids[r] == 0) {
            int rc = fn(r, world, arg);
            fflush(stdout);
            fflush(stderr);
            _exit(rc);
        }
        if (pids[r] < 0) {
            perror("fork");
            exit(1);
        }
    }
}

/* Waits for all ranks; returns the number that failed (or were killed). */
static inline int ranks_wait(int world, pid_t *pids, double timeout_s, int *statuses)
{
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int remaining = world, failed = 0;
    while (remaining > 0) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid > 0) {
            for (int r = 0; r < world; r++) {
                if (pids[r] != pid) continue;
                if (statuses) statuses[r] = status;
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failed++;
                pids[r] = 0;
                remaining--;
            }
            continue;
        }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) * 1e-9 > timeout_s) {
            fprintf(stderr, "ranks: timed out after %.0f s; killing %d rank(s)\n", timeout_s, remaining);
            for (int r = 0; r < world; r++)
                if (pids[r] > 0) kill(pids[r], SIGKILL);
            while (waitpid(-1, NULL, 0) > 0) {}
            return failed + remaining;
        }
        usleep(2000);
    }
    return failed;
}

static inline int ranks_run(int world, rank_fn fn, void *arg, double timeout_s)
{
    pid_t pids[MAX_TEST_RANKS];
    ranks_start(world, fn, arg, pids);
    return ranks_wait(world, pids, timeout_s, NULL);
}

#endif
