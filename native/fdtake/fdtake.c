/*
 * fdtake: the two system calls src/node/fdtake.ts needs and Node does not offer. The same
 * add-on carries the output pump (pump.c, src/node/pump.ts), registered below.
 *
 *   takeFd(pid, fd) -> number   a duplicate of descriptor fd of process pid, made with
 *                               pidfd_open(2) and pidfd_getfd(2) (Linux 5.6 and later): it
 *                               shares that descriptor's open file description (offset, flags),
 *                               and is close-on-exec. The kernel allows it only to a caller that
 *                               may ptrace-attach pid (same user and dumpable, or CAP_SYS_PTRACE).
 *   sendNb(fd, buf, off, len) -> number
 *                               send(2) with MSG_DONTWAIT | MSG_NOSIGNAL: one write to a socket
 *                               that never blocks, whatever the description's own O_NONBLOCK
 *                               says (it is shared with other processes and stays as it is).
 *
 * Both throw an Error with `code` (e.g. 'EPERM', 'EAGAIN') and `errno` set, as Node's fs does.
 * Plain node_api.h, no dependencies; built by scripts/build-native.sh at install.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <node_api.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

/* errno's name, for the error's code; the few these calls can give, else "E<number>". */
static const char *errno_name(int e, char *buf, size_t n) {
  switch (e) {
    case EPERM: return "EPERM";
    case ESRCH: return "ESRCH";
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case ENOSYS: return "ENOSYS";
    case EAGAIN: return "EAGAIN";
    case EPIPE: return "EPIPE";
    case ECONNRESET: return "ECONNRESET";
    case ENOTSOCK: return "ENOTSOCK";
    case ENOTCONN: return "ENOTCONN";
    case EINTR: return "EINTR";
    case ENOMEM: return "ENOMEM";
    case ENOBUFS: return "ENOBUFS";
    case EMSGSIZE: return "EMSGSIZE";
    case EACCES: return "EACCES";
  }
  snprintf(buf, n, "E%d", e);
  return buf;
}

/* Throws Error("CODE: text, syscall") with code, errno (negative, as Node's) and syscall; returns NULL. */
napi_value fdtake_throw_errno(napi_env env, const char *syscall, int e) {
  char name[16], msg[160];
  const char *code = errno_name(e, name, sizeof name);
  snprintf(msg, sizeof msg, "%s: %s, %s", code, strerror(e), syscall);
  napi_value m, c, s, err, no;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &c);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &s);
  napi_create_error(env, c, m, &err);
  napi_create_int32(env, -e, &no);
  napi_set_named_property(env, err, "errno", no);
  napi_set_named_property(env, err, "syscall", s);
  napi_throw(env, err);
  return NULL;
}

/* A number argument as an int32 (pump.c uses it too); 0 when it is not one. */
int fdtake_int_arg(napi_env env, napi_value v, int32_t *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return 0;
  return napi_get_value_int32(env, v, out) == napi_ok;
}

static napi_value take_fd(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], result;
  int32_t pid, fd;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || !fdtake_int_arg(env, argv[0], &pid) || !fdtake_int_arg(env, argv[1], &fd) || pid <= 0 || fd < 0) {
    napi_throw_type_error(env, "EINVAL", "takeFd(pid, fd): two non-negative integers");
    return NULL;
  }
  int pidfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
  if (pidfd < 0) return fdtake_throw_errno(env, "pidfd_open", errno);
  int got = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
  int e = errno;
  close(pidfd);
  if (got < 0) return fdtake_throw_errno(env, "pidfd_getfd", e);
  napi_create_int32(env, got, &result);
  return result;
}

static napi_value send_nb(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], result;
  int32_t fd, off, len;
  void *data;
  size_t size;
  bool isbuf = false;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 4 || !fdtake_int_arg(env, argv[0], &fd) || napi_is_buffer(env, argv[1], &isbuf) != napi_ok || !isbuf ||
      !fdtake_int_arg(env, argv[2], &off) || !fdtake_int_arg(env, argv[3], &len) ||
      napi_get_buffer_info(env, argv[1], &data, &size) != napi_ok || fd < 0 || off < 0 || len < 0 ||
      (size_t)off + (size_t)len > size) {
    napi_throw_type_error(env, "EINVAL", "sendNb(fd, buffer, offset, length): a descriptor and a range of the buffer");
    return NULL;
  }
  ssize_t n;
  do n = send(fd, (char *)data + off, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) return fdtake_throw_errno(env, "send", errno == EWOULDBLOCK ? EAGAIN : errno);
  napi_create_int64(env, (int64_t)n, &result);
  return result;
}

/* dupFd(fd) -> a duplicate of fd, close-on-exec: a socket's descriptor kept past its libuv
 * handle (src/node/push.ts hands a data connection's to the output pump and the FUSE thread). */
static napi_value dup_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  int32_t fd;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || !fdtake_int_arg(env, argv[0], &fd) || fd < 0) {
    napi_throw_type_error(env, "EINVAL", "dupFd(fd): a descriptor");
    return NULL;
  }
  int got = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (got < 0) return fdtake_throw_errno(env, "fcntl", errno);
  napi_create_int32(env, got, &result);
  return result;
}

void pump_register(napi_env env, napi_value exports); /* pump.c */

NAPI_MODULE_INIT() {
  napi_value f;
  napi_create_function(env, "takeFd", NAPI_AUTO_LENGTH, take_fd, NULL, &f);
  napi_set_named_property(env, exports, "takeFd", f);
  napi_create_function(env, "sendNb", NAPI_AUTO_LENGTH, send_nb, NULL, &f);
  napi_set_named_property(env, exports, "sendNb", f);
  napi_create_function(env, "dupFd", NAPI_AUTO_LENGTH, dup_fd, NULL, &f);
  napi_set_named_property(env, exports, "dupFd", f);
  pump_register(env, exports);
  return exports;
}
