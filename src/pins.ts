/**
 * Notebook pins: a notebook's `metadata.envmgr` names the environment version
 * it runs on, and its `metadata.kernelspec` the kernel that honours it
 * (`<kernel name>.v<N>`). This module reads and writes them, computes the
 * status bar's words, and switches a notebook's kernel; it knows nothing of
 * widgets, so jest tests it on a real notebook model.
 */
import type { TranslationBundle } from '@jupyterlab/translation';
import type { IPinMetadata, IPinResult, Scope } from './tokens';

/**
 * The MIME type of the display bundle `%envmgr pin` / `%envmgr unpin` output.
 */
export const PIN_MIME_TYPE = 'application/vnd.jupyter-env-manager.pin+json';

/**
 * The notebook metadata key of a pin.
 */
export const PIN_METADATA_KEY = 'envmgr';

const KERNEL_PREFIX = 'envmgr-';
const SHARED = 'shared-';
const LOCAL_DOTTED = 'local.';
const NAME_RE = /^[a-z0-9][a-z0-9_-]{0,31}$/;
const SHA256_RE = /^[0-9a-f]{64}$/;
const PINNED_SUFFIX_RE = /\.v([1-9][0-9]*)$/;

/**
 * The environment (and pinned version, if any) a kernel name stands for.
 */
export interface IKernelNameParts {
  scope: Scope;
  name: string;
  /**
   * The version of a pinned kernel (`envmgr-mv.v3`), null for the
   * environment's own kernel.
   */
  pinned: number | null;
}

/**
 * The kernel name of an environment (the server's `kernels.kernel_name`).
 */
export function unpinnedKernelName(scope: Scope, name: string): string {
  if (scope === 'shared') {
    return `${KERNEL_PREFIX}${SHARED}${name}`;
  }
  if (name.startsWith(SHARED)) {
    return `${KERNEL_PREFIX}${LOCAL_DOTTED}${name}`;
  }
  return `${KERNEL_PREFIX}${name}`;
}

/**
 * Read one of our kernel names (exactly inverting the server's naming,
 * `.v<N>` for a pinned one); null for any other kernel.
 */
export function parseKernelName(
  kernel: string | null | undefined
): IKernelNameParts | null {
  if (!kernel || !kernel.startsWith(KERNEL_PREFIX)) {
    return null;
  }
  let rest = kernel.slice(KERNEL_PREFIX.length);
  let pinned: number | null = null;
  const suffix = PINNED_SUFFIX_RE.exec(rest);
  if (suffix) {
    pinned = Number(suffix[1]);
    rest = rest.slice(0, suffix.index);
  }
  let scope: Scope = 'local';
  let name = rest;
  if (rest.startsWith(SHARED)) {
    scope = 'shared';
    name = rest.slice(SHARED.length);
  } else if (rest.startsWith(LOCAL_DOTTED)) {
    name = rest.slice(LOCAL_DOTTED.length);
  }
  if (
    !NAME_RE.test(name) ||
    unpinnedKernelName(scope, name) + (pinned ? `.v${pinned}` : '') !== kernel
  ) {
    return null;
  }
  return { scope, name, pinned };
}

function isScope(value: unknown): value is Scope {
  return value === 'local' || value === 'shared';
}

function isVersion(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value > 0;
}

/**
 * A notebook's pin from its metadata, or null when it has none. A malformed
 * pin is reported, not ignored: `{ error }` says what is wrong with it.
 */
export function readPin(
  value: unknown
): IPinMetadata | { error: string } | null {
  if (value === undefined || value === null) {
    return null;
  }
  const pin = value as Partial<Record<keyof IPinMetadata, unknown>>;
  if (typeof value !== 'object' || Array.isArray(value)) {
    return { error: 'metadata.envmgr is not an object' };
  }
  if (!isScope(pin.scope)) {
    return { error: 'metadata.envmgr.scope is not "local" or "shared"' };
  }
  if (typeof pin.name !== 'string' || !NAME_RE.test(pin.name)) {
    return { error: 'metadata.envmgr.name is not an environment name' };
  }
  if (!isVersion(pin.version)) {
    return { error: 'metadata.envmgr.version is not a version number' };
  }
  if (typeof pin.lock_sha256 !== 'string' || !SHA256_RE.test(pin.lock_sha256)) {
    return { error: 'metadata.envmgr.lock_sha256 is not a sha256' };
  }
  return {
    scope: pin.scope,
    name: pin.name,
    version: pin.version,
    lock_sha256: pin.lock_sha256
  };
}

