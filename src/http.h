/* http: the HTTP and SMTP transport of luaflow, on libcurl. Lua-free.
 *
 * Two calls, each one blocking transfer with its own easy handle:
 *
 *   lf_http_perform  one HTTP(S) request, the whole answer kept in memory;
 *   lf_smtp_send     one message over SMTP, STARTTLS or SMTPS.
 *
 * Both start from a request struct that lf_*_request_init fills with the
 * defaults (TLS verification on, 10 s total / 5 s connect timeout); set the
 * fields you need after it. A timeout of 0 (or less) also means the default, so
 * a silent server can never hang the caller.
 *
 * Secrets: webhook URLs carry tokens in their path, SMTP URLs may carry
 * credentials. No error text built here contains a URL's path, query,
 * fragment or user-info, the password, or the URL as given: it names the
 * scheme, host and port ("POST to https://hooks.example.com:443 failed:
 * Timeout was reached (...)"), and an unparsable URL is just "invalid URL".
 *
 * libcurl: curl_global_init runs once, on the first call of either function
 * (pthread_once). Its callbacks only copy bytes; they report overflow through
 * libcurl's return codes and never call back into the caller. Signals are
 * left alone (CURLOPT_NOSIGNAL), redirects are not followed, and the
 * User-Agent is "luaflow/<LUAFLOW_VERSION>".
 */
#ifndef LF_HTTP_H
#define LF_HTTP_H

#include <stddef.h>

#define LF_HTTP_DEFAULT_TIMEOUT 10.0        /* seconds, whole transfer */
#define LF_HTTP_DEFAULT_CONNECT_TIMEOUT 5.0 /* seconds, until connected */
#define LF_HTTP_MAX_BODY ((size_t)64 << 20) /* response body cap: 64 MiB */
#define LF_HTTP_MAX_HEADER_BYTES ((size_t)1 << 20)
#define LF_HTTP_ERRLEN 512 /* enough for every message built here */

typedef struct {
  const char *method; /* GET (also when NULL), POST, PUT, PATCH, DELETE, HEAD */
  const char *url;    /* http:// or https:// */
  const char *body;   /* NULL: no body (POST, PUT and PATCH then send an empty one) */
  size_t body_len;
  /* Request headers as "Name: value" lines ("Name;" sends an empty value).
   * A request with a body and no Content-Type header sends none (libcurl's
   * form-urlencoded default is removed); "Expect: 100-continue" is never sent
   * unless given. */
  const char *const *headers;
  size_t nheaders;
  double timeout;         /* seconds, fractional; <= 0: LF_HTTP_DEFAULT_TIMEOUT */
  double connect_timeout; /* seconds; <= 0: LF_HTTP_DEFAULT_CONNECT_TIMEOUT */
  int verify; /* 1 (the default): check the peer's certificate and name; 0: don't */
  const char
      *ca_file; /* PEM bundle to verify against instead of the system's; NULL: system */
  size_t max_body;   /* 0: LF_HTTP_MAX_BODY */
  int (*stop)(void); /* NULL, or polled during the transfer: nonzero ends it at once
                        ("... failed: interrupted") */
} lf_http_request;

/* One response header, as received except that obs-folded continuation lines
 * are joined with a space. Names keep their case. */
typedef struct {
  char *name;
  char *value;
} lf_http_header;

typedef struct {
  long status; /* e.g. 200; 0 when no response was read */
  char *body;  /* body_len bytes plus a NUL (never NULL after success) */
  size_t body_len;
  lf_http_header *headers; /* the final response's headers, in order (not those of a
                              1xx interim answer) */
  size_t nheaders;
  char err[LF_HTTP_ERRLEN]; /* why lf_http_perform failed; "" on success */
} lf_http_response;

/* Fills req with the defaults: GET, no body, no headers, default timeouts,
 * verify = 1, no CA file, default body cap. */
void lf_http_request_init(lf_http_request *req);

/* Performs req. Returns 0 when a response was received (whatever its status)
 * and fills res; returns -1 on a transport failure (bad URL or method, DNS,
 * connect, TLS, timeout, closed connection, body over the cap, out of memory)
 * with res->err set. res is initialised by the call in both cases and must be
 * released with lf_http_response_free. */
int lf_http_perform(const lf_http_request *req, lf_http_response *res);

/* Frees what res holds and leaves it empty; safe to call twice. */
void lf_http_response_free(lf_http_response *res);

typedef struct {
  const char *url; /* smtp://host[:port][/helo-domain] or smtps://host[:port] */
  int starttls;    /* with smtp://: upgrade with STARTTLS and fail if the server can't */
  const char *username;  /* NULL: no AUTH */
  const char *password;  /* NULL: none */
  const char *from;      /* envelope sender, "a@b" or "<a@b>" */
  const char *const *to; /* envelope recipients (at least one) */
  size_t nto;
  const char *message; /* the whole message, headers and body, CRLF line endings
                          (dot-stuffing is libcurl's job) */
  size_t message_len;
  double timeout;         /* as for HTTP */
  double connect_timeout; /* as for HTTP */
  int verify;             /* as for HTTP; also applies to STARTTLS */
  const char *ca_file;    /* as for HTTP */
  int (*stop)(void);      /* as for HTTP */
  char *reply;            /* NULL, or where the server's word goes (printable ASCII): its
                             answer to the message ("250 2.0.0 Ok: queued as 1F3A"), or
                             when sending failed its refusal ("550 5.1.1 no such user"),
                             "" when it said neither */
  size_t reply_len;       /* its size, NUL included */
} lf_smtp_request;

/* Fills req with the defaults: no STARTTLS, no credentials, default
 * timeouts, verify = 1. */
void lf_smtp_request_init(lf_smtp_request *req);

/* Sends the message. Returns 0 once the server accepted it, -1 otherwise with
 * err set (when errlen > 0), e.g. "SMTP via smtp://127.0.0.1:2525 failed:
 * Failed sending data to the peer (RCPT failed: 550); server said: 550 5.1.1
 * no such user". */
int lf_smtp_send(const lf_smtp_request *req, char *err, size_t errlen);

/* A client: one libcurl handle that a thread reuses for its transfers, so
 * its connections stay open between them (keep-alive, TLS sessions). Used by
 * one thread at a time. NULL when memory or libcurl's init fail. */
typedef struct lf_http_client lf_http_client;
lf_http_client *lf_http_client_new(void);
void lf_http_client_free(lf_http_client *c);
/* lf_http_perform and lf_smtp_send on the client's handle (c NULL: a handle
 * of their own, as the plain calls). */
int lf_http_perform_with(lf_http_client *c, const lf_http_request *req,
                         lf_http_response *res);
int lf_smtp_send_with(lf_http_client *c, const lf_smtp_request *req, char *err,
                      size_t errlen);

/* Writes "scheme://host:port" of url (the default port when none is given)
 * into out. Returns 0, or -1 when url does not parse (out is then
 * "invalid URL"). Never copies any other part of url. */
int lf_url_origin(const char *url, char *out, size_t outlen);

#endif
