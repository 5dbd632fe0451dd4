/*
 * pump: a process's stdout and stderr read off JavaScript's thread (src/node/pump.ts).
 *
 *   outputPipe() -> [readFd, writeFd]
 *                        a pipe(2) for a child's output: both ends close-on-exec, the read end
 *                        non-blocking (the write end stays blocking, as a shell's pipe is).
 *   pumpInit(dispatch)   once: dispatch(id, chunk) is called on JavaScript's thread with each
 *                        piece read, and dispatch(id, null, errno) at the end (errno 0 at EOF).
 *   pumpAdd(fd) -> id    starts reading fd (which the pump now owns and closes at the end).
 *   pumpPause(id), pumpResume(id)
 *                        stop and go on reading (the producer blocks on its full pipe meanwhile).
 *   pumpStop(id)         stops for good and closes fd; nothing more is dispatched for id.
 *   pumpLend(id), pumpUnlend(id)
 *                        this thread stops and goes on reading the pipe, so another may read it.
 *   pumpPush(id, sock, at, prefix) -> 0 | -1
 *                        while the pipe is lent, this thread pushes it to a connected socket
 *                        itself (src/node/push.ts): prefix, then the pipe, every byte kept until
 *                        the socket's reader acknowledges it; dispatch(id, keep, 0, kind, offset,
 *                        tail) tells JavaScript how it goes (see "Pushing" below).
 *   pumpPushStop(id)     ends a push: what was not acknowledged is handed back.
 *
 * Why: Node reads a pipe 64 KiB at most per callback and, when it keeps up with the writer, a
 * few KiB at a time (`head -c` writes 8 KiB), each piece a trip through libuv, a stream and our
 * buffer on the one JavaScript thread. One thread here waits on every added pipe with epoll and
 * reads each into a buffer of up to PUMP_CAP bytes; a pipe's buffer is handed to JavaScript
 * whole, and while JavaScript has not yet taken the last one, the next fills. So JavaScript sees
 * a busy pipe in large pieces (as many per second as it can take), and a quiet one, such as an
 * interactive program's lines, at once.
 *
 * Locking: one mutex guards every source's flags and the lists; the thread lets go of it for the
 * read itself. A source is freed, under the mutex, by whichever of the thread and the dispatch
 * is the last to be done with it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <node_api.h>

#define PUMP_CAP (256 * 1024)
/* A piece smaller than this is copied into a Buffer of its size; a larger one is handed over. */
#define PUMP_COPY_BELOW (32 * 1024)

napi_value fdtake_throw_errno(napi_env env, const char *syscall, int e); /* fdtake.c */
int fdtake_int_arg(napi_env env, napi_value v, int32_t *out);             /* fdtake.c */

typedef struct push push_t;

typedef struct src {
  int32_t id;
  int fd;              /* -1 once closed */
  char *buf;           /* being filled by the thread; NULL until the next read */
  size_t len;
  int paused, eof, err, stopping;
  int inflight;        /* a delivery is queued or running in JavaScript */
  int end_posted;      /* the last delivery (with the end) has been queued */
  int watched;         /* in the epoll set with EPOLLIN */
  int lent;            /* the pipe is lent (pumpLend): this thread neither reads nor watches it */
  int reading;         /* this thread is in read(2) of the pipe, outside mu */
  int dirty;           /* on the dirty list */
  int live;            /* counted in `live` (JavaScript's thread only) */
  push_t *push;        /* while this thread pushes the lent pipe to a socket */
  int ready;           /* on this round's ready list (the loop's, below) */
  struct src *next, *next_dirty, *next_ready;
} src_t;

