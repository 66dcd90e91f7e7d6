/* http: HTTP and SMTP on libcurl (see http.h). No Lua here.
 *
 * Each call parses its URL once with the CURLU API and hands that handle to
 * libcurl (CURLOPT_CURLU), so the origin named in errors ("scheme://host:port")
 * is the one libcurl actually used. Everything else in the URL is treated as
 * secret: libcurl's own error text is added only when it holds none of it.
 *
 * The callbacks below only move bytes between libcurl and plain buffers. When
 * a buffer would pass its cap they set a flag and return an error code, and
 * the caller turns the flag into a message after curl_easy_perform returns.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "http.h"
#include "luaflow.h"

#ifndef CURL_WRITEFUNC_ERROR /* libcurl < 7.87: any short count is an error */
#define CURL_WRITEFUNC_ERROR 0
#endif

#define USER_AGENT "luaflow/" LUAFLOW_VERSION

/* {=== Global init ===} */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static CURLcode init_rc = CURLE_FAILED_INIT;

static void global_init(void) {
  init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* curl_global_init on first use; 0 when libcurl is usable. */
static int ensure_init(void) {
  pthread_once(&init_once, global_init);
  return init_rc == CURLE_OK ? 0 : -1;
}

/* When the process ends, or the Lua module is unloaded (lua_close unloads
 * C modules), libcurl's global state (TLS libraries included) is released. */
/* Priority 101: the last destructor, after the sender's (sender.c) has
 * stopped its thread. */
__attribute__((destructor(101))) static void global_cleanup(void) {
  if (init_rc == CURLE_OK) curl_global_cleanup();
  init_rc = CURLE_FAILED_INIT;
}

/* {=== Clients ===} */

struct lf_http_client {
  CURL *h;
};

lf_http_client *lf_http_client_new(void) {
  if (ensure_init() != 0) return NULL;
  lf_http_client *c = malloc(sizeof *c);
  if (c && !(c->h = curl_easy_init())) {
    free(c);
    c = NULL;
  }
  return c;
}

void lf_http_client_free(lf_http_client *c) {
  if (!c) return;
  curl_easy_cleanup(c->h);
  free(c);
}

/* The handle for one transfer: the client's (its options cleared by the
 * previous release), else a new one. */
static CURL *take_handle(lf_http_client *client) {
  return client ? client->h : curl_easy_init();
}

/* After a transfer: a client's handle forgets the options (they point into
 * the caller's frame) and keeps its connections; any other is closed. */
static void release_handle(lf_http_client *client, CURL *c) {
  if (!c) return;
  if (client)
    curl_easy_reset(c);
  else
    curl_easy_cleanup(c);
}

/* {=== Small helpers ===} */

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static long seconds_to_ms(double t, double dflt) {
  if (!(t > 0)) t = dflt; /* also NaN */
  if (t > 1e8) t = 1e8;   /* ~3 years: plenty, and fits a long on every platform */
  long ms = (long)(t * 1000.0);
  if ((double)ms < t * 1000.0) ms++; /* round up: 0.0001 s is 1 ms, not 0 */
  return ms < 1 ? 1 : ms;
}

static int has_line_break(const char *s) {
  return s && strpbrk(s, "\r\n") != NULL;
}

/* Strips trailing line breaks and spaces in place. */
static void chomp(char *s) {
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
    s[--n] = '\0';
}

/* Replaces bytes that are not printable ASCII with '?', in place. */
static void printable(char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e) *s = '?';
}

/* {=== URLs ===} */

/* A parsed URL: the handle libcurl gets, the origin for messages, and the
 * parts that must never appear in one. */
typedef struct {
  CURLU *h;
  char scheme[16];
  char origin[320];
  char *secret[7]; /* path, query, fragment, user, password, options, zoneid */
} url_parts;

static void url_free(url_parts *u) {
  for (size_t i = 0; i < sizeof u->secret / sizeof u->secret[0]; i++) {
    curl_free(u->secret[i]);
    u->secret[i] = NULL;
  }
  curl_url_cleanup(u->h);
  u->h = NULL;
}

