// MIP-004 hash test vectors computed with the buyer's own algorithm, in Node.js.
//
// Mirrors Sokosumi's hashInput / hashResult in masumi-network/sokosumi,
// packages/masumi/src/hash/hash.ts (the same algorithm at commits d1c412e02bb1 and
// 05e44b475259 and in the later node:crypto rewrite), which canonicalizes with the npm
// package json-canonicalize, pinned at 2.0.0 in packages/masumi/package.json:
//   input  = sha256_hex(identifier + ";" + canonicalizeEx(JSON.parse(text), {filterUndefined: true}))
//   output = sha256_hex(identifier + ";" + JSON.stringify(result).slice(1, -1))
// tests/domain/test_hashing.py checks agentjobs' hashes against the output, so the test
// suite itself needs only Python.
//
// Re-run (Node >= 20; installs nothing into the repository):
//   deps=$(mktemp -d) && npm install --prefix "$deps" --no-save json-canonicalize@2.0.0
//   node tools/sokosumi_hash_vectors.mjs "$deps" > tests/domain/sokosumi_hash_vectors.json
// The random cases come from a fixed seed: a re-run reproduces every vector (only the
// recorded Node version may change).

import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import path from "node:path";

const JCS_PACKAGE = "json-canonicalize";
const JCS_VERSION = "2.0.0";
const SEED = 8785;

const depsDir = process.argv[2];
if (!depsDir) {
  console.error("usage: node tools/sokosumi_hash_vectors.mjs <dir with node_modules/json-canonicalize>");
  process.exit(2);
}
const requireFromDeps = createRequire(path.join(path.resolve(depsDir), "resolve-from-here.js"));
const installed = requireFromDeps(`${JCS_PACKAGE}/package.json`).version;
if (installed !== JCS_VERSION) {
  console.error(`${JCS_PACKAGE} ${installed} found; Sokosumi pins ${JCS_VERSION}`);
  process.exit(2);
}
const { canonicalizeEx } = requireFromDeps(JCS_PACKAGE);

const sha256Hex = (text) => createHash("sha256").update(text, "utf-8").digest("hex");

// Sokosumi's hashInput takes the stored input as JSON text and parses it itself.
function buyerInput(text, identifier) {
  const canonical = canonicalizeEx(JSON.parse(text), { filterUndefined: true });
  return { canonical, hash: sha256Hex(identifier + ";" + canonical) };
}

function buyerOutput(result, identifier) {
  return sha256Hex(identifier + ";" + JSON.stringify(result).slice(1, -1));
}

// mulberry32: small, seedable, the same sequence on every Node version.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = rng(SEED);
const below = (n) => Math.floor(rand() * n);
const pick = (items) => items[below(items.length)];

function identifier() {
  const length = 14 + 2 * below(7); // the payment service wants 14-26 hex chars, even
  let out = "";
  for (let i = 0; i < length; i++) out += "0123456789abcdef"[below(16)];
  return out;
}

// Any finite double, drawn uniformly over bit patterns: every exponent gets its turn.
function anyDouble() {
  const view = new DataView(new ArrayBuffer(8));
  for (;;) {
    view.setUint32(0, Math.floor(rand() * 2 ** 32));
    view.setUint32(4, Math.floor(rand() * 2 ** 32));
    const value = view.getFloat64(0);
    if (Number.isFinite(value)) return value;
  }
}

// Numbers people type: short decimals, powers of ten at the formatting thresholds.
function typedNumber() {
  switch (below(4)) {
    case 0:
      return (below(2_000_001) - 1_000_000) / 10 ** below(8);
    case 1:
      return pick([1, -1, 5, 1.5]) * 10 ** (below(50) - 25);
    case 2:
      return (below(2 ** 21) * 2 ** 32 + below(2 ** 32)) * pick([1, -1]);
    default:
      return pick([0, -0, 2 ** 53, -(2 ** 53), 2 ** 53 - 1, 5e-324, 1.7976931348623157e308]);
  }
}

function codePoint() {
  switch (below(5)) {
    case 0:
      return 0x20 + below(0x5f); // printable ASCII, quote and backslash included
    case 1:
      return pick([below(0x20), 0x7f, 0x2028, 0x2029, 0xfeff, 0xfffe, 0xffff]);
    case 2:
      return 0x80 + below(0xd800 - 0x80); // BMP below the surrogates
    case 3:
      return 0xe000 + below(0x10000 - 0xe000); // BMP above them: sorts after astral in UTF-16
    default:
      return 0x10000 + below(0x110000 - 0x10000); // astral: a surrogate pair in UTF-16
  }
}

function text(maxLength) {
  let out = "";
  for (let n = below(maxLength + 1); n > 0; n--) out += String.fromCodePoint(codePoint());
  return out;
}

function value(depth) {
  const kinds = depth > 0 ? 8 : 6;
  switch (below(kinds)) {
    case 0:
      return null;
    case 1:
      return rand() < 0.5;
    case 2:
      return typedNumber();
    case 3:
      return anyDouble();
    case 4:
    case 5:
      return text(8);
    case 6:
      return Array.from({ length: below(4) }, () => value(depth - 1));
    default:
      return object(depth - 1);
  }
}

function object(depth) {
  const out = {};
  for (let n = below(5); n > 0; n--) {
    const key = text(4);
    if (key !== "toJSON") out[key] = value(depth);
  }
  return out;
}