/*
 * Pushing. The pipe is lent (nothing of it is buffered in JavaScript), and this thread, instead
 * of handing JavaScript what it reads, writes it to a connected socket: first `prefix` (what
 * JavaScript had buffered and not yet sent), then the pipe as it comes. Every byte stays in `ring`
 * until the reader at the other end acknowledges it: 8 bytes, little-endian, the offset up to
 * which it passed the bytes on. Offsets are the lease's (JavaScript's): the prefix starts at `at`.
 * JavaScript hears, one delivery at a time like the pipe's pieces:
 *   PUSH_ACK    an acknowledgement up to lend_at (bytes before the pipe was lent are JavaScript's);
 *   PUSH_ENDED  the pipe ended, everything was sent and the socket shut for writing (the offset);
 *   PUSH_DONE   the push is over (everything acknowledged after PUSH_ENDED, pumpPushStop, the
 *               socket closed or failed, or an acknowledgement past what was sent): the last
 *               acknowledgement, the offset up to which the pipe was read, and as the piece the
 *               bytes from max(acknowledged, lend_at) up to there. The socket is closed; the pipe
 *               stays lent until pumpUnlend, and a pipe that ended is read again (to its end).
 */
#define PUSH_ACK 1
#define PUSH_ENDED 2
#define PUSH_DONE 3
/* Bytes a push keeps sent and not acknowledged (and read, not yet sent), at most; more when the prefix is larger. */
#define PUSH_RING (4 << 20)
/* At most this many rounds of read-send per wake-up, so one busy push does not starve the others. */
#define PUSH_ROUNDS 16

struct push {
  src_t *s;
  int fd;              /* the socket, non-blocking; -1 once closed */
  char *ring;
  size_t cap, head, len; /* ring[head..] holds len bytes from offset base, wrapping at cap */
  uint64_t base, sent, lend_at, acked, reported, end;
  unsigned char ab[8]; /* an acknowledgement begun */
  int an;
  int eof;             /* the pipe ended (or failed): nothing more to read */
  int asked_stop;      /* pumpPushStop (under mu; `stop` is this thread's alone) */
  int fin;             /* everything sent and the socket shut for writing: PUSH_ENDED due */
  int ended_posted;
  int stop;            /* over: PUSH_DONE due */
  int watched;         /* the socket's epoll mask, 0 when out of the set */
};

typedef struct delivery {
  src_t *s;            /* kept until this delivery has run */
  char *buf;
  size_t len;
  int end;             /* 1: the end follows the bytes */
  int err;
  int kind;            /* 0: the pipe's bytes; else a push's PUSH_ACK, PUSH_ENDED or PUSH_DONE */
  uint64_t off, tail;
} delivery_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static src_t *all;        /* every live source */
static src_t *dirty;      /* sources JavaScript changed since the thread last looked */
static int32_t next_id = 1;
static int epfd = -1, wakefd = -1;
static int started;
static napi_threadsafe_function tsfn;
/* Sources not yet ended or stopped: while there are any, the pump keeps the event loop alive (as
 * Node's own pipes do), so an in-process server's caller does not exit with output unread. Only
 * JavaScript's thread changes it. */
static int live;

static void unlive(napi_env env, src_t *s) {
  if (!s->live) return;
  s->live = 0;
  if (--live == 0 && env) napi_unref_threadsafe_function(env, tsfn);
}

static void wake(void) {
  uint64_t one = 1;
  ssize_t r = write(wakefd, &one, sizeof one);
  (void)r;
}

static src_t *find(int32_t id) {
  for (src_t *s = all; s; s = s->next)
    if (s->id == id) return s;
  return NULL;
}

static void mark_dirty(src_t *s) {
  if (s->dirty) return;
  s->dirty = 1;
  s->next_dirty = dirty;
  dirty = s;
}

/* Under mu: frees s once nothing refers to it any more (closed, and no delivery pending). */
static void maybe_free(src_t *s) {
  if (s->fd >= 0 || s->inflight || s->dirty || !(s->stopping || s->end_posted)) return;
  for (src_t **p = &all; *p; p = &(*p)->next)
    if (*p == s) { *p = s->next; break; }
  free(s->buf);
  free(s);
}

