// The layout's lint rules (scripts/lint-layers.mjs) on sample imports: a
// back-edge, shipped code reaching into tests, and what is allowed.
import { expect } from 'chai';
import { join } from 'node:path';
import { Linter } from 'eslint';
import lars, { LAYERS, layerOf } from '../../scripts/lint-layers.mjs';

const root = join(import.meta.dirname, '..', '..');

function lint(file: string, code: string): string[] {
  const linter = new Linter({ configType: 'flat' });
  const config = [{ files: ['**/*.ts'], plugins: { lars: lars as never }, rules: { 'lars/layers': 'error' as const } }];
  return linter.verify(code, config, { filename: join(root, file) }).map((m) => m.message);
}

describe('lint - the layer rule', () => {
  it('layers: schemas, actors, each src folder, src/index.ts on its own; nothing else', () => {
    expect(layerOf('schemas/contract.ts')).to.equal('schemas');
    expect(layerOf('actors/strategies/swrr.ts')).to.equal('actors');
    expect(layerOf('src/cli/commands/node.ts')).to.equal('src/cli');
    expect(layerOf('src/index.ts')).to.equal('src/index.ts');
    expect(layerOf('test/helpers/wait.ts')).to.equal(undefined);
  });

  it('a back-edge fails: the route node importing the CLI, the domain importing the runtime, the cluster importing the agent', () => {
    const back = [
      ['src/node/route-node.ts', "import { main } from '../cli/main.ts';"],
      ['actors/route.ts', "import { retry } from '../src/lib/retry.ts';"],
      ['src/cluster/leases.ts', "import { createAgent } from '../agent/agent.ts';"],
      ['schemas/messages.ts', "export { planLeases } from '../actors/ownership.ts';"],
      ['src/lib/log.ts', "const m = await import('../nats/connect.ts');"],
    ];
    for (const [file, code] of back) {
      const msgs = lint(file!, code!);
      expect(msgs, `${file}: ${code}`).to.have.length(1);
      expect(msgs[0]).to.match(/may not import/);
    }
  });

  it('shipped code importing tests, benchmarks or scripts fails', () => {
    expect(lint('src/analytics/sink.ts', "import { wait } from '../../test/helpers/wait.ts';")[0]).to.match(/must not depend on tests/);
  });

  it('imports the table allows pass, and so do packages and the same folder', () => {
    expect(lint('src/node/route-node.ts', "import { x } from '../cluster/names.ts';\nimport { y } from './metrics.ts';\nimport { pino } from 'pino';")).to.deep.equal([]);
    expect(lint('src/cli/main.ts', "import { x } from './commands/node.ts';")).to.deep.equal([]);
    expect(lint('test/unit/any.test.ts', "import { main } from '../../src/cli/main.ts';")).to.deep.equal([]);
  });

  it('only src/cli imports src/cli, and the table has no layer importing one above it', () => {
    for (const [layer, deps] of Object.entries(LAYERS)) if (layer !== 'src/cli') expect(deps, layer).to.not.include('src/cli');
  });
});
