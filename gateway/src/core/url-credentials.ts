/**
 * Credentials written into a URL (`https://user:password@host/…`). fetch refuses such a URL and
 * quotes it, password included, in its error; the credentials go in an Authorization header
 * instead (HTTP Basic, RFC 7617), which fetch drops on a redirect to another origin.
 */

/**
 * Removes `user:password@` from `u` (in place) and returns the Basic authorization header value
 * for it; undefined when the URL has none.
 */
export function takeBasicAuth(u: URL): string | undefined {
  if (!u.username && !u.password) return undefined;
  const cred = `${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`;
  u.username = "";
  u.password = "";
  return `Basic ${Buffer.from(cred).toString("base64")}`;
}