static void close_src(src_t *s) {
  if (s->fd < 0) return;
  if (s->watched) epoll_ctl(epfd, EPOLL_CTL_DEL, s->fd, NULL);
  close(s->fd);
  s->fd = -1;
  s->watched = 0;
}

/* Under mu: hands d to JavaScript (the one delivery of s in flight); false when nobody is left to take it. */
static int queue(src_t *s, delivery_t *d) {
  s->inflight = 1;
  if (napi_call_threadsafe_function(tsfn, d, napi_tsfn_nonblocking) == napi_ok) return 1;
  /* The environment is going away: nobody is left to read it. */
  s->inflight = 0;
  free(d->buf);
  free(d);
  return 0;
}

/* Epoll's data for a push's socket: its source's address with the low bit set. */
#define SOCK_TAG ((uintptr_t)1)

/* Under mu: the socket out of the set and closed, the ring freed; s no longer pushes. */
static void push_free(src_t *s) {
  push_t *p = s->push;
  if (!p) return;
  if (p->fd >= 0) {
    if (p->watched) epoll_ctl(epfd, EPOLL_CTL_DEL, p->fd, NULL);
    close(p->fd);
  }
  free(p->ring);
  free(p);
  s->push = NULL;
}

/* The reader's acknowledgements (8 bytes, little-endian): the ring drops what they cover. */
static int push_acks(push_t *p) {
  unsigned char b[512];
  int progress = 0;
  for (;;) {
    memcpy(b, p->ab, (size_t)p->an);
    ssize_t n = recv(p->fd, b + p->an, sizeof b - (size_t)p->an, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n <= 0) { /* the reader closed the connection, or it failed */
      p->stop = 1;
      break;
    }
    size_t all = (size_t)p->an + (size_t)n, whole = all - all % 8;
    for (size_t i = 0; i < whole; i += 8) {
      uint64_t v = 0;
      for (int k = 7; k >= 0; k--) v = v << 8 | b[i + (size_t)k];
      if (v > p->sent) { /* an offset never sent: the reader's side is broken */
        p->stop = 1;
        return 1;
      }
      if (v > p->acked) p->acked = v;
    }
    p->an = (int)(all - whole);
    memcpy(p->ab, b + whole, (size_t)p->an);
    progress = 1;
  }
  if (p->acked > p->base) {
    size_t d = (size_t)(p->acked - p->base);
    p->head = (p->head + d) % p->cap;
    p->len -= d;
    p->base = p->acked;
  }
  return progress;
}

/* One read of the pipe into the ring's free space (the part up to its wrap). */
static int push_read(push_t *p, int pipefd) {
  if (p->eof || p->len == p->cap) return 0;
  size_t tail = (p->head + p->len) % p->cap;
  size_t room = tail >= p->head ? p->cap - tail : p->head - tail;
  ssize_t n = read(pipefd, p->ring + tail, room);
  if (n > 0) {
    p->len += (size_t)n;
    return 1;
  }
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
  p->eof = 1; /* the end, or a failed read: read again once the pipe is JavaScript's, it says which */
  return 1;
}

/* Sends what the ring has and the socket takes; shuts the socket for writing after the last byte. */
static int push_send(push_t *p) {
  int progress = 0;
  while (p->sent < p->base + p->len) {
    size_t pos = (p->head + (size_t)(p->sent - p->base)) % p->cap;
    size_t n = (size_t)(p->base + p->len - p->sent);
    if (n > p->cap - pos) n = p->cap - pos;
    ssize_t w = send(p->fd, p->ring + pos, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w > 0) {
      p->sent += (uint64_t)w;
      progress = 1;
    } else if (w < 0 && errno == EINTR) {
      continue;
    } else {
      if (!(w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))) p->stop = 1;
      break;
    }
  }
  if (!p->stop && p->eof && !p->fin && p->sent == p->base + p->len) {
    shutdown(p->fd, SHUT_WR);
    p->fin = 1;
    p->end = p->sent;
    progress = 1;
  }
  return progress;
}

