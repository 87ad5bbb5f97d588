// tiktoken's throughput on the same text as build/bench_tokenizer, for comparison:
// encode_ordinary (no special tokens: the same work as gpt2::Special::plain), one thread.
//
//   node tools/bench_tokenizer_tiktoken.js FILE [seconds=5]
//
// (after `cd tools/tiktoken && npm install`). Prints MB/s (1e6 bytes per second of CPU
// time, like Google Benchmark's counters) over whole-text runs, after one warm-up run.
'use strict';
const fs = require('fs');
const path = require('path');
const { get_encoding } = require(path.join(__dirname, 'tiktoken', 'node_modules', 'tiktoken'));

const file = process.argv[2];
if (!file) {
  console.error('usage: node tools/bench_tokenizer_tiktoken.js FILE [seconds]');
  process.exit(2);
}
const seconds = Number(process.argv[3] || 5);
const bytes = fs.readFileSync(file);
const text = bytes.toString('utf8');
if (Buffer.byteLength(text, 'utf8') !== bytes.length) console.error('warning: FILE is not valid UTF-8; tiktoken sees U+FFFD');

const enc = get_encoding('gpt2');
let tokens = enc.encode_ordinary(text).length;  // warm-up
const cpu0 = process.cpuUsage();
const wall0 = process.hrtime.bigint();
let runs = 0;
do {
  tokens = enc.encode_ordinary(text).length;
  ++runs;
} while (Number(process.hrtime.bigint() - wall0) / 1e9 < seconds);
const cpu = process.cpuUsage(cpu0);
const cpu_s = (cpu.user + cpu.system) / 1e6;
const wall_s = Number(process.hrtime.bigint() - wall0) / 1e9;
enc.free();
const mb = bytes.length / 1e6;
console.log(`tiktoken ${JSON.parse(fs.readFileSync(path.join(__dirname, 'tiktoken', 'node_modules', 'tiktoken', 'package.json'))).version} gpt2 encode_ordinary: ${mb.toFixed(2)} MB, ${tokens} tokens, ${runs} runs: ` +
            `${(mb * runs / cpu_s).toFixed(2)} MB/s (CPU time), ${(mb * runs / wall_s).toFixed(2)} MB/s (wall)`);
