import type { KernelSpec } from '@jupyterlab/services';
import { parseKernelName } from './pins';
import type { IKernelEnvMetadata } from './tokens';

/**
 * The environment behind a kernel, from its kernelspec's
 * `metadata.env_manager`; failing that, from the kernel name
 * (`envmgr-<name>`, `envmgr-shared-<name>`, `.v<N>` when pinned). `null`
 * for other kernels.
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
  const parts = parseKernelName(kernelName);
  if (parts) {
    return { scope: parts.scope, name: parts.name, version: parts.pinned };
  }
  return null;
}