/* Not under mu: only this thread touches the ring, the socket and the flags but asked_stop. */
static void push_io(push_t *p, int pipefd) {
  for (int i = 0; i < PUSH_ROUNDS && !p->stop; i++) {
    int progress = push_acks(p);
    if (p->stop) break;
    progress |= push_read(p, pipefd);
    progress |= push_send(p);
    if (!progress) break;
  }
  if (p->fin && p->acked == p->end) p->stop = 1; /* everything acknowledged */
}

/* Under mu: PUSH_DONE's piece, the bytes from max(acknowledged, lend_at) to the ring's end. */
static delivery_t *push_done(push_t *p) {
  delivery_t *d = calloc(1, sizeof *d);
  if (!d) return NULL;
  uint64_t from = p->acked > p->lend_at ? p->acked : p->lend_at, tail = p->base + p->len;
  size_t k = (size_t)(tail - from);
  if (k) {
    d->buf = malloc(k);
    if (!d->buf) {
      free(d);
      return NULL;
    }
    size_t pos = (p->head + (size_t)(from - p->base)) % p->cap, first = k < p->cap - pos ? k : p->cap - pos;
    memcpy(d->buf, p->ring + pos, first);
    memcpy(d->buf + first, p->ring, k - first);
  }
  d->len = k;
  d->kind = PUSH_DONE;
  d->off = p->acked;
  d->tail = tail;
  return d;
}

/* Under mu: a pushing source's turn: the socket and the pipe, then what JavaScript must hear. */
static void push_service(src_t *s) {
  push_t *p = s->push;
  if (!p->stop && !p->asked_stop) {
    pthread_mutex_unlock(&mu);
    push_io(p, s->fd);
    pthread_mutex_lock(&mu);
  }
  if (p->asked_stop) p->stop = 1;
  if (!s->inflight) {
    uint64_t upto = p->acked < p->lend_at ? p->acked : p->lend_at;
    delivery_t *d = NULL;
    if (p->fin && !p->ended_posted) {
      if ((d = calloc(1, sizeof *d))) {
        d->kind = PUSH_ENDED;
        d->off = p->end;
        p->ended_posted = 1;
      }
    } else if (p->stop) {
      /* Without memory for it, the next wake-up tries again (the socket and the pipe are out of the set). */
      if ((d = push_done(p))) {
        d->s = s;
        push_free(s);
        queue(s, d);
        return;
      }
    } else if (upto > p->reported) {
      if ((d = calloc(1, sizeof *d))) {
        d->kind = PUSH_ACK;
        d->off = upto;
        p->reported = upto;
      }
    }
    if (d) {
      d->s = s;
      queue(s, d);
    }
  }
  int want_pipe = !p->stop && !p->eof && p->len < p->cap;
  if (want_pipe != s->watched) {
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = s };
    epoll_ctl(epfd, want_pipe ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, s->fd, &ev);
    s->watched = want_pipe;
  }
  /* Level-triggered: the socket wakes this thread while there is something to send and room. */
  uint32_t want = p->stop ? 0 : EPOLLIN | (p->sent < p->base + p->len ? EPOLLOUT : 0);
  if (want != (uint32_t)p->watched) {
    struct epoll_event ev = { .events = want, .data.ptr = (void *)((uintptr_t)s | SOCK_TAG) };
    epoll_ctl(epfd, !want ? EPOLL_CTL_DEL : p->watched ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, p->fd, &ev);
    p->watched = (int)want;
  }
}

/* Under mu: reads what s has (once), hands over a piece if JavaScript is free, and watches the
 * pipe only while another read could be made. */
