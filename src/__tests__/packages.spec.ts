import { draftLines } from '../components/PackagesDraft';
import type { IPackage, IPackageDiff } from '../tokens';
import {
  changeBlocked,
  condaLine,
  draftSpec,
  filterPackages,
  groupDiff,
  humanSize,
  listableVersions,
  shortChannel,
  specName
} from '../widgets/PackagesLogic';
import { actions, build, env } from './fixtures';

function pkg(overrides: Partial<IPackage>): IPackage {
  return {
    name: 'x',
    version: '1.0',
    build: 'h0_0',
    channel: 'conda-forge',
    kind: 'conda',
    size: 1000,
    requested: false,
    ...overrides
  };
}

const PACKAGES = [
  pkg({ name: 'numpy', version: '1.26.4', requested: true }),
  pkg({ name: 'numpy-base', version: '1.26.4' }),
  pkg({ name: 'python', version: '3.11.7', requested: true }),
  pkg({ name: 'libblas', version: '3.9.0', channel: 'defaults' }),
  pkg({
    name: 'requests',
    version: '2.31.0',
    kind: 'pip',
    build: null,
    channel: null,
    size: null,
    requested: true
  })
];

describe('humanSize', () => {
  it.each([
    [null, '—'],
    [0, '0 B'],
    [999, '999 B'],
    [1000, '1.00 kB'],
    [15_300, '15.3 kB'],
    [1_450_000, '1.45 MB'],
    [250_000_000, '250 MB'],
    [3_200_000_000, '3.20 GB']
  ])('%s bytes -> %s', (bytes, text) => {
    expect(humanSize(bytes)).toBe(text);
  });
});

describe('filterPackages', () => {
  const names = (list: IPackage[]) => list.map(p => p.name);

  it('keeps every package for an empty filter', () => {
    expect(names(filterPackages(PACKAGES, '  '))).toHaveLength(5);
  });

  it('matches the start, the middle, any case', () => {
    expect(names(filterPackages(PACKAGES, 'NUM'))).toEqual([
      'numpy',
      'numpy-base'
    ]);
    expect(names(filterPackages(PACKAGES, 'blas'))).toEqual(['libblas']);
  });

  it('needs every word, in the name, version, channel or kind', () => {
    expect(names(filterPackages(PACKAGES, 'numpy base'))).toEqual([
      'numpy-base'
    ]);
    expect(names(filterPackages(PACKAGES, 'pip'))).toEqual(['requests']);
    expect(names(filterPackages(PACKAGES, 'defaults'))).toEqual(['libblas']);
    expect(names(filterPackages(PACKAGES, '3.11'))).toEqual(['python']);
  });

  it('keeps only the requested packages when asked', () => {
    expect(names(filterPackages(PACKAGES, '', true))).toEqual([
      'numpy',
      'python',
      'requests'
    ]);
    expect(names(filterPackages(PACKAGES, 'num', true))).toEqual(['numpy']);
  });

  it('finds nothing for a word nothing has', () => {
    expect(filterPackages(PACKAGES, 'zzz')).toEqual([]);
  });
});

describe('groupDiff', () => {
  const diff: IPackageDiff = {
    from: { scope: 'local', name: 'demo', version: 1 },
    to: { scope: 'local', name: 'demo', version: 2 },
    added: [
      { name: 'zlib', kind: 'conda', version: '1.3' },
      { name: 'beta', kind: 'conda', version: '1.0' },
      { name: 'rich', kind: 'pip', version: '13.0' }
    ],
    removed: [{ name: 'old', kind: 'conda', version: '0.1' }],
    upgraded: [
      { name: 'alpha', kind: 'conda', from: '1.0', to: '2.0' },
      { name: 'attrs', kind: 'pip', from: '22.1', to: '23.2' }
    ],
    downgraded: [],
    rebuilt: [{ name: 'gamma', kind: 'conda', from: '1.0 h0', to: '1.0 h1' }]
  };

  it('groups conda then pip, by change, names sorted, empty groups out', () => {
    const { total, groups } = groupDiff(diff);
    expect(total).toBe(7);
    expect(groups.map(g => `${g.kind}:${g.change}`)).toEqual([
      'conda:added',
      'conda:removed',
      'conda:upgraded',
      'conda:rebuilt',
      'pip:added',
      'pip:upgraded'
    ]);
    expect(groups[0].items.map(i => i.name)).toEqual(['beta', 'zlib']);
    expect(groups[2].items[0]).toEqual({
      name: 'alpha',
      kind: 'conda',
      from: '1.0',
      to: '2.0'
    });
  });

  it('has no group for identical versions', () => {
    const same = {
      ...diff,
      added: [],
      removed: [],
      upgraded: [],
      rebuilt: []
    };
    expect(groupDiff(same)).toEqual({ total: 0, groups: [] });
  });
});