/* Parses url. Returns 0, or -1 with why set to "invalid URL (<libcurl's
 * reason>)" or "out of memory": nothing of url itself. */
static int url_parse(const char *url, url_parts *u, char *why, size_t whylen) {
  static const CURLUPart secret_parts[] = {
      CURLUPART_PATH,     CURLUPART_QUERY,   CURLUPART_FRAGMENT, CURLUPART_USER,
      CURLUPART_PASSWORD, CURLUPART_OPTIONS, CURLUPART_ZONEID};
  memset(u, 0, sizeof *u);
  set_err(why, whylen, "invalid URL");
  if (!url) return -1;
  u->h = curl_url();
  if (!u->h) {
    set_err(why, whylen, "out of memory");
    return -1;
  }
  char *scheme = NULL, *host = NULL, *port = NULL;
  int rc = -1;
  CURLUcode uc = curl_url_set(u->h, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
  if (uc != CURLUE_OK) {
    if (uc == CURLUE_OUT_OF_MEMORY)
      set_err(why, whylen, "out of memory");
    else
      set_err(why, whylen, "invalid URL (%s)", curl_url_strerror(uc));
    goto done;
  }
  if (curl_url_get(u->h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) goto done;
  if (curl_url_get(u->h, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host[0]) goto done;
  snprintf(u->scheme, sizeof u->scheme, "%s", scheme);
  for (char *p = u->scheme; *p; p++)
    if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
  if (curl_url_get(u->h, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK)
    snprintf(u->origin, sizeof u->origin, "%s://%s:%s", u->scheme, host, port);
  else
    snprintf(u->origin, sizeof u->origin, "%s://%s", u->scheme, host);
  for (size_t i = 0; i < sizeof secret_parts / sizeof secret_parts[0]; i++)
    if (curl_url_get(u->h, secret_parts[i], &u->secret[i], 0) != CURLUE_OK)
      u->secret[i] = NULL;
  rc = 0;
done:
  curl_free(scheme);
  curl_free(host);
  curl_free(port);
  if (rc != 0) url_free(u);
  return rc;
}

static int scheme_is(const url_parts *u, const char *a, const char *b) {
  return strcmp(u->scheme, a) == 0 || strcmp(u->scheme, b) == 0;
}

/* Whether libcurl's text s may be shown: it holds no secret part of the URL,
 * nor the URL itself, nor any of the extra strings (NULL-terminated). */
static int text_is_safe(const char *s, const url_parts *u, const char *url,
                        const char *const *extra) {
  if (url && url[0] && strstr(s, url)) return 0;
  for (size_t i = 0; i < sizeof u->secret / sizeof u->secret[0]; i++) {
    const char *p = u->secret[i];
    if (p && strlen(p) >= 2 && strstr(s, p)) return 0;
  }
  for (; extra && *extra; extra++)
    if (**extra && strstr(s, *extra)) return 0;
  return 1;
}

int lf_url_origin(const char *url, char *out, size_t outlen) {
  url_parts u;
  char why[128];
  if (url_parse(url, &u, why, sizeof why) != 0) {
    set_err(out, outlen, "invalid URL");
    return -1;
  }
  set_err(out, outlen, "%s", u.origin);
  url_free(&u);
  return 0;
}

/* Formats "<what>: <curl's message> (<errbuf>)" for a failed transfer; just
 * one of the two when the other adds nothing or errbuf is not safe to show. */
static void transfer_error(char *err, size_t errlen, const char *what, CURLcode rc,
                           char *errbuf, const url_parts *u, const char *url,
                           const char *const *extra) {
  const char *msg = curl_easy_strerror(rc);
  if (rc == CURLE_ABORTED_BY_CALLBACK) { /* only the stop callback aborts */
    set_err(err, errlen, "%s: interrupted", what);
    return;
  }
  chomp(errbuf);
  printable(errbuf);
  if (!errbuf[0] || !text_is_safe(errbuf, u, url, extra) || strcmp(errbuf, msg) == 0)
    set_err(err, errlen, "%s: %s", what, msg);
  else if (strstr(errbuf, msg)) /* "Failed to connect to h port 1: Couldn't connect..." */
    set_err(err, errlen, "%s: %s", what, errbuf);
  else
    set_err(err, errlen, "%s: %s (%s)", what, msg, errbuf);
}

/* libcurl calls this at least once a second and after every wake-up (a
 * signal ends its wait): a transfer stops as soon as the caller says so. */
static int xfer_stop(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                     curl_off_t ulnow) {
  (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
  return ((int (*)(void))ud)() ? 1 : 0;
}

static void set_timeouts_and_tls(CURL *c, double timeout, double connect_timeout,
                                 int verify, const char *ca_file, int (*stop)(void)) {
  if (stop) {
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, xfer_stop);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, (void *)stop);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  }
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
                   seconds_to_ms(timeout, LF_HTTP_DEFAULT_TIMEOUT));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                   seconds_to_ms(connect_timeout, LF_HTTP_DEFAULT_CONNECT_TIMEOUT));
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, verify ? 1L : 0L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L);
  if (ca_file) curl_easy_setopt(c, CURLOPT_CAINFO, ca_file);
}

