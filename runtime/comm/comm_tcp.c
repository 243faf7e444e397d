/* comm_tcp.c: TCP channels between ranks on different machines.
 *
 * Why staged rings: a ring collective sends to the next rank while the
 * previous one sends to us; with blocking writes and full socket buffers
 * every rank would wait in write() forever. So each channel stages up to
 * ZRT_CHANNEL_SLOTS messages, sockets are non-blocking, and every wait polls
 * and moves bytes on *all* of this rank's TCP channels (the engine, zrt_tcp).
 * Wire format per message: the 64-byte zrt_msg_header, then header.bytes of
 * payload. A connection starts with a hello {magic, rank} from the sender.
 * A closed or reset connection is a dead or failed peer: ZRT_ERR_PEER.
 */
#include "comm_internal.h"
#include "zrt/internal/knobs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HELLO_MAGIC 0x7a72742d74637031ull /* "zrt-tcp1" */
#define SLOT_BYTES (sizeof(zrt_msg_header) + ZRT_CHANNEL_PAYLOAD)
#define MAX_CHANNELS 2

typedef struct tcp_channel tcp_channel;

struct zrt_tcp {
    int rank;
    int listen_fd;
    tcp_channel *channels[MAX_CHANNELS];
    int n_channels;
};

struct tcp_channel {
    zrt_channel base;
    zrt_tcp *tcp;
    int fd;
    bool sending;
    char *slots;        /* ZRT_CHANNEL_SLOTS x (header + payload) */
    uint64_t head;      /* sending: committed; receiving: fully received */
    uint64_t tail;      /* sending: fully written; receiving: released */
    size_t partial;     /* bytes of the current slot moved so far */
    bool closed;        /* the peer closed or reset the connection */
    int error;          /* errno of a failed transfer */
};

static char *slot_of(tcp_channel *ch, uint64_t n) { return ch->slots + (n % ZRT_CHANNEL_SLOTS) * SLOT_BYTES; }

static size_t message_bytes(const char *slot) { return sizeof(zrt_msg_header) + ((const zrt_msg_header *)slot)->bytes; }

/* Moves what the socket takes now; never blocks. */
static void progress_send(tcp_channel *ch)
{
    while (!ch->closed && ch->tail < ch->head) {
        char *slot = slot_of(ch, ch->tail);
        size_t total = message_bytes(slot);
        ssize_t n = send(ch->fd, slot + ch->partial, total - ch->partial, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n <= 0) {
            ch->closed = true;
            ch->error = n < 0 ? errno : 0;
            return;
        }
        ch->partial += (size_t)n;
        if (ch->partial == total) {
            ch->tail++;
            ch->partial = 0;
        }
    }
}

static void progress_recv(tcp_channel *ch)
{
    while (!ch->closed && ch->head - ch->tail < ZRT_CHANNEL_SLOTS) {
        char *slot = slot_of(ch, ch->head);
        size_t want = ch->partial < sizeof(zrt_msg_header) ? sizeof(zrt_msg_header) : message_bytes(slot);
        if (want > SLOT_BYTES) { /* a corrupt header: treat as a broken peer */
            ch->closed = true;
            ch->error = EPROTO;
            return;
        }
        ssize_t n = recv(ch->fd, slot + ch->partial, want - ch->partial, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n <= 0) {
            ch->closed = true;
            ch->error = n < 0 ? errno : 0;
            return;
        }
        ch->partial += (size_t)n;
        if (ch->partial >= sizeof(zrt_msg_header) && ch->partial == message_bytes(slot)) {
            ch->head++;
            ch->partial = 0;
        }
    }
}

static void progress_all(zrt_tcp *tcp)
{
    for (int i = 0; i < tcp->n_channels; i++) {
        if (tcp->channels[i]->sending) progress_send(tcp->channels[i]);
        else progress_recv(tcp->channels[i]);
    }
}

static zrt_status closed_error(tcp_channel *ch, const zrt_wait *w)
{
    return zrt_set_error(ZRT_ERR_PEER, "rank %d: %s failed: the connection %s rank %d closed%s%s (peer died or failed)",
                         ch->tcp->rank, w->op ? zrt_op_name(w->op->kind) : "setup", ch->sending ? "to" : "from",
                         ch->base.peer, ch->error ? ": " : "", ch->error ? strerror(ch->error) : "");
}

