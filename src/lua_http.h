/* luaflow.core.http: the C functions behind luaflow.http and the e-mail
 * notifier (lua/luaflow/http.lua is the public face). */
#ifndef LF_LUA_HTTP_H
#define LF_LUA_HTTP_H

#include <lua.h>

/* Pushes a table of three functions (see lua_http.c for their contracts),
 * and `sender` (lua_sender.c):
 *   perform{method=, url=, body=, headers={Name="value"}, timeout=,
 *           connect_timeout=, verify=, ca_file=}
 *       -> status, body, headers (lower-cased names), origin | nil, errtext
 *   smtp_send{url=, starttls=, username=, password=, from=, to=, message=,
 *             timeout=, connect_timeout=, verify=, ca_file=}
 *       -> true, reply (the server's answer to the message) | nil, errtext
 *   origin(url) -> "scheme://host:port" | nil, "invalid URL"
 * Bad arguments raise; transport failures return nil and a text that never
 * holds a URL's path, query or credentials. */
int luaopen_luaflow_http(lua_State *L);
/* Adds core.http.sender (lua_sender.c) to the table on top of the stack. */
void lf_open_sender(lua_State *L);

#endif