/* {=== Buffers and callbacks ===} */

typedef struct {
  char *data;
  size_t len, cap, max;
  int overflow; /* would have passed max */
  int oom;
  int complete; /* headers: the blank line after the latest block was seen */
} buf;

static int buf_append(buf *b, const char *p, size_t n) {
  if (n > b->max - b->len) {
    b->overflow = 1;
    return -1;
  }
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + n + 1)
      cap = cap > b->max / 2 ? b->max + 1 : cap * 2;
    char *d = realloc(b->data, cap);
    if (!d) {
      b->oom = 1;
      return -1;
    }
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

static size_t body_cb(char *ptr, size_t size, size_t nmemb, void *ud) {
  size_t n = size * nmemb;
  return buf_append(ud, ptr, n) == 0 ? n : CURL_WRITEFUNC_ERROR;
}

/* Keeps the header block of the latest response: a status line starts over,
 * so 1xx interim answers are dropped. */
static size_t header_cb(char *ptr, size_t size, size_t nitems, void *ud) {
  buf *b = ud;
  size_t n = size * nitems;
  if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0) b->len = 0;
  b->complete = (n == 2 && ptr[0] == '\r') || (n == 1 && ptr[0] == '\n');
  return buf_append(b, ptr, n) == 0 ? n : 0;
}

typedef struct {
  const char *data;
  size_t len, pos;
} reader;

static size_t read_cb(char *dst, size_t size, size_t nitems, void *ud) {
  reader *r = ud;
  size_t room = size * nitems, left = r->len - r->pos;
  size_t n = left < room ? left : room;
  if (n) memcpy(dst, r->data + r->pos, n);
  r->pos += n;
  return n;
}

/* {=== HTTP ===} */

void lf_http_request_init(lf_http_request *req) {
  memset(req, 0, sizeof *req);
  req->method = "GET";
  req->timeout = LF_HTTP_DEFAULT_TIMEOUT;
  req->connect_timeout = LF_HTTP_DEFAULT_CONNECT_TIMEOUT;
  req->verify = 1;
}

void lf_http_response_free(lf_http_response *res) {
  for (size_t i = 0; i < res->nheaders; i++) {
    free(res->headers[i].name);
    free(res->headers[i].value);
  }
  free(res->headers);
  free(res->body);
  res->headers = NULL;
  res->nheaders = 0;
  res->body = NULL;
  res->body_len = 0;
}

static char *dup_range(const char *p, size_t n) {
  char *s = malloc(n + 1);
  if (s) {
    memcpy(s, p, n);
    s[n] = '\0';
  }
  return s;
}

static int is_ows(char c) {
  return c == ' ' || c == '\t';
}

