/* cuda_common.h: what the multi-process GPU tests share: whether a GPU can
 * be opened, asked in a forked child -- the parent must not touch CUDA
 * before it forks its ranks (a CUDA context does not survive fork).
 */
#ifndef ZRT_TEST_CUDA_COMMON_H
#define ZRT_TEST_CUDA_COMMON_H

#include "check.h"
#include "gpu_present.h"
#include "zrt.h"

#include <sys/wait.h>
#include <unistd.h>

/* Returns if a cuda device opens; else skips with the device's reason --
 * or fails, where the machine has a GPU (gpu_present.h). */
static inline void skip_without_gpu(void)
{
    int fds[2];
    if (pipe(fds) != 0) SKIP("pipe failed");
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        zrt_device_options o;
        zrt_device_options_init(&o);
        o.kind = ZRT_DEVICE_CUDA;
        zrt_device *d = NULL;
        if (zrt_device_create(&o, &d) == ZRT_OK) {
            zrt_device_destroy(d);
            _exit(0);
        }
        const char *why = zrt_last_error();
        ssize_t written = write(fds[1], why, strlen(why));
        (void)written;
        _exit(1);
    }
    close(fds[1]);
    char why[512] = "";
    ssize_t got = read(fds[0], why, sizeof why - 1);
    why[got > 0 ? got : 0] = '\0';
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) no_cuda_device(why[0] ? why : "no CUDA device");
}

#endif