static void service(src_t *s, int readable) {
  if (s->stopping) {
    push_free(s);
    close_src(s);
    return;
  }
  if (s->push) {
    push_service(s);
    return;
  }
  if (readable && !s->paused && !s->lent && !s->eof && s->len < PUMP_CAP) {
    if (!s->buf) s->buf = malloc(PUMP_CAP);
    if (!s->buf) {
      s->eof = 1;
      s->err = ENOMEM;
    } else {
      /* Not under mu: only this thread touches buf, len and fd, and s is not freed while its
       * fd is open; JavaScript's pause, resume and stop need not wait for the copy. */
      s->reading = 1;
      pthread_mutex_unlock(&mu);
      ssize_t n = read(s->fd, s->buf + s->len, PUMP_CAP - s->len);
      int e = errno;
      pthread_mutex_lock(&mu);
      s->reading = 0;
      errno = e;
      if (n > 0) s->len += (size_t)n;
      else if (n == 0) s->eof = 1;
      else if (errno != EAGAIN && errno != EINTR) { s->eof = 1; s->err = errno; }
    }
  }
  if (!s->inflight && !s->end_posted && (s->len > 0 || s->eof)) {
    delivery_t *d = calloc(1, sizeof *d);
    if (d) {
      d->s = s; d->buf = s->buf; d->len = s->len; d->end = s->eof; d->err = s->err;
      s->buf = NULL;
      s->len = 0;
      if (s->eof) s->end_posted = 1;
      queue(s, d);
    }
  }
  if (s->eof) {
    close_src(s);
    return;
  }
  /* Out of the set, not masked: epoll reports a hang-up even to an empty mask. */
  int want = !s->paused && !s->lent && s->len < PUMP_CAP;
  if (want != s->watched) {
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = s };
    epoll_ctl(epfd, want ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, s->fd, &ev);
    s->watched = want;
  }
}

static void *loop(void *arg) {
  (void)arg;
  struct epoll_event evs[64];
  pthread_setname_np(pthread_self(), "circuit-pump"); /* as `ps -T` and /proc/PID/task show it */
  for (;;) {
    int n = epoll_wait(epfd, evs, 64, -1);
    if (n < 0 && errno != EINTR) break;
    pthread_mutex_lock(&mu);
    /* A pushing source has two descriptors in the set: it is served once per round, and freed
     * only after every event of the round was looked at. */
    src_t *ready = NULL;
    for (int i = 0; i < n; i++) {
      if (evs[i].data.ptr == NULL) {
        uint64_t v;
        ssize_t r = read(wakefd, &v, sizeof v);
        (void)r;
        continue;
      }
      src_t *s = (src_t *)((uintptr_t)evs[i].data.ptr & ~SOCK_TAG);
      if (!s->ready) {
        s->ready = 1;
        s->next_ready = ready;
        ready = s;
      }
    }
    while (ready) {
      src_t *s = ready;
      ready = s->next_ready;
      s->ready = 0;
      service(s, 1);
      maybe_free(s);
    }
    while (dirty) {
      src_t *s = dirty;
      dirty = s->next_dirty;
      s->dirty = 0;
      /* A pipe with bytes waiting gives its event again once service watches it. */
      service(s, 0);
      maybe_free(s);
    }
    pthread_mutex_unlock(&mu);
  }
  return NULL;
}