/* The line at p: its content [p, *le) without CR LF, and where the next
 * one starts. */
static const char *line_end(const char *p, const char *end, const char **le) {
  const char *eol = memchr(p, '\n', (size_t)(end - p));
  const char *next = eol ? eol + 1 : end;
  *le = eol ? eol : end;
  if (*le > p && (*le)[-1] == '\r') (*le)--;
  return next;
}

/* The content of the obs-folded continuation line at q, without its blanks
 * on either side; returns where the next line starts. */
static const char *continuation(const char *q, const char *end, const char **c,
                                const char **ce) {
  const char *next = line_end(q, end, ce);
  *c = q;
  while (*c < *ce && is_ows(**c))
    (*c)++;
  while (*ce > *c && is_ows((*ce)[-1]))
    (*ce)--;
  return next;
}

/* Appends one header whose first line holds the value [v, ve) and whose
 * obs-folded continuation lines start at cont; each continuation that is not
 * blank is joined with a space (none before the first when the value is
 * empty). Measures, allocates once, copies: linear in the bytes. Returns
 * where the next header starts, or NULL when memory runs out. */
static const char *add_header(lf_http_response *res, size_t *cap, const char *name,
                              size_t name_len, const char *v, const char *ve,
                              const char *cont, const char *end) {
  size_t total = (size_t)(ve - v);
  const char *q = cont, *c, *ce;
  while (q < end && is_ows(*q)) {
    q = continuation(q, end, &c, &ce);
    if (ce > c) total += (total ? 1 : 0) + (size_t)(ce - c);
  }
  if (res->nheaders == *cap) {
    size_t ncap = *cap ? *cap * 2 : 16;
    lf_http_header *hs = realloc(res->headers, ncap * sizeof *hs);
    if (!hs) return NULL;
    res->headers = hs;
    *cap = ncap;
  }
  lf_http_header *h = &res->headers[res->nheaders];
  h->name = dup_range(name, name_len);
  h->value = malloc(total + 1);
  if (!h->name || !h->value) {
    free(h->name);
    free(h->value);
    return NULL;
  }
  char *out = h->value;
  memcpy(out, v, (size_t)(ve - v));
  out += ve - v;
  for (q = cont; q < end && is_ows(*q);) {
    q = continuation(q, end, &c, &ce);
    if (ce == c) continue;
    if (out > h->value) *out++ = ' ';
    memcpy(out, c, (size_t)(ce - c));
    out += ce - c;
  }
  *out = '\0';
  res->nheaders++;
  return q;
}

/* Splits a raw header block (status line first) into res->headers. */
static int parse_headers(const char *block, size_t len, lf_http_response *res) {
  size_t cap = 0;
  const char *p = block, *end = block + len, *le;
  p = line_end(p, end, &le); /* the status line */
  while (p < end) {
    const char *next = line_end(p, end, &le);
    const char *colon = le > p && !is_ows(*p) ? memchr(p, ':', (size_t)(le - p)) : NULL;
    if (colon && colon > p) {
      const char *v = colon + 1, *ve = le;
      while (v < ve && is_ows(*v))
        v++;
      while (ve > v && is_ows(ve[-1]))
        ve--;
      next = add_header(res, &cap, p, (size_t)(colon - p), v, ve, next, end);
      if (!next) return -1;
    } /* else the blank line after the block, a line without a colon, or a
         continuation with no header before it: nothing to keep */
    p = next;
  }
  return 0;
}

/* libcurl 8.6 and later say CURLE_TOO_LARGE where older ones ran "out of
 * memory" for a header line over their limit. */
static int is_too_large(CURLcode rc) {
#if LIBCURL_VERSION_NUM >= 0x080600
  return rc == CURLE_TOO_LARGE;
#else
  (void)rc;
  return 0;
#endif
}

static int header_named(const char *line, const char *name) {
  size_t n = strlen(name);
  return strncasecmp(line, name, n) == 0 && (line[n] == ':' || line[n] == ';');
}