/* Progresses every channel until ready(ch) holds, polling 10 ms at a time. */
static zrt_status tcp_wait(tcp_channel *ch, bool (*ready)(tcp_channel *), const zrt_wait *w)
{
    zrt_tcp *tcp = ch->tcp;
    for (;;) {
        progress_all(tcp);
        if (ready(ch)) return ZRT_OK;
        if (ch->closed) return closed_error(ch, w);
        ZRT_CHECK(zrt_wait_check(w, ch->base.peer));
        struct pollfd fds[MAX_CHANNELS];
        for (int i = 0; i < tcp->n_channels; i++) {
            tcp_channel *c = tcp->channels[i];
            fds[i] = (struct pollfd){.fd = c->fd, .events = c->sending ? (c->tail < c->head ? POLLOUT : 0) : POLLIN};
        }
        poll(fds, (nfds_t)tcp->n_channels, 10);
    }
}

static bool has_space(tcp_channel *ch) { return ch->head - ch->tail < ZRT_CHANNEL_SLOTS; }
static bool has_message(tcp_channel *ch) { return ch->head != ch->tail; }
static bool all_sent(tcp_channel *ch) { return ch->tail == ch->head; }

static zrt_status tcp_send_acquire(zrt_channel *base, void **payload, const zrt_wait *w)
{
    tcp_channel *ch = (tcp_channel *)base;
    ZRT_CHECK(tcp_wait(ch, has_space, w));
    *payload = slot_of(ch, ch->head) + sizeof(zrt_msg_header);
    return ZRT_OK;
}

static zrt_status tcp_send_commit(zrt_channel *base, const zrt_msg_header *header, const zrt_wait *w)
{
    (void)w;
    tcp_channel *ch = (tcp_channel *)base;
    memcpy(slot_of(ch, ch->head), header, sizeof *header);
    ch->head++;
    progress_send(ch);
    return ZRT_OK;
}

static zrt_status tcp_recv_acquire(zrt_channel *base, zrt_msg_header *header, const void **payload,
                                   const zrt_wait *w)
{
    tcp_channel *ch = (tcp_channel *)base;
    ZRT_CHECK(tcp_wait(ch, has_message, w));
    const char *slot = slot_of(ch, ch->tail);
    memcpy(header, slot, sizeof *header);
    *payload = slot + sizeof *header;
    return ZRT_OK;
}

static void tcp_recv_release(zrt_channel *base) { ((tcp_channel *)base)->tail++; }

static zrt_status tcp_flush(zrt_channel *base, const zrt_wait *w) { return tcp_wait((tcp_channel *)base, all_sent, w); }

static void tcp_channel_destroy(zrt_channel *base)
{
    tcp_channel *ch = (tcp_channel *)base;
    close(ch->fd);
    free(ch->slots);
    free(ch);
}

static const zrt_channel_ops tcp_channel_ops = {tcp_send_acquire, tcp_send_commit, tcp_recv_acquire,
                                                tcp_recv_release, tcp_flush, tcp_channel_destroy};

/* ---- connections ---------------------------------------------------------------------- */

static zrt_status new_channel(zrt_tcp *tcp, int fd, int peer, bool sending, zrt_channel **out)
{
    if (tcp->n_channels == MAX_CHANNELS) {
        close(fd);
        return zrt_set_error(ZRT_ERR_INTERNAL, "tcp: more than %d channels", MAX_CHANNELS);
    }
    tcp_channel *ch = calloc(1, sizeof *ch);
    char *slots = malloc(ZRT_CHANNEL_SLOTS * SLOT_BYTES);
    if (!ch || !slots) {
        free(ch);
        free(slots);
        close(fd);
        return zrt_set_error(ZRT_ERR_NOMEM, "tcp: out of memory");
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    *ch = (tcp_channel){.base = {&tcp_channel_ops, peer}, .tcp = tcp, .fd = fd, .sending = sending, .slots = slots};
    tcp->channels[tcp->n_channels++] = ch;
    *out = &ch->base;
    return ZRT_OK;
}

/* The IPv4 address of ifname, or of the first up, non-loopback interface. */
static zrt_status pick_address(const char *ifname, struct in_addr *addr)
{
    struct ifaddrs *list;
    if (getifaddrs(&list) != 0) return zrt_set_error(ZRT_ERR_IO, "tcp: getifaddrs: %s", strerror(errno));
    bool found = false;
    for (struct ifaddrs *i = list; i && !found; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || !(i->ifa_flags & IFF_UP)) continue;
        if (ifname ? strcmp(i->ifa_name, ifname) != 0 : (i->ifa_flags & IFF_LOOPBACK) != 0) continue;
        *addr = ((struct sockaddr_in *)i->ifa_addr)->sin_addr;
        found = true;
    }
    freeifaddrs(list);
    if (found) return ZRT_OK;
    if (ifname) return zrt_set_error(ZRT_ERR_IO, "tcp: no IPv4 address on interface '%s'", ifname);
    addr->s_addr = htonl(INADDR_LOOPBACK); /* a machine with only lo */
    return ZRT_OK;
}

