import { LabIcon } from '@jupyterlab/ui-components';
import envManagerSvg from '../style/icons/env-manager.svg';

/**
 * The icon of the environments panel.
 */
export const envManagerIcon = new LabIcon({
  name: 'jupyter-env-manager:environments',
  svgstr: envManagerSvg
});