static void finalize_buf(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

/* d's bytes as a Buffer (copied when small, else handed over); d->buf is JavaScript's or freed. */
static napi_status to_buffer(napi_env env, delivery_t *d, napi_value *out) {
  napi_status st;
  if (d->len < PUMP_COPY_BELOW) {
    void *copy;
    st = napi_create_buffer_copy(env, d->len, d->buf, &copy, out);
    free(d->buf);
  } else {
    st = napi_create_external_buffer(env, d->len, d->buf, finalize_buf, NULL, out);
    if (st != napi_ok) free(d->buf);
  }
  d->buf = NULL;
  return st;
}

/* On JavaScript's thread: dispatch the piece (and the end), then let the thread go on. */
static void call_js(napi_env env, napi_value dispatch, void *ctx, void *data) {
  (void)ctx;
  delivery_t *d = data;
  if (env && dispatch && d->kind) {
    /* dispatch(id, piece or null, 0, kind, offset, tail) */
    napi_value argv[6], undef;
    napi_get_undefined(env, &undef);
    napi_create_int32(env, d->s->id, &argv[0]);
    if (d->len == 0 || to_buffer(env, d, &argv[1]) != napi_ok) napi_get_null(env, &argv[1]);
    napi_create_int32(env, 0, &argv[2]);
    napi_create_int32(env, d->kind, &argv[3]);
    napi_create_double(env, (double)d->off, &argv[4]);
    napi_create_double(env, (double)d->tail, &argv[5]);
    napi_call_function(env, undef, dispatch, 6, argv, NULL);
  } else if (env && dispatch) {
    napi_value argv[3], undef, buf;
    napi_get_undefined(env, &undef);
    napi_create_int32(env, d->s->id, &argv[0]);
    if (d->len > 0) {
      if (to_buffer(env, d, &buf) == napi_ok) {
        argv[1] = buf;
        napi_call_function(env, undef, dispatch, 2, argv, NULL);
      }
    }
    if (d->end) {
      napi_get_null(env, &argv[1]);
      napi_create_int32(env, d->err, &argv[2]);
      napi_call_function(env, undef, dispatch, 3, argv, NULL);
    }
  }
  free(d->buf); /* what was not handed over */
  pthread_mutex_lock(&mu);
  src_t *s = d->s;
  if (d->end) unlive(env, s);
  s->inflight = 0;
  if (s->end_posted || s->stopping) maybe_free(s);
  else { mark_dirty(s); wake(); }
  pthread_mutex_unlock(&mu);
  free(d);
}

/* The one non-negative integer argument of pumpAdd and of pumpPause/Resume/Stop, and the
 * function's data; throws (usage as the message) and gives 0 when there is none. */
static int one_int(napi_env env, napi_callback_info info, int32_t *out, void **data, const char *usage) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, data);
  if (argc < 1 || !fdtake_int_arg(env, argv[0], out) || *out < 0) {
    napi_throw_type_error(env, "EINVAL", usage);
    return 0;
  }
  return 1;
}

static napi_value output_pipe(napi_env env, napi_callback_info info) {
  (void)info;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) return fdtake_throw_errno(env, "pipe2", errno);
  int fl = fcntl(fds[0], F_GETFL);
  if (fl < 0 || fcntl(fds[0], F_SETFL, fl | O_NONBLOCK) < 0) {
    int e = errno;
    close(fds[0]);
    close(fds[1]);
    return fdtake_throw_errno(env, "fcntl", e);
  }
  napi_value arr, v;
  napi_create_array_with_length(env, 2, &arr);
  for (uint32_t i = 0; i < 2; i++) {
    napi_create_int32(env, fds[i], &v);
    napi_set_element(env, arr, i, v);
  }
  return arr;
}

static napi_value pump_init(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], name;
  napi_valuetype t;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_typeof(env, argv[0], &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, "EINVAL", "pumpInit(dispatch): a function");
    return NULL;
  }
  if (started) {
    napi_throw_error(env, "EALREADY", "pumpInit: the pump is already started");
    return NULL;
  }
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) return fdtake_throw_errno(env, "epoll_create1", errno);
  wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wakefd < 0) {
    int e = errno;
    close(epfd);
    return fdtake_throw_errno(env, "eventfd", e);
  }
  struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
  epoll_ctl(epfd, EPOLL_CTL_ADD, wakefd, &ev);
  napi_create_string_utf8(env, "circuit output pump", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[0], NULL, name, 0, 1, NULL, NULL, NULL, call_js, &tsfn) != napi_ok) {
    napi_throw_error(env, "EIO", "pumpInit: cannot create the thread-safe function");
    return NULL;
  }
  /* The pump does not keep the process alive by itself. */
  napi_unref_threadsafe_function(env, tsfn);
  pthread_t th;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  /* The thread takes no signals: they stay JavaScript's thread's to handle (the new thread
   * inherits the mask in force while it is made). */
  sigset_t all_sigs, old;
  sigfillset(&all_sigs);
  pthread_sigmask(SIG_SETMASK, &all_sigs, &old);
  int e = pthread_create(&th, &attr, loop, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  if (e) return fdtake_throw_errno(env, "pthread_create", e);
  started = 1;
  return NULL;
}