// Texts a buyer or a gRPC/HTTP client may send that JSON.stringify itself never writes.
const HANDWRITTEN = [
  ["empty input", "{}"],
  ["float 1.0 is 1", '{"f":1.0}'],
  ["int 1", '{"f":1}'],
  ["1e-7 keeps its exponent", '{"f":1e-7}'],
  ["1e-07 as Python writes it", '{"f":1e-07}'],
  ["1e-6 is written out", '{"f":1e-6}'],
  ["1E20 is written out", '{"f":1E20}'],
  ["1e20 as JSON.stringify writes it", '{"f":100000000000000000000}'],
  ["1e21 takes an exponent", '{"f":1e21}'],
  ["negative zero", '{"f":-0.0,"g":-0}'],
  ["one tenth", '{"f":0.1,"g":0.30000000000000004}'],
  ["the smallest and largest doubles", '{"f":5e-324,"g":1.7976931348623157e308}'],
  ["too many digits", '{"f":123456789.123456789,"g":1.00000000000000000001}'],
  ["2**53 and its neighbours", '{"a":9007199254740992,"b":-9007199254740992,"c":9007199254740991}'],
  ["2**60 as JSON.stringify writes it", '{"f":1152921504606847000}'],
  ["astral keys sort before U+FFFF", '{"\\ud83d\\ude00":1,"\\uffff":2,"\\u00e9":3,"a":4}'],
  ["astral keys as raw UTF-8", '{"😀":1,"￿":2,"é":3,"a":4,"𝄞":5,"ｚ":6}'],
  ["escapes", '{"s":"\\u0000\\u001f\\u007f\\b\\f\\n\\r\\t\\"\\\\\\/\\u2028\\u2029"}'],
  ["ASCII written as escapes", '{"\\u0061":"\\u0062\\u0063"}'],
  ["astral value as escapes", '{"s":"\\ud834\\udd1e and \\uD83D\\uDE00"}'],
  ["nested objects and arrays", '{"b":[3,{"z":1,"y":[true,false,null]}],"a":{"d":{"c":"x"}},"c":[]}'],
  ["integer-like keys sort as strings", '{"b":1,"10":2,"2":3,"a":4,"":5}'],
  ["a duplicate key: the last wins", '{"a":1,"a":2}'],
  ["__proto__ is an ordinary key", '{"__proto__":{"b":1,"a":2},"a":1}'],
  ["toJSON null is an ordinary key", '{"toJSON":null,"b":1,"a":2}'],
  ["whitespace between tokens", '{ "b" : 1 ,\n\t"a" : [ 2 , 3 ] }'],
];

// Texts Sokosumi hashes but agentjobs must refuse: no hash of ours could mean the same.
const DIVERGENT = [
  ["2**53 + 1 loses its last digit", '{"f":9007199254740993}'],
  ["a 20-digit integer is rounded", '{"f":12345678901234567890}'],
  ["1e400 overflows to Infinity, hashed as null", '{"f":1e400}'],
  ["a lone surrogate", '{"s":"\\ud800"}'],
  ["a lone surrogate in a key", '{"\\udc00":1}'],
  ["toJSON leaves the object unsorted", '{"toJSON":"x","b":1,"a":2}'],
  ["toJSON deeper down", '{"n":{"toJSON":1,"b":1,"a":2}}'],
];

const RESULTS = [
  "",
  "success",
  "line1\nline2\r\nline3",
  'quotes " and backslashes \\ and a slash /',
  "tab\there, bell\u0007, nul\u0000, unit separator\u001f, del\u007f",
  "unicode: 你好世界 🌍 é 𝄞",
  "line separators \u2028 and \u2029",
  '{"looks":"like json","n":[1,2]}',
  "# Markdown\n\n- item\n- **bold**\n\n```py\nprint('x')\n```\n",
];

const IDENTIFIERS = ["0123456789abcdef", "a1b2c3d4e5f60718293a4b5c6d"];

function inputVector(name, inputText, id) {
  const { canonical, hash } = buyerInput(inputText, id);
  return { name, identifier: id, input_json: inputText, canonical, input_hash: hash };
}

const inputs = [];
for (const [name, inputText] of HANDWRITTEN) {
  for (const id of IDENTIFIERS) inputs.push(inputVector(name, inputText, id));
}
for (let i = 0; i < 80; i++) {
  // The body Sokosumi sends and stores is JSON.stringify of its input object.
  const doubles = Array.from({ length: 25 }, anyDouble);
  inputs.push(inputVector(`random doubles ${i}`, JSON.stringify({ n: doubles }), identifier()));
}
for (let i = 0; i < 40; i++) {
  const typed = Array.from({ length: 25 }, typedNumber);
  inputs.push(inputVector(`typed numbers ${i}`, JSON.stringify({ n: typed }), identifier()));
}
for (let i = 0; i < 200; i++) {
  inputs.push(inputVector(`random input ${i}`, JSON.stringify(object(3)), identifier()));
}

const divergent = DIVERGENT.map(([name, inputText]) => inputVector(name, inputText, IDENTIFIERS[0]));

const outputs = [];
for (const result of RESULTS) {
  for (const id of IDENTIFIERS) {
    outputs.push({ identifier: id, result, output_hash: buyerOutput(result, id) });
  }
}
for (let i = 0; i < 100; i++) {
  const id = identifier();
  const result = text(40);
  outputs.push({ identifier: id, result, output_hash: buyerOutput(result, id) });
}

const vectors = {
  about:
    "Generated by tools/sokosumi_hash_vectors.mjs with Sokosumi's hashInput/hashResult " +
    "algorithm (packages/masumi/src/hash/hash.ts); do not edit by hand.",
  canonicalizer: `${JCS_PACKAGE}@${installed}`,
  node: process.version,
  seed: SEED,
  inputs,
  divergent,
  outputs,
};
process.stdout.write(JSON.stringify(vectors, null, 1) + "\n");
