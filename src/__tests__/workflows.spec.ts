import { installAllRequest, splitSpecs } from '../components/Fleet';
import { importRequest, looksLikeRequirements } from '../components/ImportForm';

describe('looksLikeRequirements', () => {
  it('goes by the file name first', () => {
    expect(looksLikeRequirements('name: x\n', 'requirements.txt')).toBe(true);
    expect(looksLikeRequirements('requests\n', 'environment.yml')).toBe(false);
    expect(looksLikeRequirements('requests\n', 'requirements-dev')).toBe(true);
  });

  it('else by the content: an environment.yml has top-level keys', () => {
    expect(
      looksLikeRequirements('# deps\nrequests>=2\nrich ; python_version>"3"\n')
    ).toBe(true);
    expect(looksLikeRequirements('name: x\ndependencies:\n  - numpy\n')).toBe(
      false
    );
    expect(looksLikeRequirements('')).toBe(false);
  });
});

describe('importRequest of a requirements file', () => {
  it('sends requirements_txt instead of environment_yml', () => {
    const text = 'requests>=2\n';
    expect(
      importRequest(
        {
          scope: 'local',
          name: 'web',
          environment_yml: text,
          file_name: 'requirements.txt'
        },
        true
      )
    ).toEqual({
      scope: 'local',
      name: 'web',
      requirements_txt: text,
      build: true
    });
  });
});

describe('installAllRequest', () => {
  it('splits the packages on commas and lines, keeping spaces inside a spec', () => {
    expect(splitSpecs('numpy >=1.26, requests\n\n rich ')).toEqual([
      'numpy >=1.26',
      'requests',
      'rich'
    ]);
    expect(installAllRequest(['local/a', 'shared/b'], 'numpy', '')).toEqual({
      environments: ['local/a', 'shared/b'],
      conda: ['numpy']
    });
    expect(installAllRequest(['local/a'], '', 'rich>=13')).toEqual({
      environments: ['local/a'],
      pip: ['rich>=13']
    });
  });
});
