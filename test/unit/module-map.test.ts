// docs/architecture.md's module map names every source file, one line each,
// and its layer table is the one lint enforces (scripts/lint-layers.mjs).
import { expect } from 'chai';
import { readFileSync, readdirSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { LAYERS } from '../../scripts/lint-layers.mjs';

const root = join(import.meta.dirname, '..', '..');
const doc = readFileSync(join(root, 'docs', 'architecture.md'), 'utf8');

function section(title: string): string {
  const start = doc.indexOf(`\n## ${title}\n`);
  expect(start, `docs/architecture.md has a "## ${title}" section`).to.be.greaterThan(-1);
  const end = doc.indexOf('\n## ', start + 4);
  return doc.slice(start, end === -1 ? undefined : end);
}

/** First cells of the tables' rows, as written. */
function firstCells(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('| `'))
    .map((l) => l.split('|')[1]!.trim());
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory()) {
      if (rel === 'src/console/assets') continue; // named as one folder
      out.push(...sourceFiles(rel));
    } else if (/\.(ts|proto)$/.test(e.name)) out.push(rel);
  }
  return out;
}

describe('module map (docs/architecture.md)', () => {
  const cells = firstCells(section('Module map'));

  it('each row names one file or folder, in backticks', () => {
    for (const c of cells) expect(c, c).to.match(/^`[^`]+`$/);
  });

  it('names every source file under src/, actors/ and schemas/', () => {
    const named = new Set(cells.map((c) => c.slice(1, -1)));
    const missing = ['src', 'actors', 'schemas'].flatMap(sourceFiles).filter((f) => !named.has(f));
    expect(missing, 'source files the module map does not name').to.deep.equal([]);
  });

  it('names only files that exist, each once', () => {
    const paths = cells.map((c) => c.slice(1, -1));
    expect(paths.filter((p) => !existsSync(join(root, p))), 'named but absent').to.deep.equal([]);
    expect(paths.filter((p, i) => paths.indexOf(p) !== i), 'named twice').to.deep.equal([]);
    for (const p of paths.filter((p) => p.endsWith('/'))) expect(statSync(join(root, p)).isDirectory(), p).to.equal(true);
  });

  it('shows the layer table lint enforces', () => {
    const rows = section('Layers')
      .split('\n')
      .filter((l) => l.startsWith('| `'))
      .map((l) => l.split('|').map((c) => c.trim()));
    const shown = Object.fromEntries(rows.map((r) => [r[1]!.slice(1, -1), r[2] === '—' ? [] : r[2]!.split(', ').map((x) => x.slice(1, -1))]));
    expect(shown).to.deep.equal(LAYERS);
  });
});
