import { nullTranslator, TranslationBundle } from '@jupyterlab/translation';
import type {
  IBuild,
  IEnv,
  IEnvSpec,
  IPackage,
  IPackageChange,
  IPackageDiff,
  PackageKind
} from '../tokens';

/**
 * The Packages view's logic without state or DOM: sizes, channel labels,
 * filtering, diff grouping, spec drafts (unit-tested on their own).
 */

/**
 * A size in bytes for people: `1.4 MB`, `980 kB`, `12 B`; `—` when unknown.
 */
export function humanSize(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) {
    return '—';
  }
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  const digits = unit === 0 || value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${value.toFixed(digits)} ${units[unit]}`;
}

/**
 * A channel as a short label: `conda-forge` stays, a URL shows its last
 * path segment (`file:///srv/channels/team/` → `team`); the full URL goes in
 * the tooltip.
 */
export function shortChannel(channel: string | null): string {
  if (!channel) {
    return '';
  }
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(channel)) {
    return channel;
  }
  const parts = channel.split('/').filter(Boolean);
  return parts[parts.length - 1] ?? channel;
}

/**
 * The packages matching what the user typed: every word must occur in the
 * name, version, channel or kind (case-insensitive); `requestedOnly` keeps
 * the packages the spec asks for.
 */
export function filterPackages(
  packages: ReadonlyArray<IPackage>,
  query: string,
  requestedOnly = false
): IPackage[] {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  return packages.filter(pkg => {
    if (requestedOnly && !pkg.requested) {
      return false;
    }
    const haystack = [pkg.name, pkg.version, pkg.channel ?? '', pkg.kind]
      .join(' ')
      .toLowerCase();
    return words.every(word => haystack.includes(word));
  });
}

/**
 * The kinds of change of a diff, in the order the view shows them.
 */
export const CHANGES = [
  'added',
  'removed',
  'upgraded',
  'downgraded',
  'rebuilt'
] as const;

/**
 * A kind of change of a diff.
 */
export type ChangeKind = (typeof CHANGES)[number];

/**
 * The changes of one kind to the packages of one kind (conda or pip).
 */
export interface IDiffGroup {
  kind: PackageKind;
  change: ChangeKind;
  items: IPackageChange[];
}

/**
 * A diff as the view shows it: conda first, then pip; within each added,
 * removed, upgraded, downgraded, rebuilt; empty groups left out; names
 * sorted.
 */
export function groupDiff(diff: IPackageDiff): {
  total: number;
  groups: IDiffGroup[];
} {
  const groups: IDiffGroup[] = [];
  let total = 0;
  for (const kind of ['conda', 'pip'] as PackageKind[]) {
    for (const change of CHANGES) {
      const items = (diff[change] ?? [])
        .filter(item => item.kind === kind)
        .sort((a, b) => a.name.localeCompare(b.name));
      if (items.length) {
        groups.push({ kind, change, items });
        total += items.length;
      }
    }
  }
  return { total, groups };
}

/**
 * The name a spec line is about (`numpy >=1.2` → `numpy`); pip names are
 * normalised as PEP 503 says.
 */
export function specName(line: string, kind: PackageKind): string {
  const match = /^\s*([A-Za-z0-9_][A-Za-z0-9._-]*)/.exec(line);
  const name = match ? match[1] : line.trim();
  return kind === 'pip'
    ? name.replace(/[-_.]+/g, '-').toLowerCase()
    : name.toLowerCase();
}

/**
 * A change of the spec the user asked for: add (or replace) `line`, or
 * remove the package `line` names.
 */
export interface ISpecEdit {
  op: 'add' | 'remove';
  kind: PackageKind;
  line: string;
}

/**
 * The lines of one kind of the spec before and after an edit, for the draft
 * shown before building. It previews what the server will do (a package
 * already listed is replaced in place, else appended; remove drops its
 * line); the server decides, and a refused edit comes back as its message.
 */
export function draftSpec(
  spec: IEnvSpec,
  edit: ISpecEdit
): { before: string[]; after: string[] } {
  const before = [...(edit.kind === 'pip' ? spec.pip : spec.conda)];
  const name = specName(edit.line, edit.kind);
  const same = (line: string) => specName(line, edit.kind) === name;
  let after: string[];
  if (edit.op === 'remove') {
    after = before.filter(line => !same(line));
  } else {
    const index = before.findIndex(same);
    after = [...before];
    if (index >= 0) {
      after[index] = edit.line;
    } else {
      after.push(edit.line);
    }
  }
  return { before, after };
}

/**
 * The conda spec line that asks for `name` at `version` (any version when
 * empty).
 */
export function condaLine(name: string, version?: string | null): string {
  return version ? `${name} ==${version}` : name;
}

/**
 * Why the user may not change the packages of `env` now (the server's
 * reason, from its `actions`), or '' when they may. Adding or removing a
 * package edits the spec and builds it, so both must be allowed.
 */
export function changeBlocked(
  env: IEnv | undefined,
  trans: TranslationBundle = nullTranslator.load('jupyter_env_manager')
): string {
  if (!env) {
    return trans.__('The environment is not listed');
  }
  for (const action of ['edit', 'build'] as const) {
    const state = env.actions?.[action];
    if (!state) {
      return trans.__('The server did not say whether this is allowed');
    }
    if (!state.allowed) {
      return state.reason || trans.__('Not allowed');
    }
  }
  return '';
}

/**
 * The versions of an environment that can be listed (those that built).
 */
export function listableVersions(versions: ReadonlyArray<IBuild>): number[] {
  return versions
    .filter(build => build.status === 'succeeded')
    .map(build => build.version)
    .sort((a, b) => b - a);
}
