// Developer check, beyond the committed fixtures: encodes whole files with tiktoken's "gpt2"
// and with `gpt2 tokenize --no-special -f FILE`, and compares every id.
//
//   node tools/tiktoken/compare_with_tiktoken.js build/gpt2 FILE...
//   node tools/tiktoken/compare_with_tiktoken.js build/gpt2 --all-codepoints
//
// --all-codepoints writes (to a temporary file) every Unicode scalar value in several
// contexts (after a letter, a space, a digit, before a letter, inside a whitespace run), so
// that any difference between our character tables and tiktoken's regex classes shows up.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');
const { get_encoding } = require('tiktoken');

const [binary, ...files] = process.argv.slice(2);
if (!binary || files.length === 0) {
  console.error('usage: node compare_with_tiktoken.js GPT2_BINARY (FILE... | --all-codepoints)');
  process.exit(2);
}

function allCodepointsFile() {
  const parts = [];
  for (let cp = 0; cp < 0x110000; ++cp) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue;
    const c = String.fromCodePoint(cp);
    parts.push(`a${c} ${c}1${c} 1${c}x\t${c}  ${c}${c}'s${c}\n`);
  }
  const file = path.join(os.tmpdir(), 'gpt2_all_codepoints.txt');
  fs.writeFileSync(file, parts.join(''));
  return file;
}

const enc = get_encoding('gpt2');
let failed = false;
for (let file of files) {
  if (file === '--all-codepoints') file = allCodepointsFile();
  const text = fs.readFileSync(file, 'utf8');
  const want = Array.from(enc.encode_ordinary(text));
  const out = execFileSync(binary, ['tokenize', '--no-special', '-f', file], { maxBuffer: 1 << 30 }).toString();
  const got = out.trim() === '' ? [] : out.trim().split(' ').map(Number);
  let i = 0;
  while (i < want.length && i < got.length && want[i] === got[i]) ++i;
  if (i === want.length && i === got.length) {
    console.log(`${file}: ${want.length} ids, all equal`);
    continue;
  }
  failed = true;
  const from = Math.max(0, i - 5);
  const td = new TextDecoder();
  const show = (ids) => ids.slice(from, i + 5).map((id) => `${id}:${JSON.stringify(td.decode(enc.decode_single_token_bytes(id)))}`).join(' ');
  console.log(`${file}: differs at id ${i} (tiktoken ${want.length} ids, gpt2 ${got.length})`);
  console.log(`  tiktoken: ${show(want)}`);
  console.log(`  gpt2:     ${show(got)}`);
}
enc.free();
process.exit(failed ? 1 : 0);