/**
 * Whether `readPin` found a pin (not nothing, not an error).
 */
export function isPin(
  value: IPinMetadata | { error: string } | null
): value is IPinMetadata {
  return value !== null && !('error' in value);
}

/**
 * What `%envmgr pin` / `%envmgr unpin` display: a pin to apply or an unpin.
 */
export type PinBundle =
  { kind: 'pin'; result: IPinResult } | { kind: 'unpin'; kernel_name: string };

/**
 * Validate the data of a pin display bundle; null when it is not one (the
 * kernel name must be one of ours, for the environment the pin names).
 */
export function readPinBundle(data: unknown): PinBundle | null {
  if (!data || typeof data !== 'object') {
    return null;
  }
  const d = data as Record<string, unknown>;
  if (d.unpin === true) {
    const kernel = parseKernelName(d.kernel_name as string);
    return kernel && kernel.pinned === null
      ? { kind: 'unpin', kernel_name: d.kernel_name as string }
      : null;
  }
  const pin = readPin({
    scope: d.scope,
    name: d.name,
    version: d.version,
    lock_sha256: d.lock_sha256
  });
  const kernel = parseKernelName(d.kernel_name as string);
  if (
    !isPin(pin) ||
    !kernel ||
    kernel.scope !== pin.scope ||
    kernel.name !== pin.name ||
    kernel.pinned !== pin.version
  ) {
    return null;
  }
  return {
    kind: 'pin',
    result: {
      ...pin,
      kernel_name: d.kernel_name as string,
      display_name:
        typeof d.display_name === 'string' ? d.display_name : pin.name,
      materialized: d.materialized === true
    }
  };
}

/**
 * What the status bar knows about the current notebook.
 */
export interface IPinStatusInput {
  /**
   * The notebook's pin (metadata.envmgr), if any.
   */
  pin: IPinMetadata | null;
  /**
   * The environment of the notebook's kernel, if it is one of ours.
   */
  kernel: { scope: Scope; name: string; version: number | null } | null;
  /**
   * The version in use of the environment named by the pin (or the kernel),
   * when the panel's model knows it.
   */
  inUse: number | null;
}

/**
 * The status bar's words for a notebook.
 */
export interface IPinStatus {
  /**
   * The environment it is about.
   */
  scope: Scope;
  name: string;
  /**
   * The version the notebook runs on (null: not known yet).
   */
  version: number | null;
  pinned: boolean;
  /**
   * The newer version in use, for a pinned notebook; otherwise null.
   */
  newer: number | null;
  label: string;
  title: string;
}

/**
 * "mv v3 (pinned)", "mv v3 → v5 available" or "mv v5"; null when the
 * notebook is neither pinned nor on one of our kernels.
 */
export function pinStatus(
  input: IPinStatusInput,
  trans: TranslationBundle
): IPinStatus | null {
  const { pin, kernel, inUse } = input;
  if (pin) {
    const newer = inUse !== null && inUse > pin.version ? inUse : null;
    const where =
      pin.scope === 'shared' ? trans.__('shared') : trans.__('local');
    return {
      scope: pin.scope,
      name: pin.name,
      version: pin.version,
      pinned: true,
      newer,
      label:
        newer === null
          ? trans.__('%1 v%2 (pinned)', pin.name, pin.version)
          : trans.__('%1 v%2 → v%3 available', pin.name, pin.version, newer),
      title:
        newer === null
          ? trans.__(
              'This notebook is pinned to version %1 of %2 (%3). Click to change.',
              pin.version,
              pin.name,
              where
            )
          : trans.__(
              'This notebook is pinned to version %1 of %2 (%3); version %4 is in use. Click to change.',
              pin.version,
              pin.name,
              where,
              newer
            )
    };
  }
  if (!kernel) {
    return null;
  }
  const version = inUse ?? kernel.version;
  const where =
    kernel.scope === 'shared' ? trans.__('shared') : trans.__('local');
  return {
    scope: kernel.scope,
    name: kernel.name,
    version,
    pinned: false,
    newer: null,
    label:
      version === null ? kernel.name : trans.__('%1 v%2', kernel.name, version),
    title: trans.__(
      'Kernel environment: %1 (%2), its version in use. Click to pin the notebook to it.',
      kernel.name,
      where
    )
  };
}

