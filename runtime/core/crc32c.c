/* crc32c.c: CRC32C (Castagnoli), bytewise with a table -- the checksum of
 * every checkpoint header and section (zrt/shards.h). Why not a library:
 * this is twenty lines, and the checkpoint writer, its loader and the shard
 * tools must agree on it bit for bit. */
#include "zrt/shards.h"

#include <pthread.h>

static uint32_t table[256];

static void make_table(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        table[i] = c;
    }
}

uint32_t zrt_crc32c(uint32_t crc, const void *data, size_t len)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, make_table);
    const unsigned char *p = data;
    crc = ~crc;
    while (len--) crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}
