/**
 * The manifest of a model's files as the browser fetches them (device/model/manifest.json, served
 * by the server and written by `captioner export-site`): the model's name and every file with
 * its size, so that the page's progress bar knows the total before the first byte.
 */
export const DEVICE_MANIFEST = 'manifest.json';

export interface DeviceManifest {
  format: 'captioner-device-model';
  version: 1;
  /** The model directory's name, as the page shows it. */
  name: string;
  /** File name (beside manifest.json) → bytes. */
  files: Record<string, number>;
}