static const char *const http_methods[] = {"GET",   "POST",   "PUT",
                                           "PATCH", "DELETE", "HEAD"};

int lf_http_perform(const lf_http_request *req, lf_http_response *res) {
  return lf_http_perform_with(NULL, req, res);
}

int lf_http_perform_with(lf_http_client *client, const lf_http_request *req,
                         lf_http_response *res) {
  memset(res, 0, sizeof *res);
  const char *method = req->method ? req->method : "GET";
  int known = 0;
  for (size_t i = 0; i < sizeof http_methods / sizeof http_methods[0]; i++)
    known |= strcmp(method, http_methods[i]) == 0;
  if (!known) {
    set_err(res->err, sizeof res->err, "unsupported HTTP method \"%.16s\"", method);
    return -1;
  }
  int head = strcmp(method, "HEAD") == 0;
  if (head && req->body) {
    set_err(res->err, sizeof res->err, "a HEAD request takes no body");
    return -1;
  }

  url_parts u;
  char why[128];
  if (url_parse(req->url, &u, why, sizeof why) != 0) {
    set_err(res->err, sizeof res->err, "%s failed: %s", method, why);
    return -1;
  }
  char what[400];
  snprintf(what, sizeof what, "%s to %s failed", method, u.origin);
  if (!scheme_is(&u, "http", "https")) {
    set_err(res->err, sizeof res->err, "%s: unsupported URL scheme (http or https only)",
            what);
    url_free(&u);
    return -1;
  }
  int has_ctype = 0, has_expect = 0;
  for (size_t i = 0; i < req->nheaders; i++) {
    if (!req->headers[i] || has_line_break(req->headers[i])) {
      /* never echo a header: it may be an Authorization token */
      set_err(res->err, sizeof res->err,
              "%s: request header %zu is missing or holds a line break", what, i + 1);
      url_free(&u);
      return -1;
    }
    has_ctype |= header_named(req->headers[i], "Content-Type");
    has_expect |= header_named(req->headers[i], "Expect");
  }
  if (ensure_init() != 0) {
    set_err(res->err, sizeof res->err, "%s: libcurl could not be initialised", what);
    url_free(&u);
    return -1;
  }

  buf body = {.max = req->max_body ? req->max_body : LF_HTTP_MAX_BODY};
  buf hdrs = {.max = LF_HTTP_MAX_HEADER_BYTES};
  struct curl_slist *list = NULL;
  char errbuf[CURL_ERROR_SIZE] = "";
  int rc = -1, oom = 0;
  CURL *c = take_handle(client);
  if (!c) {
    oom = 1;
    goto done;
  }
  for (size_t i = 0; i < req->nheaders && !oom; i++) {
    struct curl_slist *l = curl_slist_append(list, req->headers[i]);
    if (l)
      list = l;
    else
      oom = 1;
  }
  /* With a body libcurl would claim form-urlencoded and might wait for a
   * 100-continue; an empty "Name:" line removes a header it adds itself. */
  int sends_body = req->body || !strcmp(method, "POST") || !strcmp(method, "PUT") ||
                   !strcmp(method, "PATCH");
  const char *extra[] = {sends_body && !has_ctype ? "Content-Type:" : NULL,
                         !has_expect ? "Expect:" : NULL};
  for (size_t i = 0; i < 2 && !oom; i++) {
    if (!extra[i]) continue;
    struct curl_slist *l = curl_slist_append(list, extra[i]);
    if (l)
      list = l;
    else
      oom = 1;
  }
  if (oom) goto done;

  curl_easy_setopt(c, CURLOPT_CURLU, u.h);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, USER_AGENT);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_cb);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &hdrs);
  curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)body.max);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
  set_timeouts_and_tls(c, req->timeout, req->connect_timeout, req->verify, req->ca_file,
                       req->stop);
  if (head) {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (sends_body) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)(req->body ? req->body_len : 0));
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body ? req->body : "");
    if (strcmp(method, "POST") != 0) curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  } else if (strcmp(method, "GET") == 0) {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  }

  CURLcode crc = curl_easy_perform(c);
  if (crc != CURLE_OK) {
    if (body.oom || hdrs.oom) {
      oom = 1;
    } else if (body.overflow || crc == CURLE_FILESIZE_EXCEEDED) {
      set_err(res->err, sizeof res->err, "%s: response body larger than %zu bytes", what,
              body.max);
    } else if (hdrs.overflow) {
      set_err(res->err, sizeof res->err,
              "%s: response header too large (more than %zu bytes of headers)", what,
              hdrs.max);
    } else if ((crc == CURLE_OUT_OF_MEMORY || is_too_large(crc)) && !hdrs.complete) {
      /* libcurl refuses a header line over its limit with this code */
      set_err(res->err, sizeof res->err,
              "%s: response header too large (a header line over %d bytes)", what,
              CURL_MAX_HTTP_HEADER);
    } else if (strstr(errbuf, "Too large response headers")) {
      set_err(res->err, sizeof res->err,
              "%s: response header too large (more bytes of headers than libcurl "
              "accepts)",
              what);
    } else {
      transfer_error(res->err, sizeof res->err, what, crc, errbuf, &u, req->url, NULL);
    }
    goto done;
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &res->status);
  if (!body.data) {
    body.data = malloc(1);
    if (!body.data) {
      oom = 1;
      goto done;
    }
    body.data[0] = '\0';
  }
  if (parse_headers(hdrs.data ? hdrs.data : "", hdrs.len, res) != 0) {
    oom = 1;
    goto done;
  }
  res->body = body.data;
  res->body_len = body.len;
  body.data = NULL;
  rc = 0;
