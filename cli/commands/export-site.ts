/**
 * `captioner export-site`: writes the page, the browser bundle, the WebAssembly backend and a
 * model's files as a static site that captions in the visitor's browser (server/site.ts,
 * docs/browser.md). The path of the site goes to stdout, so that it pipes.
 */
import type { Argv } from 'yargs';
import { SiteExistsError, exportSite } from '../../server/site.ts';
import { logLine, type Command } from '../command.ts';
import { EXIT, UsageError } from '../errors.ts';

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(2)} MB`;

export const exportSiteCommand: Command = {
  command: 'export-site',
  describe: "write a static site that captions in the visitor's browser: page, bundle, WebAssembly and model",
  builder: (y: Argv) =>
    y
      .option('model', {
        type: 'string',
        demandOption: true,
        describe: 'model directory (its best checkpoint) or a checkpoint directory',
      })
      .option('out', {
        type: 'string',
        demandOption: true,
        describe: 'the folder to write the site to (must not exist)',
      })
      .example('$0 export-site --model models/default --out site', 'write the site to site/')
      .example('cd site && python3 -m http.server 8000', 'then serve it with any static server: http://127.0.0.1:8000'),
  async run(argv) {
    const started = performance.now();
    try {
      const site = await exportSite(argv.model as string, argv.out as string, logLine);
      const { page, bundle, wasm, model } = site.bytes;
      logLine(
        `site written in ${((performance.now() - started) / 1000).toFixed(1)} s: page ${mb(page)}, bundle ${mb(bundle)}, WebAssembly ${mb(wasm)}, model ${mb(model)}`,
      );
      process.stdout.write(`${site.dir}\n`);
      return EXIT.ok;
    } catch (err) {
      if (err instanceof SiteExistsError) throw new UsageError(err.message);
      throw err;
    }
  },
};
