import { NotebookModel } from '@jupyterlab/notebook';
import { OutputModel } from '@jupyterlab/rendermime';
import { nullTranslator } from '@jupyterlab/translation';
import { Signal } from '@lumino/signaling';
import { kernelEnvironment } from '../kernelspec';
import {
  formatBytes,
  IKernelSwitcher,
  parseKernelName,
  PIN_MIME_TYPE,
  PinBundle,
  pinStatus,
  readPin,
  readPinBundle,
  removePin,
  switchKernel,
  unpinnedKernelName,
  versionLabel,
  writePin
} from '../pins';
import type { IPinResult } from '../tokens';
import { PinRenderer } from '../widgets/PinRenderer';
import { until, wait } from './fixtures';

const trans = nullTranslator.load('jupyter_env_manager');
const SHA = 'a'.repeat(64);

function result(overrides: Partial<IPinResult> = {}): IPinResult {
  return {
    scope: 'local',
    name: 'mv',
    version: 1,
    lock_sha256: SHA,
    kernel_name: 'envmgr-mv.v1',
    display_name: 'mv (v1)',
    materialized: false,
    ...overrides
  };
}

describe('kernel names', () => {
  it.each([
    ['envmgr-mv', { scope: 'local', name: 'mv', pinned: null }],
    ['envmgr-mv.v1', { scope: 'local', name: 'mv', pinned: 1 }],
    ['envmgr-shared-team.v3', { scope: 'shared', name: 'team', pinned: 3 }],
    ['envmgr-shared-team', { scope: 'shared', name: 'team', pinned: null }],
    [
      'envmgr-local.shared-x',
      { scope: 'local', name: 'shared-x', pinned: null }
    ],
    [
      'envmgr-local.shared-x.v12',
      { scope: 'local', name: 'shared-x', pinned: 12 }
    ]
  ])('reads %s', (kernel, parts) => {
    expect(parseKernelName(kernel)).toEqual(parts);
    const back = unpinnedKernelName(parts.scope as 'local', parts.name);
    expect(parts.pinned ? `${back}.v${parts.pinned}` : back).toBe(kernel);
  });

  it.each([
    'python3',
    'envmgr-',
    'envmgr-Mv',
    'envmgr-mv.v0',
    'envmgr-mv.vx',
    'envmgr-mv.v1.v2',
    'envmgr-shared-',
    // A local name starting with "shared-" is always written local.shared-…
    'envmgr-local.mv'
  ])('rejects %s', kernel => {
    expect(parseKernelName(kernel)).toBeNull();
  });

  it('gives the environment of a pinned kernel without its kernelspec', () => {
    expect(kernelEnvironment('envmgr-shared-team.v3', null)).toEqual({
      scope: 'shared',
      name: 'team',
      version: 3
    });
  });
});

describe('readPin', () => {
  it('reads a pin and nothing more', () => {
    expect(
      readPin({
        scope: 'shared',
        name: 'team',
        version: 2,
        lock_sha256: SHA,
        extra: 1
      })
    ).toEqual({ scope: 'shared', name: 'team', version: 2, lock_sha256: SHA });
    expect(readPin(undefined)).toBeNull();
  });

  it.each([
    ['a non-object', 'x', 'metadata.envmgr is not an object'],
    [
      'a scope',
      { scope: 'home', name: 'mv', version: 1, lock_sha256: SHA },
      'scope'
    ],
    [
      'a name',
      { scope: 'local', name: '../mv', version: 1, lock_sha256: SHA },
      'name'
    ],
    [
      'a version 0',
      { scope: 'local', name: 'mv', version: 0, lock_sha256: SHA },
      'version'
    ],
    [
      'a version string',
      { scope: 'local', name: 'mv', version: '1', lock_sha256: SHA },
      'version'
    ],
    [
      'a hash',
      { scope: 'local', name: 'mv', version: 1, lock_sha256: 'abc' },
      'sha256'
    ]
  ])('names a bad pin: %s', (_, value, word) => {
    const read = readPin(value) as { error: string };
    expect(read.error).toContain(word);
  });
});

describe('readPinBundle', () => {
  it('accepts the answer of POST pins', () => {
    expect(readPinBundle(result({ materialized: true }))).toEqual({
      kind: 'pin',
      result: result({ materialized: true })
    });
  });

  it('accepts an unpin naming the environment kernel', () => {
    expect(readPinBundle({ unpin: true, kernel_name: 'envmgr-mv' })).toEqual({
      kind: 'unpin',
      kernel_name: 'envmgr-mv'
    });
  });

  it.each([
    ['another kernel', result({ kernel_name: 'python3' })],
    ['another environment', result({ kernel_name: 'envmgr-other.v1' })],
    ['another version', result({ kernel_name: 'envmgr-mv.v2' })],
    ['another scope', result({ kernel_name: 'envmgr-shared-mv.v1' })],
    ['no lock hash', result({ lock_sha256: '' })],
    [
      'an unpin to a pinned kernel',
      { unpin: true, kernel_name: 'envmgr-mv.v1' }
    ],
    ['an unpin to another kernel', { unpin: true, kernel_name: 'python3' }],
    ['nothing', null]
  ])('refuses %s', (_, data) => {
    expect(readPinBundle(data)).toBeNull();
  });
});

