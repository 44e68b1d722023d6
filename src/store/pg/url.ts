/** PostgreSQL URLs as the engine tells them from folders and shows them: without the driver. */

/** Whether `db` names a PostgreSQL database rather than a folder. */
export function isPgUrl(db: string): boolean {
  return /^postgres(ql)?:\/\//i.test(db);
}

/** The URL without its password, for messages: a URL is never shown with it. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    // libpq also takes a password as a parameter.
    for (const name of ['password', 'sslpassword']) if (u.searchParams.has(name)) u.searchParams.set(name, '***');
    return u.toString();
  } catch {
    return url.replace(/\/\/([^:/@]*):[^@]*@/, '//$1:***@').replace(/([?&](ssl)?password=)[^&]*/gi, '$1***');
  }
}
