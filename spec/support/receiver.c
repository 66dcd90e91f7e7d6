/*
 * receiver: a loopback HTTP / SMTP server for luaflow's notifier specs.
 *
 *   receiver --proto http|smtp [--tls none|starttls|implicit]
 *            [--cert FILE --key FILE]
 *            [--mode MODE] [--log FILE] [--parallel yes]
 *
 * Modes: ok, status:NNN (http), slow:SECONDS, never, close, reject (smtp:
 * RCPT TO answered 550), and hostile peers for the error texts of clients:
 * header-line:N (http: a 200 answer with one header line of N bytes),
 * repeat-header:N (http: the same header N times), fold-header:N (http: one
 * header continued on N obs-folded lines), auth-echo:plain|login (smtp:
 * offers only that mechanism and answers the credentials with a 535 that
 * echoes the base64 lines it got), fail-first:N (http: the first N requests
 * are answered 503 with Retry-After: 0, the rest 200; smtp: the first N
 * RCPT TO are answered 451), retry-after:SECONDS (http: always 503 with that
 * Retry-After).
 *
 * It binds 127.0.0.1 on an ephemeral port, prints "PORT <n>" on stdout and
 * serves one connection at a time, appending one JSON line per HTTP request
 * or accepted e-mail to the log (stdout without --log). It exits on SIGTERM,
 * SIGINT, or when its stdin reaches EOF: the spec that started it keeps a
 * pipe to our stdin, so a spec that dies never leaves a server behind.
 *
 * Every socket is non-blocking and every wait goes through wait_fd(), which
 * also watches stdin and has a timeout, so no client can wedge the program.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

enum proto { PROTO_HTTP, PROTO_SMTP };
enum tls_kind { TLS_NONE, TLS_STARTTLS, TLS_IMPLICIT };
enum mode {
  MODE_OK,
  MODE_STATUS,
  MODE_SLOW,
  MODE_NEVER,
  MODE_CLOSE,
  MODE_REJECT,
  MODE_HEADER_LINE,
  MODE_REPEAT_HEADER,
  MODE_FOLD_HEADER,
  MODE_AUTH_ECHO,
  MODE_FAIL_FIRST,
  MODE_RETRY_AFTER
};

#define IDLE_MS 10000        /* a client silent this long is dropped */
#define MAX_LINE 65536       /* longest request/header/command line */
#define MAX_BODY (64u << 20) /* largest HTTP body or e-mail we keep */
#define MAX_HEADERS 200
#define MAX_RCPT 100
#define SMTP_HOST "receiver.luaflow"

static struct {
  enum proto proto;
  enum tls_kind tls;
  enum mode mode;
  int status;      /* status:NNN */
  double slow;     /* slow:SECONDS */
  long count;      /* header-line, repeat-header, fold-header, fail-first */
  bool auth_plain; /* auth-echo:plain (else login) */
  const char *cert, *key, *log_path;
  const char *retry_after; /* retry-after:SECONDS */
  bool parallel;           /* --parallel yes: a process per connection (benchmarks) */
} cfg = {PROTO_HTTP, TLS_NONE, MODE_OK, 200, 0.0, 0, false, NULL, NULL, NULL, NULL, false};

static volatile sig_atomic_t g_stop; /* set by signals and stdin EOF */
static long g_failed;                /* fail-first: answers failed so far */
static bool g_watch_stdin = true;
static int g_log_fd = STDOUT_FILENO;
static SSL_CTX *g_ctx;

/* ---------------------------------------------------------------- utils */

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("receiver: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(2);
}

static void *xrealloc(void *p, size_t n) {
  p = realloc(p, n ? n : 1);
  if (!p) die("out of memory");
  return p;
}

