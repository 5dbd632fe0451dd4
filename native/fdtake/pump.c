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
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <node_api.h>

#define PUMP_CAP (256 * 1024)
/* A piece smaller than this is copied into a Buffer of its size; a larger one is handed over. */
#define PUMP_COPY_BELOW (32 * 1024)

napi_value fdtake_throw_errno(napi_env env, const char *syscall, int e); /* fdtake.c */
int fdtake_int_arg(napi_env env, napi_value v, int32_t *out);             /* fdtake.c */

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
  struct src *next, *next_dirty;
} src_t;

typedef struct delivery {
  src_t *s;            /* kept until this delivery has run */
  char *buf;
  size_t len;
  int end;             /* 1: the end follows the bytes */
  int err;
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

/* Under mu: reads what s has (once), hands over a piece if JavaScript is free, and watches the
 * pipe only while another read could be made. */
static void service(src_t *s, int readable) {
  if (s->stopping) {
    close_src(s);
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
    delivery_t *d = malloc(sizeof *d);
    if (d) {
      d->s = s; d->buf = s->buf; d->len = s->len; d->end = s->eof; d->err = s->err;
      s->buf = NULL;
      s->len = 0;
      s->inflight = 1;
      if (s->eof) s->end_posted = 1;
      if (napi_call_threadsafe_function(tsfn, d, napi_tsfn_nonblocking) != napi_ok) {
        /* The environment is going away: nobody is left to read it. */
        s->inflight = 0;
        free(d->buf);
        free(d);
      }
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
    for (int i = 0; i < n; i++) {
      if (evs[i].data.ptr == NULL) {
        uint64_t v;
        ssize_t r = read(wakefd, &v, sizeof v);
        (void)r;
        continue;
      }
      src_t *s = evs[i].data.ptr;
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

/* On JavaScript's thread: dispatch the piece (and the end), then let the thread go on. */
static void call_js(napi_env env, napi_value dispatch, void *ctx, void *data) {
  (void)ctx;
  delivery_t *d = data;
  if (env && dispatch) {
    napi_value argv[3], undef, buf;
    napi_get_undefined(env, &undef);
    napi_create_int32(env, d->s->id, &argv[0]);
    if (d->len > 0) {
      napi_status st;
      if (d->len < PUMP_COPY_BELOW) {
        void *copy;
        st = napi_create_buffer_copy(env, d->len, d->buf, &copy, &buf);
        free(d->buf);
      } else {
        st = napi_create_external_buffer(env, d->len, d->buf, finalize_buf, NULL, &buf);
        if (st != napi_ok) free(d->buf);
      }
      d->buf = NULL;
      if (st == napi_ok) {
        argv[1] = buf;
        napi_call_function(env, undef, dispatch, 2, argv, NULL);
      }
    } else {
      free(d->buf);
    }
    if (d->end) {
      napi_get_null(env, &argv[1]);
      napi_create_int32(env, d->err, &argv[2]);
      napi_call_function(env, undef, dispatch, 3, argv, NULL);
    }
  } else {
    free(d->buf);
  }
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

void pump_register(napi_env env, napi_value exports) {
  static const struct { const char *name; napi_callback cb; intptr_t data; } fns[] = {
    { "outputPipe", output_pipe, 0 }, { "pumpInit", pump_init, 0 }, { "pumpAdd", pump_add, 0 },
    { "pumpPause", pump_set, 0 }, { "pumpResume", pump_set, 1 }, { "pumpStop", pump_set, 2 },
    { "pumpLend", pump_lend, 0 }, { "pumpUnlend", pump_unlend, 0 },
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value f;
    napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].cb, (void *)fns[i].data, &f);
    napi_set_named_property(env, exports, fns[i].name, f);
  }
}