/**
 * The metadata calls this module needs of a notebook model.
 */
export interface IMetadataModel {
  getMetadata(key: string): unknown;
  setMetadata(key: string, value: unknown): void;
  deleteMetadata(key: string): void;
}

/**
 * Write a pin into a notebook's metadata: `metadata.envmgr` and the
 * kernelspec honouring it (so the file alone says how to run it, for
 * nbconvert and papermill too).
 */
export function writePin(model: IMetadataModel, result: IPinResult): void {
  const pin: IPinMetadata = {
    scope: result.scope,
    name: result.name,
    version: result.version,
    lock_sha256: result.lock_sha256
  };
  model.setMetadata(PIN_METADATA_KEY, pin);
  model.setMetadata('kernelspec', {
    name: result.kernel_name,
    display_name: result.display_name,
    language: 'python'
  });
}

/**
 * Remove a notebook's pin; its kernelspec becomes the environment's own
 * kernel (`kernelName`), keeping the display name it had.
 */
export function removePin(
  model: IMetadataModel,
  kernelName: string,
  displayName?: string
): void {
  model.deleteMetadata(PIN_METADATA_KEY);
  const previous = model.getMetadata('kernelspec') as
    { display_name?: unknown } | undefined;
  const display =
    displayName ??
    (typeof previous?.display_name === 'string'
      ? previous.display_name
      : kernelName);
  model.setMetadata('kernelspec', {
    name: kernelName,
    display_name: display,
    language: 'python'
  });
}

/**
 * The session calls this module needs to switch a notebook's kernel.
 */
export interface IKernelSwitcher {
  readonly session: {
    readonly kernel: {
      readonly name: string;
      readonly status: string;
      readonly statusChanged: {
        connect(fn: (sender: unknown, status: string) => void): boolean;
        disconnect(fn: (sender: unknown, status: string) => void): boolean;
      };
    } | null;
  } | null;
  changeKernel(options: { name: string }): Promise<unknown>;
}

/**
 * Resolve once the kernel is not busy (or after `timeoutMs`): a kernel is
 * switched after the cell that asked for it (`%envmgr pin`) finished.
 */
export function whenIdle(
  session: IKernelSwitcher,
  timeoutMs = 30_000
): Promise<void> {
  const kernel = session.session?.kernel;
  if (!kernel || kernel.status !== 'busy') {
    return Promise.resolve();
  }
  return new Promise(resolve => {
    const done = () => {
      clearTimeout(timer);
      kernel.statusChanged.disconnect(onStatus);
      resolve();
    };
    const onStatus = (_: unknown, status: string) => {
      if (status !== 'busy') {
        done();
      }
    };
    const timer = setTimeout(done, timeoutMs);
    kernel.statusChanged.connect(onStatus);
  });
}

/**
 * Start `kernelName` for the notebook unless it already runs it, after its
 * kernelspec list was refreshed (the server may have just written it) and
 * once the current kernel is idle. Resolves with whether it switched.
 */
export async function switchKernel(
  session: IKernelSwitcher,
  kernelName: string,
  refreshSpecs: () => Promise<unknown>
): Promise<boolean> {
  if (session.session?.kernel?.name === kernelName) {
    return false;
  }
  await refreshSpecs();
  await whenIdle(session);
  if (session.session?.kernel?.name === kernelName) {
    return false;
  }
  await session.changeKernel({ name: kernelName });
  return true;
}

/**
 * Bytes in the units `du -h` uses (powers of 1024).
 */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const digits = unit === 0 || value >= 100 ? 0 : 1;
  return `${value.toFixed(digits)} ${units[unit]}`;
}

/**
 * "v1" from a version directory's name ("v1-abcd1234").
 */
export function versionLabel(directory: string): string {
  const match = /^v(\d+)(?:-|$)/.exec(directory);
  return match ? `v${match[1]}` : directory;
}
