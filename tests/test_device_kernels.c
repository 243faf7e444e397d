/* test_device_kernels.c: the cpu device's engine kernels (casts, fill,
 * gradient statistics, Adam/AdamW) against the scalar reference and golden
 * values of tests/kernel_checks.h, bitwise, on odd lengths and unaligned
 * tails, in check mode and without.
 */
#include "kernel_checks.h"

int main(void)
{
    for (int check = 0; check <= 1; check++) {
        zrt_device *d = make_device(ZRT_DEVICE_CPU, check);
        check_all_kernels(d, true);
        zrt_device_destroy(d);
    }
    printf("cpu kernels: casts (9 dtype pairs x accumulate), fill, grad_stats, adam: equal to the reference\n");
    return CHECK_DONE();
}
