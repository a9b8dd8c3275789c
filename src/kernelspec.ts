import type { KernelSpec } from '@jupyterlab/services';
import type { IKernelEnvMetadata, Scope } from './tokens';

/**
 * The environment behind a kernel, from its kernelspec's
 * `metadata.env_manager`; failing that, from the kernel name
 * (`envmgr-<name>`, `envmgr-shared-<name>`). `null` for other kernels.
 */
export function kernelEnvironment(
  kernelName: string | null | undefined,
  specs: KernelSpec.ISpecModels | null | undefined
): IKernelEnvMetadata | null {
  if (!kernelName) {
    return null;
  }
  const spec = specs?.kernelspecs[kernelName];
  const meta = (
    spec?.metadata as { env_manager?: Partial<IKernelEnvMetadata> } | undefined
  )?.env_manager;
  if (
    meta &&
    (meta.scope === 'local' || meta.scope === 'shared') &&
    meta.name
  ) {
    return {
      scope: meta.scope,
      name: meta.name,
      version: typeof meta.version === 'number' ? meta.version : null
    };
  }
  const match = /^envmgr-(?:(shared)-)?(.+)$/.exec(kernelName);
  if (match) {
    return {
      scope: (match[1] as Scope) ?? 'local',
      name: match[2],
      version: null
    };
  }
  return null;
}
