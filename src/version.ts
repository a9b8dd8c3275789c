// The frontend's own package.json, bundled at build time (kept out of `src/`
// so that it stays the single source of the version).
// eslint-disable-next-line @typescript-eslint/no-var-requires
const packageJson = require('../package.json') as {
  name: string;
  version: string;
};

/**
 * The npm package name of this extension.
 */
export const PACKAGE_NAME: string = packageJson.name;

/**
 * The version of this frontend; the server extension must report the same.
 */
export const PACKAGE_VERSION: string = packageJson.version;

/**
 * Normalize an npm (semver) or Python (PEP 440) version so that the two
 * spellings of one release compare equal: `0.1.0-alpha.1` and `0.1.0a1`.
 */
export function normalizeVersion(version: string): string {
  return version
    .trim()
    .toLowerCase()
    .replace(/^v/, '')
    .replace(/[-_.]?(alpha|a)[-_.]?(\d+)/, 'a$2')
    .replace(/[-_.]?(beta|b)[-_.]?(\d+)/, 'b$2')
    .replace(/[-_.]?(rc|c)[-_.]?(\d+)/, 'rc$2')
    .replace(/[-_.]?dev[-_.]?(\d*)/, '.dev$1');
}

/**
 * Whether a server version matches this frontend.
 */
export function versionsMatch(
  server: string,
  frontend = PACKAGE_VERSION
): boolean {
  return normalizeVersion(server) === normalizeVersion(frontend);
}
