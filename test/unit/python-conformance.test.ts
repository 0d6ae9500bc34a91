// The Python client's reading of the contract (clients/python/lars_contract.py)
// against the decoding vectors the TypeScript reader generated.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const dir = join(import.meta.dirname, '..', '..', 'clients', 'python');
const hasPython = spawnSync('sh', ['-c', 'command -v python3'], { encoding: 'utf8' }).stdout.trim() !== '';

describe('conformance vectors in the Python client', () => {
  it('python-conformance - lars_contract.py judges every route state and report batch sample as the TypeScript reader does', function () {
    if (!hasPython) this.skip();
    const r = spawnSync('python3', ['-m', 'unittest', '-v', 'test_conformance'], { cwd: dir, encoding: 'utf8', env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' }, timeout: 60_000 });
    expect(r.status, `${r.stdout}\n${r.stderr}`).to.equal(0);
    expect(r.stderr).to.match(/Ran 1 test/);
  });
});
