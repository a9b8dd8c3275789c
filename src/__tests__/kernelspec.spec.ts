import type { KernelSpec } from '@jupyterlab/services';
import { kernelEnvironment } from '../kernelspec';

const specs = {
  default: 'python3',
  kernelspecs: {
    'envmgr-shared-team': {
      name: 'envmgr-shared-team',
      display_name: 'Team',
      language: 'python',
      argv: [],
      resources: {},
      metadata: { env_manager: { scope: 'shared', name: 'team', version: 3 } }
    }
  }
} as unknown as KernelSpec.ISpecModels;

describe('kernelEnvironment', () => {
  it('reads metadata.env_manager', () => {
    expect(kernelEnvironment('envmgr-shared-team', specs)).toEqual({
      scope: 'shared',
      name: 'team',
      version: 3
    });
  });

  it('falls back to the kernel name', () => {
    expect(kernelEnvironment('envmgr-demo', specs)).toEqual({
      scope: 'local',
      name: 'demo',
      version: null
    });
  });

  it('ignores other kernels', () => {
    expect(kernelEnvironment('python3', specs)).toBeNull();
    expect(kernelEnvironment(undefined, specs)).toBeNull();
  });
});
