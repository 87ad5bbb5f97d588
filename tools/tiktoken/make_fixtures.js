// Writes tests/data/tokenizer/parity.json: a corpus of texts and the ids tiktoken's "gpt2"
// encoding gives for them, for the tokenizer parity test (tests/tokenizer/test_parity.cpp).
//
// Usage (from the repository root):
//   (cd tools/tiktoken && npm install) && node tools/tiktoken/make_fixtures.js
//
// Every case has "ids" = encode(text, allowed_special="all"); cases that contain
// "<|endoftext|>" also have "ids_ordinary" = encode_ordinary(text). The random cases use a
// fixed seed, so the output is the same on every run. tiktoken's JS API takes strings, so
// the texts are valid Unicode; invalid UTF-8 is covered by the C++ tests (round trips and
// hand-checked byte-level cases).
'use strict';
const fs = require('fs');
const path = require('path');
const { get_encoding } = require('tiktoken');

const root = path.join(__dirname, '..', '..');
const cases = [];
const add = (name, text) => cases.push({ name, text });

// Deterministic PRNG (mulberry32) so the fixtures never change between runs.
let seed = 0x6770_7432;
function rand() {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (list) => list[Math.floor(rand() * list.length)];

// ---- prose -------------------------------------------------------------------------------
add('prose: English', `The quick brown fox jumps over the lazy dog. It wasn't the first time; the dog had seen
foxes before, and he'd probably see them again. "Why bother?" he asked himself -- and then,
without waiting for an answer, he went back to sleep.

Language models assign probabilities to sequences of words. GPT-2, released in 2019, was
trained on WebText: 8 million documents, about 40 GB of text. Its tokenizer works on bytes,
so it never meets an unknown character; common words become one token, rare ones several.
`);
add('prose: mixed case and punctuation', `HELLO World!!! hello WORLD??? Mr. O'Neil's cat (aged 3½) ate 2.5kg of food — "unbelievable," said Dr. Smith... Isn't it? THAT'S IT. Don't. DON'T. Y'ALL'D've...`);
add('prose: French, German, Spanish, Polish, Turkish, Vietnamese', `Où est la bibliothèque ? L'été dernier, j'ai vu « Les Misérables ». Straße, Größe, Äpfel und Öl. ¿Dónde está el niño? ¡Qué año! Zażółć gęślą jaźń. İstanbul'da ılık bir gün. Tiếng Việt có dấu: Người ta nói rằng.`);
add('prose: Greek and Cyrillic', 'Καλημέρα κόσμε· ΑΒΓΔ αβγδ. Привет, мир! Съешь же ещё этих мягких французских булок, да выпей чаю. Ґанок, їжак, Єва.');

// ---- source code -----------------------------------------------------------------------------
const code = fs.readFileSync(path.join(root, 'src', 'tokenizer', 'pretokenize.h'), 'utf8');
add('code: C++ (pretokenize.h)', code.slice(0, 6000));
add('code: Python', `def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~")+1))+list(range(ord("¡"), ord("¬")+1))+list(range(ord("®"), ord("ÿ")+1))
    cs = bs[:]
    n = 0
    for b in range(2**8):
        if b not in bs:
            bs.append(b)
            cs.append(2**8+n)
            n += 1
\tcs = [chr(n) for n in cs]
\treturn dict(zip(bs, cs))

if __name__ == '__main__':
    print(f"{len(bytes_to_unicode())=}")  # 256
`);
add('code: JSON, HTML, shell, minified', `{"id": 50256, "text": "<|endoftext|>", "list": [1, 2.5e-3, -7, null, true]}
<div class="row"><a href="https://example.com/path?q=1&amp;r=2#frag">link</a></div>
for f in *.txt; do echo "$f" | sed -e 's/\\.txt$//' >> out.log 2>&1; done
function(a,b){return a&&b||!a?void 0:a[b]}var x=1e9,y=0x1F,z=0b1010;console.log(x+y*z);`);
add('code: CRLF line endings', 'line one\r\nline two\r\n\r\n\tindented\r\n  spaced  \r\nend');

// ---- numbers ---------------------------------------------------------------------------------
add('numbers', `0 1 12 123 1234 12345 123456 3.14159 -42 +7 1,000,000 1_000_000 2024-01-01 12:34:56 0x1F 1e-9 6.02e23 $9.99 €100 50% #1 no.5 v1.2.3 192.168.0.1
١٢٣٤ ۱۲۳ ०१२३ ৪৫৬ ๑๒๓ ½ ¾ ² ³ ⅫⅣ ⑩ ⒈ 𝟘𝟙𝟚 ①②③ 十二 〇`);
add('numbers: long digit strings', '31415926535897932384626433832795028841971693993751058209749445923078164062862089986280348253421170679'.repeat(5) + ' ' + '9'.repeat(300));

// ---- whitespace --------------------------------------------------------------------------------
const spaces = [' ', '  ', '   ', '\t', '\n', '\n\n', '\r\n', ' \n', '\n ', '\u00a0', '\u3000', '\u2028', '\u0085', '\u2009', ' \t ', '\u000b', '\u000c', '\u001c', '\u200b', '\ufeff'];
const after = ['word', 'Word', '42', '!?', "'s", '', '\u00e9t\u00e9', '\u4e2d', ' x', '\n'];
let ws = '';
for (const s of spaces) for (const a of after) ws += 'x' + s + a + '|';
add('whitespace: every run before every kind of character', ws);
add('whitespace: runs at the start and end', '   leading and trailing   ');
add('whitespace: only spaces', ' '.repeat(17));
add('whitespace: only newlines', '\n'.repeat(9));
add('whitespace: mixed run then word', ' \t \n \u00a0 \u3000  \t\tword  \n\n  word\t');
add('whitespace: BOM at the start', '\ufeffHello, BOM.');

// ---- contractions ------------------------------------------------------------------------------
const suffixes = ['s', 't', 're', 've', 'm', 'll', 'd'];
const casings = (s) => {
  const out = new Set();
  for (let mask = 0; mask < 1 << s.length; ++mask)
    out.add([...s].map((c, i) => (mask & (1 << i) ? c.toUpperCase() : c)).join(''));
  return [...out];
};
let contractions = '';
for (const suf of suffixes) for (const c of casings(suf)) contractions += `it'${c} IT'${c} '${c} x'${c}a '${c}'${c} ''${c} ' ${c} `;
add('contractions: every suffix in every case', contractions);
add("contractions: words", "I'm you're we've they'll she'd he's it's can't won't shouldn't've y'all'd've O'Reilly rock'n'roll ’s ‘quoted’ '");

// ---- scripts --------------------------------------------------------------------------------------
add('CJK: Chinese', '我能吞下玻璃而不伤身体。人工智能（AI）正在改变世界，2024年的发展尤其迅速！繁體中文：臺灣、香港。');
add('CJK: Japanese', 'すべての人間は、生まれながらにして自由であり、かつ、尊厳と権利とについて平等である。カタカナ、ﾊﾝｶｸｶﾀｶﾅ、漢字。');
add('CJK: Korean', '모든 인간은 태어날 때부터 자유로우며 그 존엄과 권리에 있어 동등하다. 한글 ㄱㄴㄷ');
add('Arabic and Hebrew', 'يولد جميع الناس أحرارًا متساوين في الكرامة والحقوق. السلام عليكم ١٢٣ كُتُبٌ. עברית: כל בני האדם נולדו בני חורין ושווים בערכם ובזכויותיהם.');
add('Devanagari and other Indic', 'सभी मनुष्यों को गौरव और अधिकारों के मामले में जन्मजात स्वतन्त्रता और समानता प्राप्त है। हिन्दी, संस्कृतम्। বাংলা ভাষা। தமிழ் மொழி। ગુજરાતી');
add('Thai, Georgian, Armenian, Ethiopic', 'ภาษาไทยเป็นภาษาที่มีวรรณยุกต์ ქართული ენა Հայերեն ሰላም ለዓለም');

// ---- emoji and combining marks ---------------------------------------------------------------------
add('emoji: ZWJ sequences, skin tones, flags, keycaps', '👨‍👩‍👧‍👦 family, 👍🏽 👍🏿👋🏻 ok, 🇺🇸🇯🇵🇪🇺 flags, 1️⃣ #️⃣ keycaps, ❤️ vs ❤, 🏳️‍🌈 🧑🏾‍💻 👩‍❤️‍💋‍👨 😀😃😄😁 🤖🦄');
add('combining marks', 'e\u0301 a\u0308 n\u0303 Z\u0351\u0306\u0310a\u0357\u0363l\u0300\u0301g\u0302o\u0327 \u0915\u093f \u1e9b\u0323 o\u0302\u0301 \u05e9\u05c1\u05b8 \u0627\u064e\u0644\u0652 x\u20dd');
add('symbols and punctuation', '©®™ ∑∫√∞≠≈ ←→↑↓ ♠♣♥♦ ★☆ ✓✗ • … — – « » „ “ ” ‹ › ¡¿ § ¶ † ‡ ° ′ ″ ‰ ‱ ¤ ¥ £ ₹ ₿ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝐁𝐨𝐥𝐝');
add('private use, noncharacters, astral planes', '\ue000\uf8ff \ufdd0\ufffe\uffff \u{10000}\u{1f600}\u{2a6d6}\u{e0041}\u{e0100}\u{f0000}\u{10fffd} \ufffd');

// ---- long pieces ----------------------------------------------------------------------------------------
add('long: 5000 letters', 'a'.repeat(5000));
add('long: repeated syllable', 'abc'.repeat(2000));
add('long: 3000 punctuation', '!'.repeat(1000) + '=-'.repeat(1000));
add('long: 2000 spaces then a word', ' '.repeat(2000) + 'word');
add('long: URL and base64', 'https://example.com/' + 'very-long-path-segment/'.repeat(40) + '?x=1 ' +
    'TWFueSBoYW5kcyBtYWtlIGxpZ2h0IHdvcmsu'.repeat(60));
add('long: Chinese without spaces', '的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可也你'.repeat(40));
add('long: emoji run', '😀'.repeat(500) + '👨‍👩‍👧‍👦'.repeat(100));

// ---- <|endoftext|> ----------------------------------------------------------------------------------
add('special: alone', '<|endoftext|>');
add('special: between texts', 'First document.<|endoftext|>Second document.\n<|endoftext|>\n\nThird<|endoftext|><|endoftext|>');
add('special: with spaces and partial forms', ' <|endoftext|> <|endoftext| <|endoftext|>x <|endofte <|ENDOFTEXT|> <|startoftext|>');

// ---- random text ----------------------------------------------------------------------------------------
// Short strings over an alphabet that hits every branch of the pre-tokenizer.
const alphabet = [' ', ' ', ' ', '\t', '\n', '\r', "'", "'", 's', 't', 'r', 'e', 'v', 'm', 'l', 'd', 'S', 'T', 'L', 'a', 'Z', '0', '7', '!', '.', ',', '-', '\u00a0', '\u3000', '\u0085', 'é', '中', '١', '½', '😀', '\u0301'];
for (let i = 0; i < 60; ++i) {
  let s = '';
  const n = 5 + Math.floor(rand() * 80);
  for (let k = 0; k < n; ++k) s += pick(alphabet);
  add(`random: pre-tokenizer alphabet #${i}`, s);
}
// Random code points from all of Unicode (surrogates excluded), weighted toward the BMP.
for (let i = 0; i < 12; ++i) {
  let s = '';
  for (let k = 0; k < 400; ++k) {
    let cp;
    const r = rand();
    if (r < 0.15) cp = 0x20 + Math.floor(rand() * 0x60);
    else if (r < 0.2) cp = pick([0x20, 0x20, 0x0a, 0x09, 0xa0, 0x3000]);
    else if (r < 0.85) cp = Math.floor(rand() * 0x10000);
    else cp = Math.floor(rand() * 0x110000);
    if (cp >= 0xd800 && cp <= 0xdfff) cp = 0x41;
    s += String.fromCodePoint(cp);
  }
  add(`random: code points #${i}`, s);
}
// Random words from the vocabulary-rich ranges, with spaces: realistic-ish token mixes.
const words = ['the', 'The', 'THE', ' of', 'and', 'tokenizer', 'GPT', '-2', '2019', 'über', 'naïve', 'café', '東京', 'Москва', 'القاهرة', 'मुंबई', '😀', '...', '?!', "'s", "n't", '\n', '  ', '\t', '0.5', '%', '<', '|', '>'];
for (let i = 0; i < 20; ++i) {
  let s = '';
  for (let k = 0; k < 150; ++k) s += pick(words) + (rand() < 0.6 ? ' ' : '');
  add(`random: words #${i}`, s);
}

// Long words (65..300 bytes, no spaces) exercise the heap merge path for long pieces.
const syllables = ['th', 'e', 'an', 'ing', 'er', 'tion', 'a', 'o', 're', 'st', 'ou', 'ch', 'qu', 'x', 'z', 'E', 'ly', 'ness'];
for (let i = 0; i < 30; ++i) {
  let s = i % 3 === 0 ? ' ' : '';
  const n = 65 + Math.floor(rand() * 235);
  while (s.length < n) s += pick(syllables);
  add(`random: long word #${i}`, s);
}
for (let i = 0; i < 6; ++i) {
  let s = '';
  const n = 65 + Math.floor(rand() * 400);
  while (s.length < n) s += pick(['!', '=', '-', '>', '*', '#', '.', '..', '/', '\\', '«', '°', '€', '\u0301']);
  add(`random: long symbol run #${i}`, s);
}

// ---- encode ------------------------------------------------------------------------------------------------
const enc = get_encoding('gpt2');
const out = [];
let n_ids = 0;
for (const c of cases) {
  const entry = { name: c.name, text: c.text, ids: Array.from(enc.encode(c.text, 'all')) };
  if (c.text.includes('<|endoftext|>')) entry.ids_ordinary = Array.from(enc.encode_ordinary(c.text));
  // tiktoken must round-trip its own output, or the fixture is not worth keeping.
  const back = Buffer.from(enc.decode(enc.encode(c.text, 'all'))).toString('utf8');
  if (back !== c.text) throw new Error('tiktoken does not round-trip case ' + c.name);
  n_ids += entry.ids.length;
  out.push(entry);
}
enc.free();

const tiktoken_version = JSON.parse(fs.readFileSync(path.join(__dirname, 'node_modules', 'tiktoken', 'package.json'), 'utf8')).version;
const doc = {
  source: `tiktoken ${tiktoken_version} (npm), encoding "gpt2"; generated by tools/tiktoken/make_fixtures.js`,
  cases: out,
};
const target = path.join(root, 'tests', 'data', 'tokenizer', 'parity.json');
fs.mkdirSync(path.dirname(target), { recursive: true });
fs.writeFileSync(target, JSON.stringify(doc, null, 0).replace(/\},\{"name"/g, '},\n{"name"') + '\n');
console.log(`wrote ${target}: ${out.length} cases, ${n_ids} ids`);
