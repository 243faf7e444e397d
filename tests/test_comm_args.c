/* test_comm_args.c: bad arguments are refused with ZRT_ERR_INVALID and a
 * message, before anything is sent: NULL buffers, count overflow, a root or
 * rank outside the world, unknown backends, dtypes and reductions; and the
 * nccl backend says why it is unavailable where there is no GPU.
 */
#include "comm_common.h"

int main(void)
{
    zrt_comm_options o;
    zrt_comm_options_init(&o);
    zrt_comm *comm = NULL;
    CHECK(zrt_comm_create("carrier-pigeon", &o, &comm) == ZRT_ERR_INVALID);
    CHECK(strstr(zrt_last_error(), "carrier-pigeon") != NULL);
    o.rank = 3;
    CHECK(zrt_comm_create("host", &o, &comm) == ZRT_ERR_INVALID);
    o.rank = 0;
    o.world_size = 2;
    CHECK(zrt_comm_create("host", &o, &comm) == ZRT_ERR_INVALID); /* no store */
    o.world_size = 1;
    o.timeout_s = 0;
    CHECK(zrt_comm_create("host", &o, &comm) == ZRT_ERR_INVALID);
    o.timeout_s = 10;
    CHECK_OK(zrt_comm_create("host", &o, &comm));

    float buf[8] = {0};
    CHECK(zrt_comm_all_gather(comm, NULL, buf, 4, ZRT_DTYPE_F32, NULL) == ZRT_ERR_INVALID);
    CHECK(strstr(zrt_last_error(), "NULL buffer") != NULL);
    CHECK(zrt_comm_reduce_scatter(comm, buf, NULL, 4, ZRT_DTYPE_F32, ZRT_REDUCE_SUM, NULL) == ZRT_ERR_INVALID);
    CHECK(zrt_comm_all_reduce(comm, buf, buf, SIZE_MAX / 2, ZRT_DTYPE_F32, ZRT_REDUCE_SUM, NULL) == ZRT_ERR_INVALID);
    CHECK(strstr(zrt_last_error(), "overflows") != NULL);
    CHECK(zrt_comm_broadcast(comm, buf, 4, ZRT_DTYPE_F32, 1, NULL) == ZRT_ERR_INVALID);
    CHECK(strstr(zrt_last_error(), "root 1") != NULL);
    CHECK(zrt_comm_all_gather(comm, buf, buf, 4, (zrt_dtype)7, NULL) == ZRT_ERR_INVALID);
    CHECK(zrt_comm_all_reduce(comm, buf, buf, 4, ZRT_DTYPE_F32, (zrt_reduce_op)9, NULL) == ZRT_ERR_INVALID);
    CHECK(zrt_comm_all_gather(NULL, buf, buf, 4, ZRT_DTYPE_F32, NULL) == ZRT_ERR_INVALID);
    CHECK(zrt_comm_wait(NULL) == ZRT_ERR_INVALID);
    /* count 0 with NULL buffers is fine (nothing moves), and the comm still works. */
    CHECK_OK(zrt_comm_all_gather(comm, NULL, NULL, 0, ZRT_DTYPE_BF16, NULL));
    float one = 2.5f, out = 0;
    CHECK_OK(zrt_comm_all_reduce(comm, &one, &out, 1, ZRT_DTYPE_F32, ZRT_REDUCE_AVG, NULL));
    CHECK(out == 2.5f);
    CHECK(zrt_comm_rank(comm) == 0 && zrt_comm_world_size(comm) == 1);
    zrt_comm_destroy(comm);
    zrt_comm_destroy(NULL);
    zrt_comm_abort(NULL);

    zrt_status status = zrt_comm_create("nccl", &o, &comm);
    CHECK_MSG(status == ZRT_ERR_UNSUPPORTED || status == ZRT_OK, "nccl: %s", zrt_last_error());
    if (status == ZRT_OK) zrt_comm_destroy(comm);
    else printf("nccl backend unavailable here, as expected: %s\n", zrt_last_error());
    return CHECK_DONE();
}