static char *xstrndup(const char *s, size_t n) {
  char *d = xrealloc(NULL, n + 1);
  if (n) memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A growable byte string, always NUL-terminated once it holds anything. */
struct buf {
  char *p;
  size_t len, cap;
};

static void buf_put(struct buf *b, const void *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
      cap *= 2;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
  }
  if (n) memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void buf_puts(struct buf *b, const char *s) {
  buf_put(b, s, strlen(s));
}

static void buf_free(struct buf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

/* Appends s as a JSON string literal. Bytes >= 0x80 pass through untouched,
 * so UTF-8 text stays UTF-8; every control character is escaped. */
static void buf_json(struct buf *b, const char *s, size_t n) {
  buf_put(b, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    char esc[8];
    switch (ch) {
    case '"':
      buf_puts(b, "\\\"");
      break;
    case '\\':
      buf_puts(b, "\\\\");
      break;
    case '\n':
      buf_puts(b, "\\n");
      break;
    case '\r':
      buf_puts(b, "\\r");
      break;
    case '\t':
      buf_puts(b, "\\t");
      break;
    case '\b':
      buf_puts(b, "\\b");
      break;
    case '\f':
      buf_puts(b, "\\f");
      break;
    default:
      if (ch < 0x20 || ch == 0x7f) {
        snprintf(esc, sizeof esc, "\\u%04x", ch);
        buf_puts(b, esc);
      } else {
        buf_put(b, &ch, 1);
      }
    }
  }
  buf_put(b, "\"", 1);
}

static void buf_json_or_null(struct buf *b, const char *s) {
  if (s)
    buf_json(b, s, strlen(s));
  else
    buf_puts(b, "null");
}

/* Appends one record (plus newline) to the log with write(2), so a reader
 * polling the file sees whole lines as soon as we answer. */
static void log_line(struct buf *line) {
  buf_put(line, "\n", 1);
  size_t off = 0;
  while (off < line->len) {
    ssize_t n = write(g_log_fd, line->p + off, line->len - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      perror("receiver: log");
      return;
    }
    off += (size_t)n;
  }
}

/* ------------------------------------------------------------- waiting */

/* The spec closed our stdin (or it is unusable): time to go. */
static bool stdin_gone(void) {
  char scratch[256];
  ssize_t n = read(STDIN_FILENO, scratch, sizeof scratch);
  if (n > 0) return false; /* input is ignored; only EOF matters */
  return n == 0 || (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* Waits until fd (when >= 0) is ready for `events`, for at most timeout_ms
 * (-1: no limit). Returns 1 when ready, 0 on timeout, -1 when the program
 * must stop. Polls in short slices so a signal that lands just before
 * poll() is still seen quickly. */
static int wait_fd(int fd, short events, int timeout_ms) {
  long long deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
  for (;;) {
    if (g_stop) return -1;
    int slice = 250;
    if (deadline >= 0) {
      long long left = deadline - now_ms();
      if (left <= 0) return 0;
      if (left < slice) slice = (int)left;
    }
    struct pollfd p[2];
    int n = 0, conn_i = -1, in_i = -1;
    if (fd >= 0) {
      p[n] = (struct pollfd){.fd = fd, .events = events};
      conn_i = n++;
    }
    if (g_watch_stdin) {
      p[n] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN};
      in_i = n++;
    }
    int r = poll(p, (nfds_t)n, slice);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (in_i >= 0 && p[in_i].revents && stdin_gone()) {
      g_stop = 1;
      return -1;
    }
    if (conn_i >= 0 && p[conn_i].revents) return 1;
  }
}

/* Sleeps (slow mode) while still honouring stop requests. */
static bool pause_for(double seconds) {
  double ms = seconds * 1000.0;
  int timeout = ms >= INT_MAX ? INT_MAX : (int)ms;
  return wait_fd(-1, 0, timeout) == 0;
}

/* ---------------------------------------------------------- connections */

/* One client connection; bytes read live in buf[start, len). */
struct conn {
  int fd;
  SSL *ssl;
  bool tls_up; /* handshake done, so a close_notify makes sense */
  char *buf;
  size_t start, len, cap;
};

/* Reads what is available into the buffer: 1 got bytes, 0 peer closed,
 * -1 error, timeout or stop. */
static int conn_fill(struct conn *c, int timeout_ms) {
  if (c->start > 0) {
    memmove(c->buf, c->buf + c->start, c->len - c->start);
    c->len -= c->start;
    c->start = 0;
  }
  if (c->cap - c->len < 4096) {
    c->cap *= 2;
    c->buf = xrealloc(c->buf, c->cap);
  }
  size_t room = c->cap - c->len;
  if (room > 65536) room = 65536;
  for (;;) {
    short want = POLLIN;
    if (c->ssl) {
      ERR_clear_error();
      int r = SSL_read(c->ssl, c->buf + c->len, (int)room);
      if (r > 0) {
        c->len += (size_t)r;
        return 1;
      }
      int e = SSL_get_error(c->ssl, r);
      if (e == SSL_ERROR_ZERO_RETURN) return 0;
      if (e == SSL_ERROR_WANT_WRITE)
        want = POLLOUT;
      else if (e != SSL_ERROR_WANT_READ)
        return -1;
    } else {
      ssize_t r = recv(c->fd, c->buf + c->len, room, 0);
      if (r > 0) {
        c->len += (size_t)r;
        return 1;
      }
      if (r == 0) return 0;
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
    }
    if (wait_fd(c->fd, want, timeout_ms) <= 0) return -1;
  }
}

/* Next line without its CR LF (a bare LF is accepted too), malloc'ed:
 * 1 ok, 0 peer closed first, -1 error or overlong line. */
static int conn_line(struct conn *c, char **out) {
  for (;;) {
    char *start = c->buf + c->start;
    size_t avail = c->len - c->start;
    char *nl = memchr(start, '\n', avail);
    if (nl) {
      size_t n = (size_t)(nl - start), take = n;
      if (take && start[take - 1] == '\r') take--;
      *out = xstrndup(start, take);
      c->start += n + 1;
      return 1;
    }
    if (avail > MAX_LINE) return -1;
    int r = conn_fill(c, IDLE_MS);
    if (r <= 0) return r;
  }
}

/* Appends exactly n bytes to out: 1 ok, else as conn_fill. */
static int conn_bytes(struct conn *c, size_t n, struct buf *out) {
  while (n > 0) {
    size_t avail = c->len - c->start;
    if (avail == 0) {
      int r = conn_fill(c, IDLE_MS);
      if (r <= 0) return r;
      continue;
    }
    size_t take = avail < n ? avail : n;
    buf_put(out, c->buf + c->start, take);
    c->start += take;
    n -= take;
  }
  return 1;
}

static int conn_write(struct conn *c, const char *data, size_t len) {
  size_t off = 0;
  while (off < len) {
    short want = POLLOUT;
    size_t chunk = len - off > (1u << 20) ? (1u << 20) : len - off;
    if (c->ssl) {
      /* A retry after WANT_* repeats the same arguments, as required. */
      ERR_clear_error();
      int r = SSL_write(c->ssl, data + off, (int)chunk);
      if (r > 0) {
        off += (size_t)r;
        continue;
      }
      int e = SSL_get_error(c->ssl, r);
      if (e == SSL_ERROR_WANT_READ)
        want = POLLIN;
      else if (e != SSL_ERROR_WANT_WRITE)
        return -1;
    } else {
      ssize_t r = send(c->fd, data + off, chunk, MSG_NOSIGNAL);
      if (r > 0) {
        off += (size_t)r;
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) return -1;
    }
    if (wait_fd(c->fd, want, IDLE_MS) <= 0) return -1;
  }
  return 0;
}

/* Server side TLS handshake on the connection's socket (SMTPS, HTTPS, or
 * after STARTTLS). A failure is reported and the caller drops the client. */
static int conn_start_tls(struct conn *c) {
  c->ssl = SSL_new(g_ctx);
  if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) goto fail;
  for (;;) {
    ERR_clear_error();
    int r = SSL_accept(c->ssl);
    if (r == 1) {
      c->tls_up = true;
      return 0;
    }
    int e = SSL_get_error(c->ssl, r);
    short want = e == SSL_ERROR_WANT_READ    ? POLLIN
                 : e == SSL_ERROR_WANT_WRITE ? POLLOUT
                                             : 0;
    if (!want) goto fail;
    if (wait_fd(c->fd, want, IDLE_MS) <= 0) return -1;
  }
fail:
  fputs("receiver: TLS handshake failed\n", stderr);
  ERR_print_errors_fp(stderr);
  return -1;
}

/* Keeps the connection open, discarding input, until the client gives up
 * or we must stop ("never" mode). */
static void conn_wait_close(struct conn *c) {
  while (conn_fill(c, -1) > 0)
    c->start = c->len;
}

static void conn_close(struct conn *c) {
  if (c->ssl) {
    if (c->tls_up) SSL_shutdown(c->ssl); /* one try: best effort close_notify */
    SSL_free(c->ssl);
  }
  shutdown(c->fd, SHUT_WR);
  close(c->fd);
  free(c->buf);
}

/* ----------------------------------------------------------------- HTTP */

struct header {
  char *name; /* lower-cased */
  char *value;
};

struct request {
  char *method, *target;
  struct header h[MAX_HEADERS];
  int nh;
  struct buf body;
};

static void request_free(struct request *rq) {
  free(rq->method);
  free(rq->target);
  for (int i = 0; i < rq->nh; i++) {
    free(rq->h[i].name);
    free(rq->h[i].value);
  }
  buf_free(&rq->body);
}

static const char *http_header(const struct request *rq, const char *name) {
  for (int i = 0; i < rq->nh; i++)
    if (strcmp(rq->h[i].name, name) == 0) return rq->h[i].value;
  return NULL;
}

static const char *http_reason(int status) {
  static const struct {
    int status;
    const char *text;
  } reasons[] = {{200, "OK"},
                 {201, "Created"},
                 {204, "No Content"},
                 {400, "Bad Request"},
                 {401, "Unauthorized"},
                 {403, "Forbidden"},
                 {404, "Not Found"},
                 {429, "Too Many Requests"},
                 {500, "Internal Server Error"},
                 {502, "Bad Gateway"},
                 {503, "Service Unavailable"}};
  for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
    if (reasons[i].status == status) return reasons[i].text;
  return "Status";
}

/* Sends a complete answer; Connection: close because we serve one request
 * per connection. X-Receiver lets client specs test header parsing. */
static int http_send(struct conn *c, int status, const char *body) {
  char head[256];
  size_t n = strlen(body);
  int hn =
      snprintf(head, sizeof head,
               "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
               "Connection: close\r\nX-Receiver: luaflow\r\n\r\n",
               status, http_reason(status), n);
  if (conn_write(c, head, (size_t)hn) < 0) return -1;
  return conn_write(c, body, n);
}

/* A 503 that asks the client to come back after `seconds`. */
static int http_send_retry_after(struct conn *c, const char *seconds) {
  char head[256];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 503 Service Unavailable\r\nRetry-After: %s\r\n"
                   "Content-Length: 4\r\nConnection: close\r\n\r\nbusy",
                   seconds);
  return conn_write(c, head, (size_t)n);
}

/* The answers of the header modes: a 200 whose headers are too long, too
 * many or folded, built as one block. */
static int http_send_headers(struct conn *c) {
  struct buf b = {0};
  buf_puts(&b, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n");
  if (cfg.mode == MODE_HEADER_LINE) {
    buf_puts(&b, "X-Big: ");
    for (long i = 0; i < cfg.count; i++)
      buf_put(&b, "a", 1);
    buf_puts(&b, "\r\n");
  } else if (cfg.mode == MODE_REPEAT_HEADER) {
    for (long i = 0; i < cfg.count; i++)
      buf_puts(&b, "X-Rep: v\r\n");
  } else {
    buf_puts(&b, "X-Fold: start\r\n");
    for (long i = 0; i < cfg.count; i++)
      buf_puts(&b, " \tmore\r\n");
  }
  buf_puts(&b, "X-Receiver: luaflow\r\n\r\nok");
  int r = conn_write(c, b.p, b.len);
  buf_free(&b);
  return r;
}

/* "METHOD SP target SP HTTP/1.x"; empty lines before it are skipped
 * as RFC 9112 allows. 1 ok, 0 closed, -1 error. */
static int http_request_line(struct conn *c, struct request *rq) {
  char *line = NULL;
  for (int tries = 0; tries < 4; tries++) {
    int r = conn_line(c, &line);
    if (r <= 0) return r;
    if (*line) break;
    free(line);
    line = NULL;
  }
  if (!line) return -1;
  char *sp1 = strchr(line, ' ');
  char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
  bool ok =
      sp1 && sp2 && sp1 > line && sp2 > sp1 + 1 && strncmp(sp2 + 1, "HTTP/1.", 7) == 0;
  if (ok) {
    rq->method = xstrndup(line, (size_t)(sp1 - line));
    rq->target = xstrndup(sp1 + 1, (size_t)(sp2 - sp1 - 1));
  }
  free(line);
  return ok ? 1 : -1;
}

/* Adds one header; a repeated name joins its values with ", " so the JSON
 * object keeps every value (RFC 9110 5.3). */
static void http_add_header(struct request *rq, const char *name, size_t nlen,
                            const char *value) {
  char *lname = xstrndup(name, nlen);
  for (char *p = lname; *p; p++)
    if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
  for (int i = 0; i < rq->nh; i++) {
    if (strcmp(rq->h[i].name, lname) == 0) {
      size_t old = strlen(rq->h[i].value), add = strlen(value);
      rq->h[i].value = xrealloc(rq->h[i].value, old + add + 3);
      memcpy(rq->h[i].value + old, ", ", 2);
      memcpy(rq->h[i].value + old + 2, value, add + 1);
      free(lname);
      return;
    }
  }
  if (rq->nh == MAX_HEADERS) {
    free(lname);
    return;
  }
  rq->h[rq->nh].name = lname;
  rq->h[rq->nh].value = xstrndup(value, strlen(value));
  rq->nh++;
}

/* Header lines up to the empty one: 1 ok, -1 malformed or lost client. */
static int http_headers(struct conn *c, struct request *rq) {
  for (;;) {
    char *line;
    if (conn_line(c, &line) <= 0) return -1;
    if (*line == '\0') {
      free(line);
      return 1;
    }
    char *colon = strchr(line, ':');
    if (!colon || colon == line) {
      free(line);
      return -1;
    }
    char *v = colon + 1, *end = line + strlen(line);
    while (*v == ' ' || *v == '\t')
      v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
      *--end = '\0';
    http_add_header(rq, line, (size_t)(colon - line), v);
    free(line);
  }
}

/* Transfer-Encoding: chunked: hex size lines, data, CRLF, ending with a
 * zero-size chunk and optional trailers (ignored). */
static int http_body_chunked(struct conn *c, struct request *rq) {
  for (;;) {
    char *line, *end;
    if (conn_line(c, &line) <= 0) return -1;
    unsigned long long size = strtoull(line, &end, 16);
    bool ok = end != line && (*end == '\0' || *end == ';' || *end == ' ' || *end == '\t');
    free(line);
    if (!ok || size > MAX_BODY || rq->body.len + size > MAX_BODY) return -1;
    if (size == 0) break;
    if (conn_bytes(c, (size_t)size, &rq->body) <= 0) return -1;
    if (conn_line(c, &line) <= 0) return -1;
    ok = *line == '\0';
    free(line);
    if (!ok) return -1;
  }
  for (;;) { /* trailer section */
    char *line;
    if (conn_line(c, &line) <= 0) return -1;
    bool last = *line == '\0';
    free(line);
    if (last) return 1;
  }
}

static int http_body(struct conn *c, struct request *rq) {
  const char *te = http_header(rq, "transfer-encoding");
  const char *cl = http_header(rq, "content-length");
  const char *expect = http_header(rq, "expect");
  bool chunked = te && strcasestr(te, "chunked");
  unsigned long long len = 0;
  if (!chunked && cl) {
    char *end;
    len = strtoull(cl, &end, 10);
    if (end == cl || *end || *cl == '-' || len > MAX_BODY) return -1;
  }
  /* libcurl waits (1 s) for this before large uploads; answer at once. */
  if (expect && strcasecmp(expect, "100-continue") == 0 && (chunked || len > 0))
    if (conn_write(c, "HTTP/1.1 100 Continue\r\n\r\n", 25) < 0) return -1;
  if (chunked) return http_body_chunked(c, rq);
  buf_put(&rq->body, "", 0); /* an empty body is "" in the log */
  return len ? conn_bytes(c, (size_t)len, &rq->body) : 1;
}

static void http_log(const struct request *rq) {
  struct buf b = {0};
  buf_puts(&b, "{\"method\":");
  buf_json(&b, rq->method, strlen(rq->method));
  buf_puts(&b, ",\"path\":");
  buf_json(&b, rq->target, strlen(rq->target));
  buf_puts(&b, ",\"headers\":{");
  for (int i = 0; i < rq->nh; i++) {
    if (i) buf_puts(&b, ",");
    buf_json(&b, rq->h[i].name, strlen(rq->h[i].name));
    buf_puts(&b, ":");
    buf_json(&b, rq->h[i].value, strlen(rq->h[i].value));
  }
  buf_puts(&b, "},\"body\":");
  buf_json(&b, rq->body.p, rq->body.len);
  buf_puts(&b, "}");
  log_line(&b);
  buf_free(&b);
}

/* One request per connection. It is logged before we answer, so once a
 * client has its answer (or gave up) the spec can already read the record. */
static void http_session(struct conn *c) {
  struct request rq = {0};
  int r = http_request_line(c, &rq);
  if (r == 0) goto out;
  if (r < 0 || http_headers(c, &rq) < 0 || http_body(c, &rq) < 0) {
    http_send(c, 400, "bad request");
    goto out;
  }
  http_log(&rq);
  switch (cfg.mode) {
  case MODE_STATUS:
    http_send(c, cfg.status, "error");
    break;
  case MODE_SLOW:
    if (pause_for(cfg.slow)) http_send(c, 200, "ok");
    break;
  case MODE_NEVER:
    conn_wait_close(c);
    break;
  case MODE_CLOSE:
    break;
  case MODE_HEADER_LINE:
  case MODE_REPEAT_HEADER:
  case MODE_FOLD_HEADER:
    http_send_headers(c);
    break;
  case MODE_FAIL_FIRST:
    if (g_failed < cfg.count) {
      g_failed++;
      http_send_retry_after(c, "0");
    } else
      http_send(c, 200, "ok");
    break;
  case MODE_RETRY_AFTER:
    http_send_retry_after(c, cfg.retry_after);
    break;
  default:
    http_send(c, 200, "ok");
  }
out:
  request_free(&rq);
}

/* ----------------------------------------------------------------- SMTP */

struct smtp {
  struct conn *c;
  bool tls;          /* the session runs over TLS now */
  bool greeted;      /* EHLO/HELO seen since the start or STARTTLS */
  char *user, *pass; /* from AUTH; NULL before */
  char *from;        /* MAIL FROM; NULL outside a transaction */
  char *to[MAX_RCPT];
  int nto;
};

static int smtp_reply(struct smtp *s, const char *text) {
  struct buf b = {0};
  buf_puts(&b, text);
  buf_puts(&b, "\r\n");
  int r = conn_write(s->c, b.p, b.len);
  buf_free(&b);
  return r;
}

/* Ends the mail transaction (RSET, after DATA, EHLO, STARTTLS). */
static void smtp_reset(struct smtp *s) {
  free(s->from);
  s->from = NULL;
  for (int i = 0; i < s->nto; i++)
    free(s->to[i]);
  s->nto = 0;
}

static void smtp_forget_auth(struct smtp *s) {
  free(s->user);
  free(s->pass);
  s->user = s->pass = NULL;
}

static int b64_value(int ch) {
  if (ch >= 'A' && ch <= 'Z') return ch - 'A';
  if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
  if (ch >= '0' && ch <= '9') return ch - '0' + 52;
  if (ch == '+') return 62;
  if (ch == '/') return 63;
  return -1;
}

/* Decodes base64 (padding optional); NULL when the text is not base64.
 * The result is NUL-terminated; *outlen excludes the terminator. */
static char *b64_decode(const char *in, size_t *outlen) {
  size_t n = 0, len = strlen(in);
  char *out = xrealloc(NULL, len + 1);
  unsigned acc = 0;
  int bits = 0;
  size_t i = 0;
  for (; i < len && in[i] != '='; i++) {
    int v = b64_value((unsigned char)in[i]);
    if (v < 0) {
      free(out);
      return NULL;
    }
    acc = ((acc << 6) | (unsigned)v) & 0xffffffu;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (char)((acc >> bits) & 0xff);
    }
  }
  for (; i < len; i++)
    if (in[i] != '=') {
      free(out);
      return NULL;
    }
  out[n] = '\0';
  *outlen = n;
  return out;
}

/* Reads one AUTH continuation line after a 334 prompt, base64-decoded.
 * NULL (after answering) when the client cancels or sends garbage. */
static char *smtp_auth_read(struct smtp *s, const char *prompt, size_t *len, int *err) {
  char *line;
  *err = 0;
  if (smtp_reply(s, prompt) < 0 || conn_line(s->c, &line) <= 0) {
    *err = -1;
    return NULL;
  }
  char *dec = strcmp(line, "*") ? b64_decode(line, len) : NULL;
  if (!dec)
    *err = smtp_reply(s, strcmp(line, "*") ? "501 5.5.2 Cannot decode response"
                                           : "501 5.7.0 Authentication cancelled");
  free(line);
  return dec;
}

/* AUTH PLAIN: base64("authzid\0user\0password"), as initial response or
 * after an empty 334 prompt. */
static int smtp_auth_plain(struct smtp *s, const char *initial) {
  size_t len = 0;
  int err = 0;
  char *dec = NULL;
  if (*initial) {
    dec = b64_decode(strcmp(initial, "=") ? initial : "", &len);
    if (!dec) return smtp_reply(s, "501 5.5.2 Cannot decode response");
  } else if (!(dec = smtp_auth_read(s, "334 ", &len, &err))) {
    return err;
  }
  char *user = memchr(dec, '\0', len);
  char *pass = user ? memchr(user + 1, '\0', len - (size_t)(user + 1 - dec)) : NULL;
  if (!pass) {
    free(dec);
    return smtp_reply(s, "501 5.5.2 Malformed PLAIN response");
  }
  s->user = xstrndup(user + 1, (size_t)(pass - user - 1));
  s->pass = xstrndup(pass + 1, len - (size_t)(pass + 1 - dec));
  free(dec);
  return smtp_reply(s, "235 2.7.0 Authentication successful");
}

/* AUTH LOGIN: "Username:" and "Password:" prompts, each answered in base64
 * (the username may come as initial response). */
static int smtp_auth_login(struct smtp *s, const char *initial) {
  size_t len;
  int err = 0;
  char *user = *initial ? b64_decode(initial, &len)
                        : smtp_auth_read(s, "334 VXNlcm5hbWU6", &len, &err);
  if (!user) return *initial ? smtp_reply(s, "501 5.5.2 Cannot decode response") : err;
  char *pass = smtp_auth_read(s, "334 UGFzc3dvcmQ6", &len, &err);
  if (!pass) {
    free(user);
    return err;
  }
  s->user = user;
  s->pass = pass;
  return smtp_reply(s, "235 2.7.0 Authentication successful");
}

/* With --tls starttls, like most submission servers, credentials and mail
 * are refused until the session is encrypted. */
static bool smtp_needs_tls(struct smtp *s) {
  return cfg.tls == TLS_STARTTLS && !s->tls;
}

/* auth-echo: reads the credentials as the client sends them and refuses
 * them with a 535 that quotes them, as some servers do. */
static int smtp_auth_echo(struct smtp *s, const char *initial) {
  struct buf reply = {0};
  buf_puts(&reply, "535 5.7.8 Authentication failed for");
  for (int i = 0; i < (cfg.auth_plain ? 1 : 2); i++) {
    char *line = NULL;
    if (i == 0 && *initial) {
      line = xstrndup(initial, strlen(initial));
    } else {
      const char *prompt =
          cfg.auth_plain ? "334 " : (i == 0 ? "334 VXNlcm5hbWU6" : "334 UGFzc3dvcmQ6");
      if (smtp_reply(s, prompt) < 0 || conn_line(s->c, &line) <= 0) {
        buf_free(&reply);
        return -1;
      }
    }
    buf_puts(&reply, " ");
    buf_puts(&reply, line);
    free(line);
  }
  int r = smtp_reply(s, reply.p);
  buf_free(&reply);
  return r;
}

static int smtp_auth(struct smtp *s, const char *arg) {
  if (smtp_needs_tls(s))
    return smtp_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
  if (s->user) return smtp_reply(s, "503 5.5.1 Already authenticated");
  size_t mlen = strcspn(arg, " ");
  const char *initial = arg + mlen;
  while (*initial == ' ')
    initial++;
  if (cfg.mode == MODE_AUTH_ECHO) {
    if (mlen == 5 && strncasecmp(arg, cfg.auth_plain ? "PLAIN" : "LOGIN", 5) == 0)
      return smtp_auth_echo(s, initial);
    return smtp_reply(s, "504 5.5.4 Unrecognized authentication type");
  }
  if (mlen == 5 && strncasecmp(arg, "PLAIN", 5) == 0) return smtp_auth_plain(s, initial);
  if (mlen == 5 && strncasecmp(arg, "LOGIN", 5) == 0) return smtp_auth_login(s, initial);
  return smtp_reply(s, "504 5.5.4 Unrecognized authentication type");
}

static int smtp_ehlo(struct smtp *s, const char *arg) {
  (void)arg;
  smtp_reset(s);
  s->greeted = true;
  struct buf b = {0};
  buf_puts(&b, "250-" SMTP_HOST "\r\n");
  if (cfg.mode != MODE_AUTH_ECHO)
    buf_puts(&b, "250-AUTH PLAIN LOGIN\r\n");
  else
    buf_puts(&b, cfg.auth_plain ? "250-AUTH PLAIN\r\n" : "250-AUTH LOGIN\r\n");
  if (smtp_needs_tls(s)) buf_puts(&b, "250-STARTTLS\r\n");
  buf_puts(&b, "250-8BITMIME\r\n250 HELP");
  int r = smtp_reply(s, b.p);
  buf_free(&b);
  return r;
}

static int smtp_helo(struct smtp *s, const char *arg) {
  (void)arg;
  smtp_reset(s);
  s->greeted = true;
  return smtp_reply(s, "250 " SMTP_HOST);
}

/* After "220 Ready" the handshake runs on the same socket. Plaintext the
 * client pipelined after STARTTLS is dropped (RFC 3207 section 4.2), and so
 * is everything learnt before: the client must say EHLO again. */
static int smtp_starttls(struct smtp *s, const char *arg) {
  (void)arg;
  if (cfg.tls != TLS_STARTTLS) return smtp_reply(s, "502 5.5.1 STARTTLS not available");
  if (s->tls) return smtp_reply(s, "503 5.5.1 TLS already active");
  if (smtp_reply(s, "220 2.0.0 Ready to start TLS") < 0) return -1;
  s->c->start = s->c->len = 0;
  if (conn_start_tls(s->c) < 0) return -1;
  s->tls = true;
  s->greeted = false;
  smtp_reset(s);
  smtp_forget_auth(s);
  return 0;
}

/* The address inside <...> after "FROM:" / "TO:" (a bare address is taken
 * up to the first space); NULL when the keyword is missing. */
static char *smtp_address(const char *arg, const char *keyword) {
  size_t kl = strlen(keyword);
  if (strncasecmp(arg, keyword, kl) != 0) return NULL;
  arg += kl;
  while (*arg == ' ')
    arg++;
  if (*arg == '<') {
    const char *end = strchr(arg, '>');
    return end ? xstrndup(arg + 1, (size_t)(end - arg - 1)) : NULL;
  }
  return xstrndup(arg, strcspn(arg, " "));
}

static int smtp_mail(struct smtp *s, const char *arg) {
  if (smtp_needs_tls(s))
    return smtp_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
  if (!s->greeted) return smtp_reply(s, "503 5.5.1 Send EHLO first");
  if (s->from) return smtp_reply(s, "503 5.5.1 Nested MAIL command");
  char *from = smtp_address(arg, "FROM:");
  if (!from) return smtp_reply(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
  s->from = from;
  return smtp_reply(s, "250 2.1.0 Ok");
}

static int smtp_rcpt(struct smtp *s, const char *arg) {
  if (!s->from) return smtp_reply(s, "503 5.5.1 Need MAIL command");
  char *to = smtp_address(arg, "TO:");
  if (!to) return smtp_reply(s, "501 5.5.4 Syntax: RCPT TO:<address>");
  if (cfg.mode == MODE_FAIL_FIRST && g_failed < cfg.count) {
    g_failed++;
    free(to);
    return smtp_reply(s, "451 4.3.0 try again later");
  }
  if (cfg.mode == MODE_REJECT || s->nto == MAX_RCPT) {
    free(to);
    return smtp_reply(s, cfg.mode == MODE_REJECT ? "550 5.7.1 rejected"
                                                 : "452 4.5.3 Too many recipients");
  }
  s->to[s->nto++] = to;
  return smtp_reply(s, "250 2.1.5 Ok");
}

static void smtp_log(struct smtp *s, const struct buf *data) {
  struct buf b = {0};
  buf_puts(&b, "{\"from\":");
  buf_json_or_null(&b, s->from);
  buf_puts(&b, ",\"to\":[");
  for (int i = 0; i < s->nto; i++) {
    if (i) buf_puts(&b, ",");
    buf_json_or_null(&b, s->to[i]);
  }
  buf_puts(&b, "],\"username\":");
  buf_json_or_null(&b, s->user);
  buf_puts(&b, ",\"password\":");
  buf_json_or_null(&b, s->pass);
  buf_puts(&b, s->tls ? ",\"tls\":true,\"data\":" : ",\"tls\":false,\"data\":");
  buf_json(&b, data->p ? data->p : "", data->len);
  buf_puts(&b, "}");
  log_line(&b);
  buf_free(&b);
}

/* DATA: lines up to a lone ".", with dot-stuffing undone; the message is
 * kept with CRLF line ends, as sent. */
static int smtp_data(struct smtp *s, const char *arg) {
  (void)arg;
  if (!s->from || s->nto == 0) return smtp_reply(s, "503 5.5.1 No valid recipients");
  if (smtp_reply(s, "354 End data with <CR><LF>.<CR><LF>") < 0) return -1;
  struct buf data = {0};
  bool too_big = false;
  for (;;) {
    char *line;
    if (conn_line(s->c, &line) <= 0) {
      buf_free(&data);
      return -1;
    }
    if (strcmp(line, ".") == 0) {
      free(line);
      break;
    }
    const char *text = line[0] == '.' ? line + 1 : line;
    if (data.len + strlen(text) + 2 > MAX_BODY) too_big = true;
    if (!too_big) {
      buf_puts(&data, text);
      buf_puts(&data, "\r\n");
    }
    free(line);
  }
  if (!too_big) smtp_log(s, &data);
  buf_free(&data);
  smtp_reset(s);
  return smtp_reply(s, too_big ? "552 5.3.4 Message too big" : "250 2.0.0 Ok: queued");
}

static int smtp_rset(struct smtp *s, const char *arg) {
  (void)arg;
  smtp_reset(s);
  return smtp_reply(s, "250 2.0.0 Ok");
}

static int smtp_noop(struct smtp *s, const char *arg) {
  (void)arg;
  return smtp_reply(s, "250 2.0.0 Ok");
}

static int smtp_quit(struct smtp *s, const char *arg) {
  (void)arg;
  smtp_reply(s, "221 2.0.0 Bye");
  return 1; /* ends the session */
}

/* Handlers answer the client and return 0 to go on, 1 to end the session
 * cleanly, -1 when the connection is lost. */
static const struct {
  const char *verb;
  int (*fn)(struct smtp *, const char *);
} smtp_commands[] = {
    {"EHLO", smtp_ehlo}, {"HELO", smtp_helo}, {"STARTTLS", smtp_starttls},
    {"AUTH", smtp_auth}, {"MAIL", smtp_mail}, {"RCPT", smtp_rcpt},
    {"DATA", smtp_data}, {"RSET", smtp_rset}, {"NOOP", smtp_noop},
    {"QUIT", smtp_quit},
};

static void smtp_session(struct conn *c) {
  struct smtp s = {.c = c, .tls = c->ssl != NULL};
  if (cfg.mode == MODE_SLOW && !pause_for(cfg.slow)) return;
  if (cfg.mode == MODE_NEVER) {
    conn_wait_close(c);
    return;
  }
  if (smtp_reply(&s, "220 " SMTP_HOST " ESMTP luaflow receiver") < 0) return;
  for (;;) {
    char *line;
    if (conn_line(c, &line) <= 0) break;
    size_t vlen = strcspn(line, " ");
    const char *arg = line + vlen;
    while (*arg == ' ')
      arg++;
    int r = -2;
    for (size_t i = 0; i < sizeof smtp_commands / sizeof smtp_commands[0]; i++) {
      if (strlen(smtp_commands[i].verb) == vlen &&
          strncasecmp(line, smtp_commands[i].verb, vlen) == 0) {
        r = smtp_commands[i].fn(&s, arg);
        break;
      }
    }
    if (r == -2) r = smtp_reply(&s, "500 5.5.2 Command not recognized");
    free(line);
    if (r != 0) break;
  }
  smtp_reset(&s);
  smtp_forget_auth(&s);
}

/* ----------------------------------------------------------------- main */

static void serve_connection(int fd) {
  struct conn c = {.fd = fd, .cap = 8192};
  c.buf = xrealloc(NULL, c.cap);
  /* SMTP "close": hang up before anything, even a TLS handshake. */
  if (cfg.proto == PROTO_SMTP && cfg.mode == MODE_CLOSE) goto out;
  if (cfg.tls == TLS_IMPLICIT && conn_start_tls(&c) < 0) goto out;
  if (cfg.proto == PROTO_HTTP)
    http_session(&c);
  else
    smtp_session(&c);
out:
  conn_close(&c);
}

static int listen_loopback(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket: %s", strerror(errno));
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t alen = sizeof a;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 16) < 0 ||
      getsockname(fd, (struct sockaddr *)&a, &alen) < 0)
    die("cannot listen on 127.0.0.1: %s", strerror(errno));
  *port = ntohs(a.sin_port);
  return fd;
}