done:
  if (oom) {
    lf_http_response_free(res);
    res->status = 0;
    set_err(res->err, sizeof res->err, "%s: out of memory", what);
  }
  release_handle(client, c);
  curl_slist_free_all(list);
  url_free(&u); /* after the easy handle: it points at u.h */
  free(body.data);
  free(hdrs.data);
  return rc;
}

/* {=== SMTP ===} */

void lf_smtp_request_init(lf_smtp_request *req) {
  memset(req, 0, sizeof *req);
  req->timeout = LF_HTTP_DEFAULT_TIMEOUT;
  req->connect_timeout = LF_HTTP_DEFAULT_CONNECT_TIMEOUT;
  req->verify = 1;
}

/* The server's last 4xx/5xx reply line and its last reply line of any kind,
 * seen through libcurl's debug hook (only incoming protocol lines are looked
 * at; what we send holds the AUTH exchange and is never read). */
typedef struct {
  char line[256]; /* the last 4xx/5xx */
  char last[256]; /* the last 25x: after DATA, the server's word that it took the
                     message (QUIT's 221 and the greetings are not kept) */
} smtp_reply;

static void keep_line(char *dst, size_t cap, const char *data, size_t size) {
  size_t n = size < cap - 1 ? size : cap - 1;
  memcpy(dst, data, n);
  dst[n] = '\0';
}

static int smtp_debug_cb(CURL *c, curl_infotype type, char *data, size_t size, void *ud) {
  (void)c;
  smtp_reply *r = ud;
  if (type != CURLINFO_HEADER_IN || size < 3) return 0;
  if (data[0] == '2' && data[1] == '5') keep_line(r->last, sizeof r->last, data, size);
  if (data[0] == '4' || data[0] == '5') keep_line(r->line, sizeof r->line, data, size);
  return 0;
}

int lf_smtp_send(const lf_smtp_request *req, char *err, size_t errlen) {
  return lf_smtp_send_with(NULL, req, err, errlen);
}

