import { expect } from 'chai';
import { Writable } from 'node:stream';
import { createLogger, resolveLogFormat } from '../../src/lib/log.ts';

function sink(): { stream: Writable; text: () => string } {
  let out = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out += chunk.toString();
      cb();
    },
  });
  return { stream, text: () => out };
}

describe('cli log - pretty for people, JSON for collectors', () => {
  it('cli log - auto is pretty on a terminal and JSON otherwise; both can be forced', () => {
    expect(resolveLogFormat('auto', true)).to.equal('pretty');
    expect(resolveLogFormat('auto', false)).to.equal('json');
    expect(resolveLogFormat(undefined, false)).to.equal('json');
    expect(resolveLogFormat('json', true)).to.equal('json');
    expect(resolveLogFormat('pretty', false)).to.equal('pretty');
  });

  it('cli log - pretty lines carry the local clock time, not epoch ms', async () => {
    const s = sink();
    const log = createLogger({ node: 'n1', level: 'info', format: 'pretty', destination: s.stream, isTTY: false });
    log.info({ route: '1.2' }, 'host state changed');
    await new Promise((r) => setImmediate(r));
    const line = s.text().split('\n')[0]!;
    expect(line).to.match(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: n1: host state changed {"route":"1.2"}$/);
    expect(s.text()).not.to.contain('\u001b['); // no colours off a terminal
  });

  it('cli log - JSON lines stay JSON; an unknown level is refused with the list', async () => {
    const s = sink();
    createLogger({ node: 'n1', level: 'info', format: 'json', destination: s.stream }).warn('w');
    await new Promise((r) => setImmediate(r));
    expect(JSON.parse(s.text().split('\n')[0]!)).to.include({ level: 40, msg: 'w', node: 'n1' });
    expect(() => createLogger({ level: 'loud' })).to.throw(RangeError, /trace, debug, info, warn, error, fatal, silent/);
  });
});
