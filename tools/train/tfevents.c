/* tfevents.c: TensorBoard event files, written without TensorFlow.
 *
 * Why by hand: an event file is TFRecord framing around a few fields of the
 * Event protobuf, and zrt writes only scalars; encoding those fields here
 * (varints, fixed64/fixed32, length-delimited) is shorter than a .proto and
 * its generated code. The framing of each record:
 *   uint64 length, uint32 masked CRC32C of those 8 bytes, data, uint32 masked CRC32C of data
 * (little-endian; mask(c) = ((c >> 15) | (c << 17)) + 0xa282ead8). The fields
 * (tensorflow/core/util/event.proto, framework/summary.proto):
 *   Event { double wall_time = 1; int64 step = 2; string file_version = 3;
 *           Summary summary = 5; SessionLog session_log = 7; }
 *   Summary { repeated Value value = 1; }  Value { string tag = 1; float simple_value = 2; }
 *   SessionLog { enum status = 1 (START = 1); }
 * tests/test_monitor.sh reads the files back with TensorBoard's own reader
 * and with an independent one.
 */
#include "tfevents.h"

#include "zrt/shards.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PB_MAX 4096

/* A protobuf message being encoded. */
typedef struct {
    uint8_t data[PB_MAX];
    size_t len;
    bool overflow;
} pb_buf;

static void pb_bytes(pb_buf *b, const void *data, size_t len)
{
    if (b->len + len > PB_MAX) {
        b->overflow = true;
        return;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

static void pb_varint(pb_buf *b, uint64_t v)
{
    uint8_t out[10];
    size_t n = 0;
    do {
        out[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    pb_bytes(b, out, n);
}

/* Little-endian bytes of v's low `bytes` bytes (fixed32, fixed64). */
static void pb_fixed(pb_buf *b, uint64_t v, int bytes)
{
    uint8_t out[8];
    for (int i = 0; i < bytes; i++) out[i] = (uint8_t)(v >> (8 * i));
    pb_bytes(b, out, (size_t)bytes);
}

/* Field `field` with wire type `wire` (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32). */
static void pb_key(pb_buf *b, int field, int wire) { pb_varint(b, (uint64_t)(field << 3 | wire)); }

static void pb_string(pb_buf *b, int field, const void *data, size_t len)
{
    pb_key(b, field, 2);
    pb_varint(b, len);
    pb_bytes(b, data, len);
}

static void pb_double(pb_buf *b, int field, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    pb_key(b, field, 1);
    pb_fixed(b, bits, 8);
}

static void pb_float(pb_buf *b, int field, float v)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    pb_key(b, field, 5);
    pb_fixed(b, bits, 4);
}

/* An Event with wall_time (now) and step; the caller adds the rest. */
static void event_start(pb_buf *b, int64_t step)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    b->len = 0;
    b->overflow = false;
    pb_double(b, 1, (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9);
    pb_key(b, 2, 0);
    pb_varint(b, (uint64_t)step);
}

static uint32_t masked_crc(const void *data, size_t len)
{
    uint32_t c = zrt_crc32c(0, data, len);
    return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

/* One TFRecord around b, flushed. */
static zrt_status write_record(zrt_tfevents *w, const pb_buf *b)
{
    if (b->overflow) return zrt_set_error(ZRT_ERR_INTERNAL, "%s: an event longer than %d bytes", w->path, PB_MAX);
    pb_buf head = {.len = 0};
    pb_fixed(&head, b->len, 8);
    pb_fixed(&head, masked_crc(head.data, 8), 4);
    pb_buf tail = {.len = 0};
    pb_fixed(&tail, masked_crc(b->data, b->len), 4);
    bool ok = fwrite(head.data, 1, head.len, w->file) == head.len && fwrite(b->data, 1, b->len, w->file) == b->len &&
              fwrite(tail.data, 1, tail.len, w->file) == tail.len && fflush(w->file) == 0;
    return ok ? ZRT_OK : zrt_set_error(ZRT_ERR_IO, "cannot write the TensorBoard file %s: %s", w->path, strerror(errno));
}

zrt_status zrt_tfevents_open(zrt_tfevents *w, const char *dir)
{
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    snprintf(w->path, sizeof w->path, "%s/events.out.tfevents.%lld.%s.%d", dir, (long long)time(NULL), host,
             (int)getpid());
    int fd = open(w->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 || !(w->file = fdopen(fd, "wb"))) {
        if (fd >= 0) close(fd);
        return zrt_set_error(ZRT_ERR_IO, "cannot create the TensorBoard file %s: %s", w->path, strerror(errno));
    }
    pb_buf b;
    event_start(&b, 0);
    pb_string(&b, 3, "brain.Event:2", strlen("brain.Event:2"));
    return write_record(w, &b);
}

zrt_status zrt_tfevents_scalars(zrt_tfevents *w, int64_t step, const char *const *tags, const float *values, int n)
{
    pb_buf summary = {.len = 0};
    for (int i = 0; i < n; i++) {
        pb_buf value = {.len = 0};
        pb_string(&value, 1, tags[i], strlen(tags[i]));
        pb_float(&value, 2, values[i]);
        pb_string(&summary, 1, value.data, value.len);
    }
    pb_buf b;
    event_start(&b, step);
    pb_string(&b, 5, summary.data, summary.len);
    b.overflow |= summary.overflow;
    return write_record(w, &b);
}

zrt_status zrt_tfevents_restart(zrt_tfevents *w, int64_t step)
{
    pb_buf log = {.len = 0};
    pb_key(&log, 1, 0);
    pb_varint(&log, 1); /* SessionLog.START */
    pb_buf b;
    event_start(&b, step);
    pb_string(&b, 7, log.data, log.len);
    return write_record(w, &b);
}

void zrt_tfevents_close(zrt_tfevents *w)
{
    if (w->file) fclose(w->file);
    w->file = NULL;
}