int lf_smtp_send_with(lf_http_client *client, const lf_smtp_request *req, char *err,
                      size_t errlen) {
  set_err(err, errlen, "%s", "");
  if (req->reply && req->reply_len) req->reply[0] = '\0';
  url_parts u;
  char why[128];
  if (url_parse(req->url, &u, why, sizeof why) != 0) {
    set_err(err, errlen, "SMTP failed: %s", why);
    return -1;
  }
  char what[400];
  snprintf(what, sizeof what, "SMTP via %s failed", u.origin);
  const char *bad = NULL;
  if (!scheme_is(&u, "smtp", "smtps"))
    bad = "unsupported URL scheme (smtp or smtps only)";
  else if (!req->from || !req->from[0])
    bad = "no sender address";
  else if (has_line_break(req->from))
    bad = "the sender address holds a line break";
  else if (req->nto == 0)
    bad = "no recipients";
  else if (!req->message && req->message_len)
    bad = "no message";
  else if (has_line_break(req->username) || has_line_break(req->password))
    bad = "the credentials hold a line break";
  for (size_t i = 0; !bad && i < req->nto; i++)
    if (!req->to[i] || !req->to[i][0] || has_line_break(req->to[i]))
      bad = "a recipient address is empty or holds a line break";
  if (!bad && ensure_init() != 0) bad = "libcurl could not be initialised";
  if (bad) {
    set_err(err, errlen, "%s: %s", what, bad);
    url_free(&u);
    return -1;
  }

  struct curl_slist *rcpt = NULL;
  char errbuf[CURL_ERROR_SIZE] = "";
  smtp_reply reply = {"", ""};
  reader rd = {req->message ? req->message : "", req->message ? req->message_len : 0, 0};
  int rc = -1, oom = 0;
  CURL *c = take_handle(client);
  if (!c) oom = 1;
  for (size_t i = 0; i < req->nto && !oom; i++) {
    struct curl_slist *l = curl_slist_append(rcpt, req->to[i]);
    if (l)
      rcpt = l;
    else
      oom = 1;
  }
  if (oom) {
    set_err(err, errlen, "%s: out of memory", what);
    goto done;
  }

  curl_easy_setopt(c, CURLOPT_CURLU, u.h);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  /* an idle SMTP session would hold one of the server's slots: one per mail */
  curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  if (req->starttls) curl_easy_setopt(c, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
  if (req->username) curl_easy_setopt(c, CURLOPT_USERNAME, req->username);
  if (req->password) curl_easy_setopt(c, CURLOPT_PASSWORD, req->password);
  curl_easy_setopt(c, CURLOPT_MAIL_FROM, req->from);
  curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
  curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
  curl_easy_setopt(c, CURLOPT_READDATA, &rd);
  curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)rd.len);
  curl_easy_setopt(c, CURLOPT_DEBUGFUNCTION, smtp_debug_cb);
  curl_easy_setopt(c, CURLOPT_DEBUGDATA, &reply);
  curl_easy_setopt(c, CURLOPT_VERBOSE, 1L); /* feeds the debug hook only */
  set_timeouts_and_tls(c, req->timeout, req->connect_timeout, req->verify, req->ca_file,
                       req->stop);

  CURLcode crc = curl_easy_perform(c);
  if (crc != CURLE_OK) {
    const char *extra[3] = {NULL, NULL, NULL};
    size_t ne = 0;
    if (req->password) extra[ne++] = req->password;
    if (req->username) extra[ne++] = req->username;
    transfer_error(err, errlen, what, crc, errbuf, &u, req->url, extra);
    chomp(reply.line);
    printable(reply.line);
    if (reply.line[0] && text_is_safe(reply.line, &u, req->url, extra)) {
      if (err && errlen) {
        size_t n = strlen(err);
        set_err(err + n, errlen - n, "; server said: %s", reply.line);
      }
      if (req->reply && req->reply_len)
        set_err(req->reply, req->reply_len, "%s", reply.line);
    }
    goto done;
  }
  if (req->reply && req->reply_len) { /* the answer to the end of DATA */
    chomp(reply.last);
    printable(reply.last);
    set_err(req->reply, req->reply_len, "%s", reply.last);
  }
  rc = 0;
done:
  release_handle(client, c);
  curl_slist_free_all(rcpt);
  url_free(&u);
  return rc;
}
