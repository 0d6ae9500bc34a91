// The layout's import rules, as an ESLint plugin (`lars/layers`, `lars/no-cycle`).
//
// Every source file belongs to a layer: `schemas`, `actors` or one folder of
// `src/` (`src/index.ts` is a layer of its own). LAYERS says which layers
// each may import from; anything else is a back-edge and fails `npm run lint`.
// The table is checked to be acyclic when the rule loads, so folders cannot
// import each other round; `lars/no-cycle` does the same for files.
// docs/architecture.md ("Layers") shows the table.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** layer → the layers it may import (its own files always). */
export const LAYERS = {
  schemas: [],
  actors: ['schemas'],
  'src/lib': ['schemas'],
  'src/http': ['src/lib'],
  'src/nats': ['schemas', 'src/lib'],
  'src/metrics': ['schemas', 'src/lib', 'src/http'],
  'src/registry': ['schemas', 'src/lib', 'src/nats'],
  'src/cluster': ['schemas', 'actors', 'src/lib', 'src/nats', 'src/registry'],
  'src/agent': ['schemas', 'actors', 'src/lib', 'src/nats', 'src/metrics', 'src/registry'],
  'src/node': ['schemas', 'actors', 'src/lib', 'src/nats', 'src/metrics', 'src/registry', 'src/cluster'],
  'src/analytics': ['schemas', 'src/lib', 'src/nats', 'src/metrics'],
  'src/admin': ['schemas', 'actors', 'src/lib', 'src/registry'],
  'src/integrations': ['schemas', 'src/lib', 'src/agent'],
  'src/sidecar': ['schemas', 'actors', 'src/lib', 'src/http', 'src/nats', 'src/metrics', 'src/agent'],
  'src/xds': ['schemas', 'actors', 'src/lib', 'src/nats', 'src/metrics', 'src/registry', 'src/agent'],
  'src/sim': ['schemas', 'actors', 'src/lib', 'src/agent'],
  'src/console': ['schemas', 'src/lib', 'src/http', 'src/nats', 'src/metrics', 'src/registry', 'src/admin', 'src/analytics'],
  'src/dev': ['schemas', 'actors', 'src/lib', 'src/nats', 'src/registry', 'src/cluster', 'src/agent', 'src/node', 'src/analytics', 'src/console'],
  'src/index.ts': ['schemas', 'actors', 'src/lib', 'src/nats', 'src/registry', 'src/cluster', 'src/agent', 'src/node'],
  'src/cli': [
    'schemas', 'actors', 'src/lib', 'src/http', 'src/nats', 'src/metrics', 'src/registry', 'src/cluster', 'src/agent', 'src/node',
    'src/analytics', 'src/admin', 'src/sidecar', 'src/xds', 'src/sim', 'src/console', 'src/dev',
  ],
};

/** The layer of a repository-relative path (forward slashes); undefined outside the layered code. */
export function layerOf(path) {
  const parts = path.split('/');
  if (parts[0] === 'schemas' || parts[0] === 'actors') return parts[0];
  if (parts[0] !== 'src') return undefined;
  if (parts.length === 2) return path;
  return `src/${parts[1]}`;
}

function assertAcyclic(table) {
  const state = new Map();
  const visit = (layer, path) => {
    if (!(layer in table)) throw new Error(`lint-layers: ${path.join(' → ')} names unknown layer ${layer}`);
    if (state.get(layer) === 'done') return;
    if (state.get(layer) === 'open') throw new Error(`lint-layers: the layer table has a cycle: ${[...path, layer].join(' → ')}`);
    state.set(layer, 'open');
    for (const dep of table[layer]) visit(dep, [...path, layer]);
    state.set(layer, 'done');
  };
  for (const layer of Object.keys(table)) visit(layer, []);
}
assertAcyclic(LAYERS);

const rel = (abs) => relative(root, abs).split(sep).join('/');

/** Relative specifiers of every import, export-from and dynamic import in a source text. */
const SPEC = /(?:^|[^.\w])(?:import|export)\s[^'"`;]*?from\s*['"](\.{1,2}\/[^'"]+)['"]|import\s*\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)|^import\s*['"](\.{1,2}\/[^'"]+)['"]/gm;
function importsOf(abs) {
  const text = readFileSync(abs, 'utf8');
  const out = [];
  for (const m of text.matchAll(SPEC)) out.push(resolve(dirname(abs), m[1] ?? m[2] ?? m[3]));
  return out;
}

const graph = new Map();
function edges(abs) {
  let e = graph.get(abs);
  if (!e) {
    e = existsSync(abs) ? importsOf(abs).filter((t) => t.endsWith('.ts') && existsSync(t)) : [];
    graph.set(abs, e);
  }
  return e;
}

/** A path of imports from `start` back to it, or undefined. */
function cycleFrom(start) {
  const seen = new Set();
  const stack = [[start, [start]]];
  while (stack.length > 0) {
    const [at, path] = stack.pop();
    for (const next of edges(at)) {
      if (next === start) return path;
      if (seen.has(next)) continue;
      seen.add(next);
      stack.push([next, [...path, next]]);
    }
  }
  return undefined;
}

function specifierOf(node) {
  const src = node.source;
  return src && src.type === 'Literal' && typeof src.value === 'string' ? src.value : undefined;
}

const layers = {
  meta: { type: 'problem', docs: { description: 'imports follow the layer table of scripts/lint-layers.mjs' }, schema: [] },
  create(context) {
    const file = rel(context.filename);
    const from = layerOf(file);
    if (from === undefined) return {};
    const check = (node) => {
      const spec = specifierOf(node);
      if (spec === undefined || !spec.startsWith('.')) return;
      const target = rel(resolve(dirname(context.filename), spec));
      if (target.startsWith('test/') || target.startsWith('bench/') || target.startsWith('scripts/')) {
        context.report({ node, message: `${file} imports ${target}: shipped code must not depend on tests, benchmarks or scripts` });
        return;
      }
      const to = layerOf(target);
      if (to === undefined || to === from) return;
      if (!LAYERS[from].includes(to)) {
        context.report({ node, message: `${from} may not import ${to} (${target}); allowed: ${LAYERS[from].join(', ') || 'nothing'} (scripts/lint-layers.mjs)` });
      }
    };
    return { ImportDeclaration: check, ExportNamedDeclaration: check, ExportAllDeclaration: check, ImportExpression: check };
  },
};

const noCycle = {
  meta: { type: 'problem', docs: { description: 'no file imports itself through others' }, schema: [] },
  create(context) {
    const abs = context.filename;
    if (layerOf(rel(abs)) === undefined) return {};
    return {
      Program(node) {
        const path = cycleFrom(abs);
        if (path) context.report({ node, message: `import cycle: ${[...path, abs].map(rel).join(' → ')}` });
      },
    };
  },
};

export default { meta: { name: 'lars' }, rules: { layers, 'no-cycle': noCycle } };