describe('spec drafts', () => {
  const spec = env({
    spec: {
      python: '3.11',
      conda: ['alpha =1.0', 'numpy >=1.2'],
      pip: ['Rich_Text==1.0'],
      channels: [],
      base: null
    }
  }).spec;

  it('names a spec line as the server does', () => {
    expect(specName('numpy >=1.2', 'conda')).toBe('numpy');
    expect(specName('alpha=1.0', 'conda')).toBe('alpha');
    expect(specName('Rich_Text==1.0', 'pip')).toBe('rich-text');
    expect(specName('rich.text', 'pip')).toBe('rich-text');
  });

  it('appends a new package', () => {
    expect(
      draftSpec(spec, { op: 'add', kind: 'conda', line: 'gamma' })
    ).toEqual({
      before: ['alpha =1.0', 'numpy >=1.2'],
      after: ['alpha =1.0', 'numpy >=1.2', 'gamma']
    });
  });

  it('replaces a listed package in place (update to latest unpins it)', () => {
    expect(
      draftSpec(spec, { op: 'add', kind: 'conda', line: 'alpha' }).after
    ).toEqual(['alpha', 'numpy >=1.2']);
  });

  it('removes a package by name, pip names normalised', () => {
    expect(
      draftSpec(spec, { op: 'remove', kind: 'conda', line: 'numpy' }).after
    ).toEqual(['alpha =1.0']);
    expect(
      draftSpec(spec, { op: 'remove', kind: 'pip', line: 'rich-text' })
    ).toEqual({ before: ['Rich_Text==1.0'], after: [] });
  });

  it('marks the draft lines: kept, replaced in place, added', () => {
    expect(
      draftLines(['alpha =1.0', 'numpy'], ['alpha', 'numpy', 'gamma'], 'conda')
    ).toEqual([
      { mark: '-', text: 'alpha =1.0' },
      { mark: '+', text: 'alpha' },
      { mark: ' ', text: 'numpy' },
      { mark: '+', text: 'gamma' }
    ]);
    expect(draftLines(['a', 'b'], ['a'], 'conda')).toEqual([
      { mark: ' ', text: 'a' },
      { mark: '-', text: 'b' }
    ]);
  });

  it('asks for a chosen version exactly, else any', () => {
    expect(condaLine('gamma', '1.0')).toBe('gamma ==1.0');
    expect(condaLine('gamma', null)).toBe('gamma');
  });
});

describe('changeBlocked', () => {
  it('is empty when the server allows edit and build', () => {
    expect(changeBlocked(env({ actions: actions() }))).toBe('');
  });

  it("gives the server's reason, never its own", () => {
    expect(
      changeBlocked(
        env({
          actions: actions({ edit: 'Read-only: the shared store is not yours' })
        })
      )
    ).toBe('Read-only: the shared store is not yours');
    expect(
      changeBlocked(
        env({ actions: actions({ build: 'Wait for the running build' }) })
      )
    ).toBe('Wait for the running build');
    expect(changeBlocked(undefined)).not.toBe('');
  });
});

describe('listableVersions', () => {
  it('lists the versions that built, newest first', () => {
    expect(
      listableVersions([
        build({ version: 1 }),
        build({ version: 3 }),
        build({ version: 2, status: 'failed' }),
        build({ version: 4, status: 'running' })
      ])
    ).toEqual([3, 1]);
  });
});

describe('shortChannel', () => {
  it.each([
    ['conda-forge', 'conda-forge'],
    ['file:///tmp/envmgr-ui-x/channel', 'channel'],
    ['https://repo.example.org/team/', 'team'],
    [null, '']
  ])('%s -> %s', (channel, label) => {
    expect(shortChannel(channel)).toBe(label);
  });
});