describe('pinStatus', () => {
  const pin = {
    scope: 'local' as const,
    name: 'mv',
    version: 3,
    lock_sha256: SHA
  };
  const label = (input: Parameters<typeof pinStatus>[0]) =>
    pinStatus(input, trans)?.label ?? null;

  it('says a pinned notebook is pinned', () => {
    expect(label({ pin, kernel: null, inUse: 3 })).toBe('mv v3 (pinned)');
    // The environment is not listed (yet, or any more).
    expect(label({ pin, kernel: null, inUse: null })).toBe('mv v3 (pinned)');
  });

  it('says when a newer version is in use', () => {
    const status = pinStatus({ pin, kernel: null, inUse: 5 }, trans)!;
    expect(status.label).toBe('mv v3 → v5 available');
    expect(status.newer).toBe(5);
    expect(status.pinned).toBe(true);
    expect(status.title).toContain('version 5 is in use');
  });

  it('gives the version in use of an unpinned notebook on our kernel', () => {
    const kernel = { scope: 'local' as const, name: 'mv', version: 4 };
    expect(label({ pin: null, kernel, inUse: 5 })).toBe('mv v5');
    expect(label({ pin: null, kernel, inUse: null })).toBe('mv v4');
    expect(
      label({ pin: null, kernel: { ...kernel, version: null }, inUse: null })
    ).toBe('mv');
    expect(pinStatus({ pin: null, kernel, inUse: 5 }, trans)!.pinned).toBe(
      false
    );
  });

  it('is null for other kernels', () => {
    expect(label({ pin: null, kernel: null, inUse: null })).toBeNull();
  });
});

describe('pin metadata of a notebook', () => {
  let model: NotebookModel;

  beforeEach(() => {
    model = new NotebookModel();
    model.setMetadata('kernelspec', {
      name: 'envmgr-mv',
      display_name: 'My env',
      language: 'python'
    });
  });

  afterEach(() => model.dispose());

  it('writes the pin and the pinned kernelspec', () => {
    writePin(
      model,
      result({ version: 2, kernel_name: 'envmgr-mv.v2', display_name: 'mv v2' })
    );
    expect(model.getMetadata('envmgr')).toEqual({
      scope: 'local',
      name: 'mv',
      version: 2,
      lock_sha256: SHA
    });
    expect(model.getMetadata('kernelspec')).toEqual({
      name: 'envmgr-mv.v2',
      display_name: 'mv v2',
      language: 'python'
    });
    // What the file says: it travels with the notebook.
    const json = model.toJSON() as any;
    expect(json.metadata.envmgr.version).toBe(2);
    expect(json.metadata.kernelspec.name).toBe('envmgr-mv.v2');
  });

  it('removes the pin, back to the environment kernel', () => {
    writePin(model, result());
    removePin(model, 'envmgr-mv', 'My env');
    expect(model.getMetadata('envmgr')).toBeUndefined();
    expect(model.getMetadata('kernelspec')).toEqual({
      name: 'envmgr-mv',
      display_name: 'My env',
      language: 'python'
    });
    removePin(model, 'envmgr-mv');
    expect((model.getMetadata('kernelspec') as any).display_name).toBe(
      'My env'
    );
  });
});

/**
 * A stand-in for a session context (the calls switchKernel makes).
 */
class FakeSession implements IKernelSwitcher {
  constructor(name: string | null, status = 'idle') {
    this.session =
      name === null ? null : { kernel: this._kernel(name, status) };
  }

  session: { kernel: ReturnType<FakeSession['_kernel']> | null } | null;
  changes: string[] = [];

  async changeKernel(options: { name: string }): Promise<void> {
    this.changes.push(options.name);
    this.session = { kernel: this._kernel(options.name, 'idle') };
  }

  setStatus(status: string): void {
    const kernel = this.session!.kernel!;
    kernel.status = status;
    kernel.statusChanged.emit(status);
  }

  private _kernel(name: string, status: string) {
    return { name, status, statusChanged: new Signal<unknown, string>(this) };
  }
}