static void tls_init(void) {
  g_ctx = SSL_CTX_new(TLS_server_method());
  if (!g_ctx) die("SSL_CTX_new failed");
  SSL_CTX_set_min_proto_version(g_ctx, TLS1_2_VERSION);
  /* A client that hangs up without close_notify is an ordinary EOF. */
  SSL_CTX_set_options(g_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  if (SSL_CTX_use_certificate_chain_file(g_ctx, cfg.cert) != 1 ||
      SSL_CTX_use_PrivateKey_file(g_ctx, cfg.key, SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(g_ctx) != 1) {
    ERR_print_errors_fp(stderr);
    die("cannot load certificate %s / key %s", cfg.cert, cfg.key);
  }
}

static void on_signal(int sig) {
  (void)sig;
  g_stop = 1;
}

static void usage(FILE *to) {
  fputs("usage: receiver --proto http|smtp [--tls none|starttls|implicit]\n"
        "                [--cert FILE --key FILE]\n"
        "                [--mode ok|status:NNN|slow:SECONDS|never|close|reject|\n"
        "                        header-line:N|repeat-header:N|fold-header:N|\n"
        "                        auth-echo:plain|auth-echo:login|fail-first:N|\n"
        "                        retry-after:SECONDS] [--log FILE]\n"
        "                [--parallel yes]\n",
        to);
}

static void parse_mode(const char *m) {
  char *end;
  if (strcmp(m, "ok") == 0) {
    cfg.mode = MODE_OK;
  } else if (strncmp(m, "status:", 7) == 0) {
    long st = strtol(m + 7, &end, 10);
    if (end == m + 7 || *end || st < 100 || st > 599) die("bad status in --mode %s", m);
    cfg.mode = MODE_STATUS;
    cfg.status = (int)st;
  } else if (strncmp(m, "slow:", 5) == 0) {
    cfg.slow = strtod(m + 5, &end);
    if (end == m + 5 || *end || !(cfg.slow >= 0) || !isfinite(cfg.slow))
      die("bad seconds in --mode %s", m);
    cfg.mode = MODE_SLOW;
  } else if (strcmp(m, "never") == 0) {
    cfg.mode = MODE_NEVER;
  } else if (strcmp(m, "close") == 0) {
    cfg.mode = MODE_CLOSE;
  } else if (strcmp(m, "reject") == 0) {
    cfg.mode = MODE_REJECT;
  } else if (strncmp(m, "header-line:", 12) == 0 ||
             strncmp(m, "repeat-header:", 14) == 0 ||
             strncmp(m, "fold-header:", 12) == 0) {
    const char *n = strchr(m, ':') + 1;
    cfg.count = strtol(n, &end, 10);
    if (end == n || *end || cfg.count < 0 || cfg.count > 10000000)
      die("bad count in --mode %s", m);
    cfg.mode = m[0] == 'h'   ? MODE_HEADER_LINE
               : m[0] == 'r' ? MODE_REPEAT_HEADER
                             : MODE_FOLD_HEADER;
  } else if (strncmp(m, "fail-first:", 11) == 0) {
    cfg.count = strtol(m + 11, &end, 10);
    if (end == m + 11 || *end || cfg.count < 0) die("bad count in --mode %s", m);
    cfg.mode = MODE_FAIL_FIRST;
  } else if (strncmp(m, "retry-after:", 12) == 0) {
    strtod(m + 12, &end);
    if (end == m + 12 || *end) die("bad seconds in --mode %s", m);
    cfg.mode = MODE_RETRY_AFTER;
    cfg.retry_after = m + 12;
  } else if (strcmp(m, "auth-echo:plain") == 0 || strcmp(m, "auth-echo:login") == 0) {
    cfg.mode = MODE_AUTH_ECHO;
    cfg.auth_plain = m[10] == 'p';
  } else {
    die("unknown --mode %s", m);
  }
}

static void parse_args(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *opt = argv[i];
    if (strcmp(opt, "-h") == 0 || strcmp(opt, "--help") == 0) {
      usage(stdout);
      exit(0);
    }
    if (i + 1 >= argc) {
      usage(stderr);
      die("%s needs a value", opt);
    }
    const char *v = argv[++i];
    if (strcmp(opt, "--proto") == 0) {
      if (strcmp(v, "http") && strcmp(v, "smtp")) die("unknown --proto %s", v);
      cfg.proto = strcmp(v, "http") == 0 ? PROTO_HTTP : PROTO_SMTP;
    } else if (strcmp(opt, "--tls") == 0) {
      if (strcmp(v, "none") == 0)
        cfg.tls = TLS_NONE;
      else if (strcmp(v, "starttls") == 0)
        cfg.tls = TLS_STARTTLS;
      else if (strcmp(v, "implicit") == 0)
        cfg.tls = TLS_IMPLICIT;
      else
        die("unknown --tls %s", v);
    } else if (strcmp(opt, "--cert") == 0) {
      cfg.cert = v;
    } else if (strcmp(opt, "--key") == 0) {
      cfg.key = v;
    } else if (strcmp(opt, "--mode") == 0) {
      parse_mode(v);
    } else if (strcmp(opt, "--log") == 0) {
      cfg.log_path = v;
    } else if (strcmp(opt, "--parallel") == 0) {
      cfg.parallel = strcmp(v, "yes") == 0;
    } else {
      usage(stderr);
      die("unknown option %s", opt);
    }
  }
  /* Refuse combinations a spec could only have meant by mistake. */
  if (cfg.proto == PROTO_HTTP && (cfg.tls == TLS_STARTTLS || cfg.mode == MODE_REJECT))
    die("--tls starttls and --mode reject are for --proto smtp");
  if (cfg.proto == PROTO_SMTP &&
      (cfg.mode == MODE_STATUS || cfg.mode == MODE_HEADER_LINE ||
       cfg.mode == MODE_RETRY_AFTER || cfg.mode == MODE_REPEAT_HEADER ||
       cfg.mode == MODE_FOLD_HEADER))
    die("--mode status:NNN and the header modes are for --proto http");
  if (cfg.proto == PROTO_HTTP && cfg.mode == MODE_AUTH_ECHO)
    die("--mode auth-echo is for --proto smtp");
  if (cfg.tls != TLS_NONE && (!cfg.cert || !cfg.key)) die("--tls needs --cert and --key");
}

int main(int argc, char **argv) {
  parse_args(argc, argv);

  struct sigaction sa = {0};
  sa.sa_handler = on_signal; /* no SA_RESTART: poll() must wake up */
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  if (cfg.parallel) signal(SIGCHLD, SIG_IGN); /* children reap themselves */
  if (fcntl(STDIN_FILENO, F_GETFD) < 0)
    g_watch_stdin = false; /* no stdin at all: only signals stop us */

  if (cfg.tls != TLS_NONE) tls_init();
  if (cfg.log_path) {
    g_log_fd = open(cfg.log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (g_log_fd < 0) die("cannot open %s: %s", cfg.log_path, strerror(errno));
  }
  int port;
  int lfd = listen_loopback(&port);
  printf("PORT %d\n", port);
  fflush(stdout);

  while (!g_stop) {
    if (wait_fd(lfd, POLLIN, -1) < 0) break;
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0 && cfg.parallel) { /* each connection in a child of its own */
      pid_t pid = fork();
      if (pid == 0) {
        close(lfd);
        serve_connection(fd);
        _exit(0);
      }
      close(fd);
    } else if (fd >= 0) {
      serve_connection(fd);
    }
  }

  close(lfd);
  if (cfg.log_path) close(g_log_fd);
  SSL_CTX_free(g_ctx);
  return 0;
}
