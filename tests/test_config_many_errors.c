/* test_config_many_errors.c: a config with more errors than the error
 * message holds (500 unknown zrt: keys with long names, and a long
 * file name) fails with a message that names the first ones and ends
 * cleanly -- the collector stops at its buffer's end instead of writing past
 * it (found by `scons fuzz`: fuzz/corpus/config/regression-error-buffer-full;
 * under mode=debug, ASan would report the old overflow here).
 */
#include "check.h"
#include "zrt.h"

int main(void)
{
    char name[300];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    static char text[200000];
    int used = snprintf(text, sizeof text, "distributed_type: DEEPSPEED\nzrt:\n"); /* zrt: is strict: each an error */
    for (int i = 0; i < 500; i++)
        used += snprintf(text + used, sizeof text - (size_t)used,
                         "  zero_unknown_option_%03d_with_a_rather_long_name_to_fill_the_message: 1\n", i);
    char file[400];
    snprintf(file, sizeof file, "%.200s.yaml", name);
    const char *path = test_write_file(test_tmpdir(), file, text, (size_t)used);
    static zrt_config cfg;
    CHECK(zrt_config_load(&cfg, path) == ZRT_ERR_CONFIG);
    const char *msg = zrt_last_error();
    CHECK_MSG(strstr(msg, "zero_unknown_option_000") != NULL, "the first error is not named: %.200s", msg);
    CHECK(strlen(msg) < ZRT_ERROR_MAX);
    printf("500 errors: the message holds %zu bytes, the first: %.120s\n", strlen(msg), msg);
    return CHECK_DONE();
}