describe('switchKernel', () => {
  it('refreshes the kernelspecs, then changes the kernel', async () => {
    const order: string[] = [];
    const session = new FakeSession('envmgr-mv');
    const changed = await switchKernel(session, 'envmgr-mv.v1', async () => {
      order.push('refresh');
    });
    expect(changed).toBe(true);
    expect(order).toEqual(['refresh']);
    expect(session.changes).toEqual(['envmgr-mv.v1']);
  });

  it('starts the kernel of a notebook that has none', async () => {
    const session = new FakeSession(null);
    await switchKernel(session, 'envmgr-mv.v1', async () => undefined);
    expect(session.changes).toEqual(['envmgr-mv.v1']);
  });

  it('leaves a notebook already on the kernel alone', async () => {
    const session = new FakeSession('envmgr-mv.v1');
    let refreshed = false;
    const changed = await switchKernel(session, 'envmgr-mv.v1', async () => {
      refreshed = true;
    });
    expect(changed).toBe(false);
    expect(refreshed).toBe(false);
    expect(session.changes).toEqual([]);
  });

  it('waits for the cell that asked to finish', async () => {
    const session = new FakeSession('envmgr-mv', 'busy');
    const done = switchKernel(session, 'envmgr-mv.v1', async () => undefined);
    await wait(20);
    expect(session.changes).toEqual([]);
    session.setStatus('idle');
    await done;
    expect(session.changes).toEqual(['envmgr-mv.v1']);
  });
});

describe('formatting', () => {
  it.each([
    [0, '0 B'],
    [1023, '1023 B'],
    [1536, '1.5 KiB'],
    [150 * 1024 * 1024, '150 MiB'],
    [3.25 * 1024 ** 3, '3.3 GiB']
  ])('formats %d bytes', (bytes, text) => {
    expect(formatBytes(bytes)).toBe(text);
  });

  it('labels version directories', () => {
    expect(versionLabel('v12-abcd1234')).toBe('v12');
    expect(versionLabel('v3')).toBe('v3');
    expect(versionLabel('odd')).toBe('odd');
  });
});

describe('PinRenderer', () => {
  const output = (data: unknown, trusted = true, metadata = {}) =>
    new OutputModel({
      value: {
        output_type: 'display_data',
        data: { [PIN_MIME_TYPE]: data as any, 'text/plain': 'pinned' },
        metadata
      },
      trusted
    });

  const renderer = (applied: PinBundle[], fail = false) =>
    new PinRenderer({
      trans,
      apply: async bundle => {
        applied.push(bundle);
        if (fail) {
          throw new Error('no such kernel');
        }
      }
    });

  it('applies a fresh pin once and marks the output as applied', async () => {
    const applied: PinBundle[] = [];
    const widget = renderer(applied);
    const model = output(result());
    await widget.renderModel(model);
    expect(applied).toEqual([{ kind: 'pin', result: result() }]);
    expect(widget.node.textContent).toBe(
      'Pinned this notebook to mv v1 (kernel envmgr-mv.v1)'
    );
    expect(widget.node.dataset.state).toBe('done');
    // Saved with the notebook.
    expect((model.toJSON() as any).metadata[PIN_MIME_TYPE]).toEqual({
      applied: true
    });
    // Rendered again (the output changed, or the notebook was reopened).
    await widget.renderModel(model);
    const again: PinBundle[] = [];
    await renderer(again).renderModel(
      new OutputModel({ value: model.toJSON(), trusted: true })
    );
    expect(applied).toHaveLength(1);
    expect(again).toHaveLength(0);
  });

  it('applies an unpin', async () => {
    const applied: PinBundle[] = [];
    const widget = renderer(applied);
    await widget.renderModel(output({ unpin: true, kernel_name: 'envmgr-mv' }));
    expect(applied).toEqual([{ kind: 'unpin', kernel_name: 'envmgr-mv' }]);
    expect(widget.node.textContent).toBe(
      'Unpinned this notebook (kernel envmgr-mv)'
    );
  });

  it('does not apply an untrusted output', async () => {
    const applied: PinBundle[] = [];
    const widget = renderer(applied);
    await widget.renderModel(output(result(), false));
    expect(applied).toEqual([]);
    expect(widget.node.textContent).toContain('not applied');
  });

  it('shows why a pin could not be applied, and does not retry it', async () => {
    const applied: PinBundle[] = [];
    const widget = renderer(applied, true);
    const model = output(result());
    await widget.renderModel(model);
    await until(() => widget.node.dataset.state === 'error');
    expect(widget.node.textContent).toContain('failed: no such kernel');
    expect((model.metadata as any)[PIN_MIME_TYPE]).toEqual({ applied: true });
  });

  it('refuses a malformed bundle', async () => {
    const applied: PinBundle[] = [];
    const widget = renderer(applied);
    await widget.renderModel(output(result({ kernel_name: 'python3' })));
    expect(applied).toEqual([]);
    expect(widget.node.textContent).toBe('Not a valid pin.');
  });
});
