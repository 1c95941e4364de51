// An independent client-side check of a Custos ledger (docs/ledger.md), written from RFC 9162
// with Node's own crypto: signed tree heads, inclusion proofs and consistency proofs.
// usage: node verify.js <dir with public-key.json sth-a.json sth-b.json entry.json
// consistency.json>
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const dir = process.argv[2];
const load = (f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')).data;
const sha = (...parts) => crypto.createHash('sha256').update(Buffer.concat(parts)).digest();
const leafHash = (d) => sha(Buffer.from([0]), d);
const nodeHash = (l, r) => sha(Buffer.from([1]), l, r);
const hex = (h) => Buffer.from(h, 'hex');
let failures = 0;
const check = (ok, what) => {
  console.log(`${ok ? 'ok' : 'FAIL'} - ${what}`);
  if (!ok) failures++;
};

function verifySth(sth, pem) {
  const msg =
      `custos.ledger.sth.v1\n${sth.log_id}\n${sth.tree_size}\n${sth.root_hash}\n${sth.timestamp}\n`;
  return crypto.verify('sha256', Buffer.from(msg), pem, Buffer.from(sth.signature, 'base64'));
}

// RFC 9162 2.1.3.2
function verifyInclusion(leaf, index, size, proof, root) {
  if (index >= size) return false;
  let fn = BigInt(index), sn = BigInt(size - 1), r = leaf;
  for (const p of proof) {
    if (sn === 0n) return false;
    if ((fn & 1n) === 1n || fn === sn) {
      r = nodeHash(p, r);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  return sn === 0n && r.equals(root);
}

// RFC 9162 2.1.4.2
function verifyConsistency(first, second, firstRoot, secondRoot, proof) {
  if (first === second) return proof.length === 0 && firstRoot.equals(secondRoot);
  if (first === 0 || first > second) return false;
  const path = [...proof];
  if ((first & (first - 1)) === 0) path.unshift(firstRoot);
  if (path.length === 0) return false;
  let fn = BigInt(first - 1), sn = BigInt(second - 1);
  while ((fn & 1n) === 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = path[0], sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) return false;
    if ((fn & 1n) === 1n || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  return fr.equals(firstRoot) && sr.equals(secondRoot) && sn === 0n;
}

const pk = load('public-key.json');
const a = load('sth-a.json');
const b = load('sth-b.json');
const entry = load('entry.json');
const cons = load('consistency.json');
const spki = crypto.createPublicKey(pk.public_key).export({type: 'spki', format: 'der'});
check(sha(spki).toString('hex') === pk.log_id, 'log_id is SHA-256 of the public key');
check(
    verifySth(a, pk.public_key) && verifySth(b, pk.public_key),
    'both tree heads are signed by the log key');
check(!verifySth({...b, tree_size: b.tree_size + 1}, pk.public_key), 'an altered tree head fails');
const leaf = leafHash(Buffer.from(entry.data, 'base64'));
check(leaf.equals(hex(entry.leaf_hash)), 'the leaf hash is RFC 6962\'s hash of the data');
check(
    entry.tree_size === b.tree_size && entry.root_hash === b.root_hash,
    'the entry is proven against head B');
check(
    verifyInclusion(
        leaf, entry.index, entry.tree_size, entry.inclusion_proof.map(hex), hex(b.root_hash)),
    `entry ${entry.index} is included in the tree of size ${entry.tree_size}`);
check(
    !verifyInclusion(
        leafHash(Buffer.from('forged')), entry.index, entry.tree_size,
        entry.inclusion_proof.map(hex), hex(b.root_hash)),
    'other data is not');
check(
    cons.first === a.tree_size && cons.second === b.tree_size,
    'the consistency proof spans A to B');
check(
    verifyConsistency(
        a.tree_size, b.tree_size, hex(a.root_hash), hex(b.root_hash), cons.proof.map(hex)),
    `the tree of size ${b.tree_size} extends the tree of size ${a.tree_size}`);
process.exit(failures === 0 ? 0 : 1);