static napi_value pump_add(napi_env env, napi_callback_info info) {
  napi_value result;
  int32_t fd;
  if (!one_int(env, info, &fd, NULL, "pumpAdd(fd): a descriptor")) return NULL;
  if (!started) {
    napi_throw_error(env, "EINVAL", "pumpAdd: pumpInit was not called");
    return NULL;
  }
  src_t *s = calloc(1, sizeof *s);
  if (!s) return fdtake_throw_errno(env, "calloc", ENOMEM);
  s->fd = fd;
  s->watched = 1;
  pthread_mutex_lock(&mu);
  s->id = next_id;
  next_id = next_id == INT32_MAX ? 1 : next_id + 1;
  struct epoll_event ev = { .events = EPOLLIN, .data.ptr = s };
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, s->fd, &ev) < 0) {
    int e = errno;
    pthread_mutex_unlock(&mu);
    free(s);
    return fdtake_throw_errno(env, "epoll_ctl", e);
  }
  s->next = all;
  all = s;
  s->live = 1;
  if (live++ == 0) napi_ref_threadsafe_function(env, tsfn);
  pthread_mutex_unlock(&mu);
  napi_create_int32(env, s->id, &result);
  return result;
}

/* pumpPause(id), pumpResume(id), pumpStop(id): what = 0, 1, 2. */
static napi_value pump_set(napi_env env, napi_callback_info info) {
  int32_t id;
  void *what;
  if (!one_int(env, info, &id, &what, "an id from pumpAdd")) return NULL;
  pthread_mutex_lock(&mu);
  src_t *s = find(id);
  if (s && !s->stopping) {
    switch ((intptr_t)what) {
      case 0: s->paused = 1; break;
      case 1: s->paused = 0; break;
      default: s->stopping = 1; unlive(env, s); break;
    }
    mark_dirty(s);
    wake();
  }
  pthread_mutex_unlock(&mu);
  return NULL;
}

/* pumpLend(id): from now on this thread reads nothing more of the pipe (until pumpUnlend), so
 * that another thread may (the mount's FUSE thread, src/fs/ops/direct.ts). The pipe's descriptor
 * once everything read before was handed to JavaScript; -2 while some of it is still on its way
 * (ask again once it came); -1 when the pipe cannot be lent (ended, stopping). */
static napi_value pump_lend(napi_env env, napi_callback_info info) {
  int32_t id;
  if (!one_int(env, info, &id, NULL, "an id from pumpAdd")) return NULL;
  int fd = -1;
  pthread_mutex_lock(&mu);
  src_t *s = find(id);
  if (s && !s->stopping && !s->eof && s->fd >= 0) {
    if (!s->lent) {
      s->lent = 1;
      if (s->watched) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, s->fd, NULL);
        s->watched = 0;
      }
    }
    fd = s->len == 0 && !s->inflight && !s->reading ? s->fd : -2;
  }
  pthread_mutex_unlock(&mu);
  napi_value result;
  napi_create_int32(env, fd, &result);
  return result;
}

/* pumpUnlend(id): the pipe is this thread's again. */
static napi_value pump_unlend(napi_env env, napi_callback_info info) {
  int32_t id;
  if (!one_int(env, info, &id, NULL, "an id from pumpAdd")) return NULL;
  pthread_mutex_lock(&mu);
  src_t *s = find(id);
  if (s && s->lent) {
    s->lent = 0;
    mark_dirty(s);
    wake();
  }
  pthread_mutex_unlock(&mu);
  return NULL;
}