zrt_status zrt_tcp_create(int rank, const char *ifname, zrt_tcp **out, char *endpoint, size_t endpoint_size)
{
    if (!ifname || !ifname[0]) ifname = zrt_knob_set(ZRT_KNOB_SOCKET_IFNAME);
    if (ifname && !ifname[0]) ifname = NULL;
    struct sockaddr_in sa = {.sin_family = AF_INET};
    ZRT_CHECK(pick_address(ifname, &sa.sin_addr));
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return zrt_set_error(ZRT_ERR_IO, "tcp: socket: %s", strerror(errno));
    socklen_t len = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        close(fd);
        return zrt_set_error(ZRT_ERR_IO, "tcp: listen on %s: %s", inet_ntoa(sa.sin_addr), strerror(errno));
    }
    zrt_tcp *tcp = calloc(1, sizeof *tcp);
    if (!tcp) {
        close(fd);
        return zrt_set_error(ZRT_ERR_NOMEM, "tcp: out of memory");
    }
    tcp->rank = rank;
    tcp->listen_fd = fd;
    snprintf(endpoint, endpoint_size, "%s:%d", inet_ntoa(sa.sin_addr), ntohs(sa.sin_port));
    *out = tcp;
    return ZRT_OK;
}

static zrt_status parse_endpoint(const char *endpoint, struct sockaddr_in *sa)
{
    char host[64];
    int port;
    if (sscanf(endpoint, "%63[^:]:%d", host, &port) != 2 || inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        return zrt_set_error(ZRT_ERR_INVALID, "tcp: bad endpoint '%s'", endpoint);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    return ZRT_OK;
}

zrt_status zrt_tcp_connect(zrt_tcp *tcp, int to, const char *endpoint, double timeout_s, zrt_channel **out)
{
    struct sockaddr_in sa = {0};
    ZRT_CHECK(parse_endpoint(endpoint, &sa));
    double deadline = zrt_now() + timeout_s;
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return zrt_set_error(ZRT_ERR_IO, "tcp: socket: %s", strerror(errno));
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
            uint64_t hello[2] = {HELLO_MAGIC, (uint64_t)tcp->rank};
            if (send(fd, hello, sizeof hello, MSG_NOSIGNAL) == (ssize_t)sizeof hello)
                return new_channel(tcp, fd, to, true, out);
        }
        int err = errno;
        close(fd);
        if (zrt_now() > deadline)
            return zrt_set_error(ZRT_ERR_TIMEOUT, "tcp: rank %d cannot connect to rank %d at %s: %s", tcp->rank, to,
                                 endpoint, strerror(err));
        zrt_sleep(0.01);
    }
}

zrt_status zrt_tcp_accept(zrt_tcp *tcp, int from, double timeout_s, zrt_channel **out)
{
    double deadline = zrt_now() + timeout_s;
    while (zrt_now() < deadline) {
        struct pollfd pfd = {.fd = tcp->listen_fd, .events = POLLIN};
        if (poll(&pfd, 1, 100) <= 0) continue;
        int fd = accept4(tcp->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) continue;
        struct timeval tv = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        uint64_t hello[2];
        if (recv(fd, hello, sizeof hello, MSG_WAITALL) == (ssize_t)sizeof hello && hello[0] == HELLO_MAGIC &&
            hello[1] == (uint64_t)from)
            return new_channel(tcp, fd, from, false, out);
        close(fd); /* a stray or foreign connection: keep waiting for ours */
    }
    return zrt_set_error(ZRT_ERR_TIMEOUT, "tcp: rank %d: rank %d did not connect within %.1f s", tcp->rank, from,
                         timeout_s);
}

void zrt_tcp_shutdown(zrt_tcp *tcp)
{
    for (int i = 0; tcp && i < tcp->n_channels; i++) shutdown(tcp->channels[i]->fd, SHUT_RDWR);
}

void zrt_tcp_destroy(zrt_tcp *tcp)
{
    if (!tcp) return;
    close(tcp->listen_fd);
    free(tcp);
}
