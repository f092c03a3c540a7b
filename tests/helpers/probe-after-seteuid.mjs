// Helper process (run as root): probes lockfiles through the addon around a seteuid, printing what
// each probe answered. Usage: probe-after-seteuid.mjs <root-owned lockfile> <uid-owned lockfile> <uid>
import { closeSync } from 'node:fs';
import { basename } from 'node:path';

import { LOCK_EX, LOCK_NB, probeLockFile } from '../../dist/lib/native.js';

const [rootOwned, uidOwned, uid] = process.argv.slice(2);
const probe = (path, as) => {
  try {
    closeSync(probeLockFile(path, LOCK_EX | LOCK_NB, false));
    console.log(`${basename(path)} as ${as}: fd`);
  } catch (error) {
    console.log(`${basename(path)} as ${as}: ${error.code}`);
  }
};
probe(rootOwned, 'root');
process.seteuid(Number(uid));
probe(rootOwned, `${uid}, before anything else`);
probe(uidOwned, uid);
probe(rootOwned, uid);
process.seteuid(0);
