/**
 * Handlebars as an Express view engine: a page template from views/ rendered into
 * views/layout.hbs (its `{{{body}}}`), with the partials in views/partials/. `{{…}}` escapes
 * HTML, so every user-supplied string is escaped unless a template says `{{{…}}}` (only `body`
 * does, and it is our own rendered HTML). Templates are compiled once and cached.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import Handlebars from 'handlebars';
import { formatPercent } from './public/percent.js';

type Template = Handlebars.TemplateDelegate;

/** How a probability reads on the page (server/public/percent.js: the page's script uses the same file). */
export { formatPercent };

/** The express `app.engine('hbs', …)` callback for the views in `viewsDir`. */
export function handlebarsEngine(
  viewsDir: string,
): (path: string, options: object, cb: (err: Error | null, html?: string) => void) => void {
  const hbs = Handlebars.create();
  const partialsDir = join(viewsDir, 'partials');
  let partialFiles: string[] = [];
  try {
    partialFiles = readdirSync(partialsDir).filter((f) => f.endsWith('.hbs'));
  } catch {
    // No partials folder: nothing to register.
  }
  for (const file of partialFiles)
    hbs.registerPartial(basename(file, '.hbs'), readFileSync(join(partialsDir, file), 'utf8'));
  hbs.registerHelper('fixed', (v: unknown, digits: unknown) =>
    typeof v === 'number' ? v.toFixed(typeof digits === 'number' ? digits : 2) : '',
  );
  hbs.registerHelper('percent', (p: unknown) => (typeof p === 'number' ? formatPercent(p) : ''));
  hbs.registerHelper('json', (v: unknown) => JSON.stringify(v, null, 2));
  // A path under the site's root: '/' on the server, './' on an exported static site (`siteRoot`),
  // which may be served from any folder.
  hbs.registerHelper('asset', (path: unknown, options: Handlebars.HelperOptions) => {
    const root = (options.data as { root?: { siteRoot?: string } }).root?.siteRoot ?? '/';
    return `${root}${String(path)}`;
  });
  hbs.registerHelper('eq', (a: unknown, b: unknown) => a === b);
  hbs.registerHelper('gt', (a: unknown, b: unknown) => typeof a === 'number' && typeof b === 'number' && a > b);
  hbs.registerHelper('count', (v: unknown) => (typeof v === 'number' ? v.toLocaleString('en') : ''));
  hbs.registerHelper('plural', (n: unknown, word: unknown) => `${String(word)}${n === 1 ? '' : 's'}`);

  const cache = new Map<string, Template>();
  const template = (path: string): Template => {
    let t = cache.get(path);
    if (!t) {
      t = hbs.compile(readFileSync(path, 'utf8'), { strict: false });
      cache.set(path, t);
    }
    return t;
  };
  const layoutPath = join(viewsDir, 'layout.hbs');

  return (path, options, cb) => {
    try {
      const data = options as Record<string, unknown>;
      const body = template(path)(data);
      cb(null, template(layoutPath)({ ...data, body }));
    } catch (err) {
      cb(err as Error);
    }
  };
}