/* pumpPush(id, sock, at, prefix?): see "Pushing" above. 0 once the push is on (the socket is then
 * this thread's, which closes it at the end); -1 when the pipe is not lent with nothing of it on
 * its way (the socket stays the caller's). */
static napi_value pump_push(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], result;
  int32_t id, fd;
  double at;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3 || !fdtake_int_arg(env, argv[0], &id) || !fdtake_int_arg(env, argv[1], &fd) || fd < 0 ||
      napi_get_value_double(env, argv[2], &at) != napi_ok || !(at >= 0 && at <= 9007199254740991.0)) {
    napi_throw_type_error(env, "EINVAL", "pumpPush(id, socket, offset, prefix?): an id from pumpAdd, a descriptor, an offset");
    return NULL;
  }
  void *pre = NULL;
  size_t plen = 0;
  bool isbuf = false;
  if (argc > 3 && napi_is_buffer(env, argv[3], &isbuf) == napi_ok && isbuf) napi_get_buffer_info(env, argv[3], &pre, &plen);
  size_t cap = plen + (1 << 20) > PUSH_RING ? plen + (1 << 20) : PUSH_RING;
  push_t *p = calloc(1, sizeof *p);
  char *ring = malloc(cap);
  if (!p || !ring) {
    free(p);
    free(ring);
    return fdtake_throw_errno(env, "pumpPush", ENOMEM);
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
    int e = errno;
    free(p);
    free(ring);
    return fdtake_throw_errno(env, "fcntl", e);
  }
  if (plen) memcpy(ring, pre, plen);
  p->fd = fd;
  p->ring = ring;
  p->cap = cap;
  p->len = plen;
  p->base = p->sent = p->acked = p->reported = (uint64_t)at;
  p->lend_at = (uint64_t)at + plen;
  int ok = 0;
  pthread_mutex_lock(&mu);
  src_t *s = find(id);
  if (s && !s->stopping && s->lent && !s->push && !s->eof && s->fd >= 0 && s->len == 0 && !s->inflight && !s->reading) {
    p->s = s;
    s->push = p;
    ok = 1;
    mark_dirty(s);
    wake();
  }
  pthread_mutex_unlock(&mu);
  if (!ok) {
    free(ring);
    free(p);
  }
  napi_create_int32(env, ok ? 0 : -1, &result);
  return result;
}

/* pumpPushStop(id): the push ends; PUSH_DONE hands back what was not acknowledged. */
static napi_value pump_push_stop(napi_env env, napi_callback_info info) {
  int32_t id;
  if (!one_int(env, info, &id, NULL, "an id from pumpAdd")) return NULL;
  pthread_mutex_lock(&mu);
  src_t *s = find(id);
  if (s && s->push && !s->push->asked_stop) {
    s->push->asked_stop = 1;
    mark_dirty(s);
    wake();
  }
  pthread_mutex_unlock(&mu);
  return NULL;
}

void pump_register(napi_env env, napi_value exports) {
  static const struct { const char *name; napi_callback cb; intptr_t data; } fns[] = {
    { "outputPipe", output_pipe, 0 }, { "pumpInit", pump_init, 0 }, { "pumpAdd", pump_add, 0 },
    { "pumpPause", pump_set, 0 }, { "pumpResume", pump_set, 1 }, { "pumpStop", pump_set, 2 },
    { "pumpLend", pump_lend, 0 }, { "pumpUnlend", pump_unlend, 0 },
    { "pumpPush", pump_push, 0 }, { "pumpPushStop", pump_push_stop, 0 },
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value f;
    napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].cb, (void *)fns[i].data, &f);
    napi_set_named_property(env, exports, fns[i].name, f);
  }
}
